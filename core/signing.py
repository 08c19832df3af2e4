"""Ed25519 signing of partner deliveries: key references, demo keys, signatures.

The configuration names a partner's private key, it never holds it:

- `env:VARIABLE`: the variable holds the key as PKCS#8 PEM, or as 64 hex
  digits (the raw 32-byte private key);
- `file:PATH`: an unencrypted PKCS#8 PEM file (a relative PATH is read from
  the working folder).

In demo mode a reference that cannot be resolved falls back to a persistent
demo key under the data folder, made on first use (mode 0600); outside demo
mode it is an error naming the partner and the reference. The public key is
shareable; its fingerprint is the SHA-256 of its 32 raw bytes. Key material
is never logged and never put into an exception message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.errors import KrReportsError

log = logging.getLogger(__name__)

ALGORITHM = "Ed25519"
REFERENCE_SCHEMES = ("env", "file")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RAW_HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")
_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")


class SigningKeyError(KrReportsError, RuntimeError):
    """A signing or public key cannot be found or read (the message never holds key material)."""


class SignatureInvalid(KrReportsError, ValueError):
    """A signature does not match the manifest and the public key."""


def parse_reference(reference: str) -> tuple[str, str]:
    """(scheme, target) of `env:VARIABLE` or `file:PATH`; ValueError otherwise.

    The message never repeats the reference: a key pasted there by mistake
    must not end up in an error.
    """
    scheme, sep, target = reference.partition(":")
    if not sep or scheme not in REFERENCE_SCHEMES or not target.strip():
        raise ValueError(
            "signing key reference must be 'env:VARIABLE' or 'file:PATH' "
            "(the key itself never belongs in the configuration)"
        )
    if scheme == "env" and not _ENV_NAME.match(target):
        raise ValueError("signing key reference 'env:VARIABLE' needs a valid environment variable name")
    return scheme, target


@dataclass(frozen=True)
class SigningKey:
    """A partner's private key and where it came from (a reference or a path, never material)."""

    partner: str
    origin: str
    demo: bool
    private: Ed25519PrivateKey = field(repr=False)

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)


def resolve_signing_key(partner: str, reference: str, key_dir: Path, demo: bool) -> SigningKey:
    """The key the reference names; in demo mode the partner's demo key when it names nothing."""
    private = _private_from_reference(partner, reference)
    if private is not None:
        return SigningKey(partner, reference, demo=False, private=private)
    if not demo:
        raise SigningKeyError(
            f"partner '{partner}': signing key '{reference}' {_why_unresolved(reference)}; "
            "configure the key (or use --demo on synthetic data)"
        )
    path = demo_key_path(key_dir, partner)
    return SigningKey(partner, str(path), demo=True, private=_load_or_create_demo_key(path))


def operator_public_key(partner: str, reference: str, key_dir: Path) -> Ed25519PublicKey:
    """The public half of the partner's configured key, else of an existing demo key (never made here)."""
    return operator_key(partner, reference, key_dir).public


def operator_key(partner: str, reference: str, key_dir: Path) -> SigningKey:
    """The partner's configured key, else its existing demo key (never made here)."""
    private = _private_from_reference(partner, reference)
    if private is not None:
        return SigningKey(partner, reference, demo=False, private=private)
    path = demo_key_path(key_dir, partner)
    if path.is_file():
        return SigningKey(partner, str(path), demo=True,
                          private=_read_private_pem(path.read_bytes(), f"demo key {path}"))
    raise SigningKeyError(
        f"partner '{partner}': signing key '{reference}' {_why_unresolved(reference)}, "
        f"and there is no demo key at {path}; give the partner's public key with --public-key"
    )


def demo_key_path(key_dir: Path, partner: str) -> Path:
    return key_dir / f"{partner}.ed25519.pem"


def _private_from_reference(partner: str, reference: str) -> Ed25519PrivateKey | None:
    """The key, None when the reference names nothing (variable unset, file absent)."""
    scheme, target = parse_reference(reference)
    origin = f"partner '{partner}': signing key '{reference}'"
    if scheme == "env":
        text = os.environ.get(target, "").strip()
        if not text:
            return None
        if _RAW_HEX_KEY.match(text):
            return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text))
        return _read_private_pem(text.encode(), origin)
    path = Path(target).expanduser()
    if not path.is_file():
        return None
    return _read_private_pem(path.read_bytes(), origin)


def _why_unresolved(reference: str) -> str:
    scheme, target = parse_reference(reference)
    return "is not set" if scheme == "env" else f"names no file ({Path(target).expanduser().resolve()})"


def _read_private_pem(data: bytes, origin: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None  # cryptography's message may quote the input: say nothing of it
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{origin}: not an unencrypted Ed25519 private key (PKCS#8 PEM or hex)")
    return key


def _load_or_create_demo_key(path: Path) -> Ed25519PrivateKey:
    """The persistent demo key; made once, readable by the owner only.

    Written to a private temporary file and linked into place, so two runs
    racing to make it agree on one key and nobody reads a half-written file.
    """
    if path.is_file():
        return _read_private_pem(path.read_bytes(), f"demo key {path}")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        os.link(temporary, path)
    except FileExistsError:
        return _read_private_pem(path.read_bytes(), f"demo key {path}")
    finally:
        temporary.unlink(missing_ok=True)
    log.warning("created demo signing key %s (demo mode only; not for real partners)", path)
    return key


def public_key_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(data: bytes, origin: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{origin}: not an Ed25519 public key in PEM format")
    return key


def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


def parse_fingerprint(text: str) -> str:
    """A fingerprint as `fingerprint` writes it, from `sha256:HEX` or bare HEX; ValueError otherwise."""
    normal = text.strip().lower()
    normal = normal if normal.startswith("sha256:") else f"sha256:{normal}"
    if not _FINGERPRINT.match(normal):
        raise ValueError("a key fingerprint is 64 hex digits (the SHA-256 of the raw public key), "
                         "optionally after 'sha256:'")
    return normal


def sign_document(key: SigningKey, payload: bytes) -> bytes:
    """A detached signature over `payload`, as a small JSON document."""
    document = {
        "algorithm": ALGORITHM,
        "public_key_fingerprint": key.fingerprint,
        "signature": base64.b64encode(key.private.sign(payload)).decode("ascii"),
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def check_signature(public: Ed25519PublicKey, payload: bytes, document: bytes) -> None:
    """Raise SignatureInvalid unless `document` is `public`'s signature over `payload`."""
    try:
        parsed = json.loads(document)
        algorithm, signer = parsed["algorithm"], parsed["public_key_fingerprint"]
        signature = base64.b64decode(parsed["signature"], validate=True)
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise SignatureInvalid("the signature file is not a valid signature document") from None
    if algorithm != ALGORITHM:
        raise SignatureInvalid(f"unsupported signature algorithm '{algorithm}' (expected {ALGORITHM})")
    expected = fingerprint(public)
    if signer != expected:
        named = signer if isinstance(signer, str) and _FINGERPRINT.match(signer) else "an unnamed key"
        raise SignatureInvalid(f"signed by {named}, not by the given public key {expected} (wrong key?)")
    try:
        public.verify(signature, payload)
    except InvalidSignature:
        raise SignatureInvalid("the signature does not match manifest.json: it was altered") from None
