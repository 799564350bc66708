"""What every layer knows about one message: assembly, MIME encoding, DKIM keys and signing,
Message-ID and VERP identity. It imports nothing above rendering and transport."""
