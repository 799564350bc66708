"""SMTP and the Maildir outbox behind one Transport protocol."""
