"""Ed25519 key files for the audit's signed archives and checkpoints, written as an operator would keep them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyFiles:
    """A private key file (OpenSSH format, as `ssh-keygen -t ed25519` writes it) and its public key file."""

    private: Path
    public: Path


def write_key_pair(directory: Path, name: str = "audit-signing-key") -> KeyFiles:
    key = Ed25519PrivateKey.generate()
    private = directory / name
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    private.chmod(0o600)
    public = directory / f"{name}.pub"
    openssh = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    public.write_bytes(openssh + b" coderauth-audit\n")
    return KeyFiles(private=private, public=public)
