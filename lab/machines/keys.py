"""SSH keys in OpenSSH's formats: machines' host keys and the lab's login key (ed25519)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    private: bytes  # OpenSSH PEM ("-----BEGIN OPENSSH PRIVATE KEY-----")
    public: str  # "ssh-ed25519 AAAA... comment"

    @property
    def blob(self) -> bytes:
        return base64.b64decode(self.public.split()[1])

    def fingerprint(self) -> str:
        """'SHA256:...' as ssh-keygen -l and ssh's host key messages print it."""
        return "SHA256:" + base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")

    def key_text(self) -> str:
        """'ssh-ed25519 AAAA...' without the comment, as known_hosts lines carry it."""
        return " ".join(self.public.split()[:2])


def generate(comment: str) -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return KeyPair(private, f"{public.decode()} {comment}")
