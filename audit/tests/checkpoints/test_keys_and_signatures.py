"""Key files and signed statements (audit/checkpoints.py): the formats operators generate, what exactly is signed."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import checkpoints
from tests.helpers.audit_keys import write_key_pair

T = datetime(2026, 11, 28, 17, 59, 14, 688719, tzinfo=UTC)


def statement() -> dict:
    return checkpoints.head_statement(head_id=42, head_hash="a" * 64, start_hash="0" * 64, count=42, time=T)


def test_signature_covers_the_canonical_json_of_the_statement(tmp_path):
    """Anyone can check a checkpoint with a stock Ed25519 library: the signed bytes are documented JSON."""
    keys = write_key_pair(tmp_path)
    signed = checkpoints.checkpoint_sign(statement(), key=checkpoints.signing_key_load(keys.private))
    payload = json.dumps(signed["statement"], sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    (public_key,) = checkpoints.public_keys_load(keys.public).values()
    public_key.verify(base64.b64decode(signed["signature"]), payload)
    assert signed["statement"] == {
        "format": "coderauth-audit-checkpoint/1",
        "kind": "head",
        "time": "2026-11-28T17:59:14.688719Z",
        "start_hash": "0" * 64,
        "count": 42,
        "head": {"id": 42, "hash": "a" * 64},
    }


def test_every_field_of_the_statement_is_signed(tmp_path):
    keys = write_key_pair(tmp_path)
    trusted = checkpoints.public_keys_load(keys.public)
    signed = checkpoints.checkpoint_sign(statement(), key=checkpoints.signing_key_load(keys.private))
    assert checkpoints.checkpoint_verify(signed, trusted=trusted, kind="head")["head"]["id"] == 42
    for name, value in (("time", "2027-01-01T00:00:00.000000Z"), ("count", 41), ("head", {"id": 41, "hash": "b" * 64})):
        altered = {**signed, "statement": {**signed["statement"], name: value}}
        with pytest.raises(checkpoints.CheckpointInvalid, match="does not match"):
            checkpoints.checkpoint_verify(altered, trusted=trusted, kind="head")


def test_a_head_checkpoint_is_not_an_archive(tmp_path):
    """Kinds are signed: a checkpoint of the head cannot be passed off as an archive that restarts the chain."""
    keys = write_key_pair(tmp_path)
    signed = checkpoints.checkpoint_sign(statement(), key=checkpoints.signing_key_load(keys.private))
    with pytest.raises(checkpoints.CheckpointInvalid, match="kind 'archive'"):
        checkpoints.checkpoint_verify(signed, trusted=checkpoints.public_keys_load(keys.public), kind="archive")


@pytest.mark.parametrize("broken", [None, [], {"statement": {}}, {"statement": {}, "key_id": "x", "signature": 3}])
def test_malformed_checkpoints_are_refused(broken):
    with pytest.raises(checkpoints.CheckpointInvalid, match="not a"):
        checkpoints.checkpoint_verify(broken, trusted={}, kind="head")


def test_fingerprint_is_the_one_ssh_keygen_prints(tmp_path):
    """Operators generate the key with ssh-keygen; the key id the commands print is the fingerprint it prints."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed")
    path = tmp_path / "audit-signing-key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "coderauth-audit", "-f", str(path)], check=True
    )
    printed = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], check=True, capture_output=True, text=True).stdout
    assert checkpoints.signing_key_load(path).key_id == printed.split()[1]
    assert list(checkpoints.public_keys_load(f"{path}.pub")) == [printed.split()[1]]
    protected = tmp_path / "protected-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "passphrase", "-f", str(protected)], check=True)
    with pytest.raises(checkpoints.KeyUnusable, match="passphrase"):
        checkpoints.signing_key_load(protected)


def test_openssl_pem_keys_load(tmp_path):
    """The PEM pair `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write works as well."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    private, public = tmp_path / "key.pem", tmp_path / "key.pub.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private)], check=True)
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True)
    key = checkpoints.signing_key_load(private)
    assert list(checkpoints.public_keys_load(public)) == [key.key_id]
    other = write_key_pair(tmp_path, "other")
    mixed = tmp_path / "mixed.pub"
    mixed.write_text(public.read_text() + other.public.read_text())
    assert set(checkpoints.public_keys_load(mixed)) == {key.key_id, checkpoints.signing_key_load(other.private).key_id}


def test_a_public_keys_file_lists_several_keys(tmp_path):
    """Rotation: old and new public keys in one file, comments and blank lines allowed."""
    old, new = write_key_pair(tmp_path, "old"), write_key_pair(tmp_path, "new")
    listing = tmp_path / "trusted.pub"
    listing.write_text(f"# retired 2026-11\n{old.public.read_text()}\n{new.public.read_text()}")
    trusted = checkpoints.public_keys_load(listing)
    assert set(trusted) == {
        checkpoints.signing_key_load(old.private).key_id,
        checkpoints.signing_key_load(new.private).key_id,
    }


def test_unusable_key_files_are_named(tmp_path):
    encrypted = tmp_path / "encrypted"
    encrypted.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(checkpoints.KeyUnusable, match="passphrase"):
        checkpoints.signing_key_load(encrypted)
    ecdsa = tmp_path / "ecdsa.pem"
    ecdsa.write_bytes(
        generate_private_key(SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(checkpoints.KeyUnusable, match="not an Ed25519 key"):
        checkpoints.signing_key_load(ecdsa)
    with pytest.raises(checkpoints.KeyUnusable, match="no such file|No such file"):
        checkpoints.signing_key_load(tmp_path / "missing")
    keys = write_key_pair(tmp_path)
    with pytest.raises(checkpoints.KeyUnusable, match="holds a private key"):
        checkpoints.public_keys_load(keys.private)
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("not a key\n")
    with pytest.raises(checkpoints.KeyUnusable, match="not a list of OpenSSH or PEM public keys"):
        checkpoints.public_keys_load(garbage)
