"""DKIM key pairs: an RSA 2048 private key for `dkim_key_file` and the DNS record to publish.

Uses `cryptography` (OpenSSL in a wheel) rather than shelling out to `openssl`, so key generation
works the same in a fresh virtualenv on any machine.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailer.errors import FileError, user_file


def generate_key(path: Path, force: bool = False) -> bytes:
    """Write a new PEM private key readable by its owner only; returns the public key (DER)."""
    if path.exists() and not force:
        raise FileError(f"{path} already exists; use --force to replace the key")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with user_file(path, "write"):
        path.parent.mkdir(parents=True, exist_ok=True)
        if force:
            path.unlink(missing_ok=True)  # a fresh file, so the 0600 mode below always applies
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
    return public_der(key)


def public_der(key: rsa.RSAPrivateKey) -> bytes:
    """The public half of a key as DNS publishes it (DER SubjectPublicKeyInfo)."""
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def record_value(public_key: bytes) -> str:
    """The TXT value of a DKIM key record."""
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(public_key).decode()


def dns_record(selector: str, domain: str, public_key: bytes) -> str:
    """The zone-file line to publish; split into 255-character strings as TXT requires."""
    value = record_value(public_key)
    chunks = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    return f"{selector}._domainkey.{domain}. IN TXT ( {chunks} )"
