"""The sealed archive: each original, with its sender identity, encrypted to an offline key.

HPKE (RFC 9180) base mode with X25519, HKDF-SHA256 and AES-256-GCM. The
daemon holds only the public key; the private half is encrypted with a
passphrase and belongs off the server. The reference code is the HPKE `info`,
so a seal moved to another row does not open under that row's code.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import os
import struct
from dataclasses import asdict
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from .errors import ConfigError
from .models import Sealed, SenderIdentity

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
MAGIC = b"HTS1"
IDENTITY_HEADERS = {"from_": "From", "sender": "Sender", "reply_to": "Reply-To",
                    "return_path": "Return-Path"}
HEADER_LIMIT = 1024 * 1024
PUBLIC_NAME = "archive-public.pem"
PRIVATE_NAME = "archive-private.pem"


def _info(ref: str) -> bytes:
    return b"hom-thu-so seal v1\x00" + ref.encode("ascii")


def identity_of(raw: bytes) -> SenderIdentity:
    """The sender headers, read with the standard library's lenient header parser.

    This runs before mail-parser so that even a message that later fails to
    parse is sealed with whatever identity its headers claim.
    """
    try:
        # The header section only: the parser would otherwise decode the whole message.
        msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
            raw[:_header_end(raw)]
        )
    except Exception:
        return SenderIdentity()
    values = {}
    for field_name, header in IDENTITY_HEADERS.items():
        value = msg.get(header)
        values[field_name] = _decode(value) if value is not None else ""
    return SenderIdentity(**values)


def _header_end(raw: bytes) -> int:
    """Where the header section ends (the first empty line), at most 1 MiB in."""
    ends = [raw.find(sep, 0, HEADER_LIMIT) for sep in (b"\r\n\r\n", b"\n\n")]
    found = [i for i in ends if i >= 0]
    return min(found) + 2 if found else min(len(raw), HEADER_LIMIT)


def _decode(value: object) -> str:
    from email.header import decode_header, make_header

    try:
        return str(make_header(decode_header(str(value))))
    except Exception:
        return str(value)


def seal(raw: bytes, identity: SenderIdentity, ref: str, public_key: X25519PublicKey) -> Sealed:
    header = json.dumps({"ref": ref, "identity": asdict(identity)}, ensure_ascii=False).encode()
    plaintext = MAGIC + struct.pack(">I", len(header)) + header + raw
    blob = SUITE.encrypt(plaintext, public_key, info=_info(ref))
    return Sealed(ref=ref, blob=blob, sha256=hashlib.sha256(raw).hexdigest())


def open_seal(blob: bytes, ref: str, private_key: X25519PrivateKey) -> tuple[bytes, SenderIdentity]:
    """The original bytes and sender identity; ConfigError when the key or ref do not match."""
    try:
        plaintext = SUITE.decrypt(blob, private_key, info=_info(ref))
    except (InvalidTag, ValueError):
        raise ConfigError(
            f"the seal of {ref} does not open with this private key (wrong key or damaged seal)"
        ) from None
    if plaintext[:4] != MAGIC:
        raise ConfigError(f"the seal of {ref} has an unknown format")
    (n,) = struct.unpack(">I", plaintext[4:8])
    header = json.loads(plaintext[8 : 8 + n])
    if header.get("ref") != ref:
        raise ConfigError(f"the seal of {ref} was made for another reference code")
    return plaintext[8 + n :], SenderIdentity(**header["identity"])


def generate(out: Path, passphrase: bytes) -> tuple[Path, Path]:
    """Write a new key pair into `out`: the public key, and the private key encrypted, 0600."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create the folder: {e.strerror}") from None
    public_path, private_path = out / PUBLIC_NAME, out / PRIVATE_NAME
    for p in (public_path, private_path):
        if p.exists():
            raise ConfigError(f"{p} already exists; refusing to overwrite an archive key")
    key = X25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    public_path.write_bytes(public_pem)
    return public_path, private_path


def load_public(path: str | Path) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except OSError as e:
        raise ConfigError(f"privacy.public_key_file {path}: cannot read: {e.strerror}") from None
    except ValueError:
        raise ConfigError(f"privacy.public_key_file {path}: not a PEM public key") from None
    if not isinstance(key, X25519PublicKey):
        raise ConfigError(f"privacy.public_key_file {path}: not an X25519 key (use `keys generate`)")
    return key


def load_private(path: str | Path, passphrase: bytes) -> X25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the private key: {e.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError):
        raise ConfigError(f"{path}: wrong passphrase, or not an archive private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise ConfigError(f"{path}: not an X25519 private key")
    return key
