"""Pseudonymization keys: one master key, derived per context.

The master key comes from KR_PSEUDONYM_KEY (hex, at least 32 bytes), or
from the secret named by KR_PSEUDONYM_KEY_BLOCK in the secret store the
orchestration layer registers (flows.secrets: Prefect Secret blocks). Demo runs on
the embedded synthetic data may use a random per-process key instead.
A key with too little entropy (one byte repeated, a short pattern) is refused.
Derived keys (HMAC of the master over a length-prefixed context such as
("protected", "2026-11-01")) make pseudonyms of two contexts impossible to join.
Keys are never logged, never put in exception messages, and never passed
as Prefect parameters (which Prefect stores).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import secrets
from collections.abc import Callable

from core.errors import KrReportsError

KEY_ENV = "KR_PSEUDONYM_KEY"
KEY_BLOCK_ENV = "KR_PSEUDONYM_KEY_BLOCK"
MIN_KEY_BYTES = 32
MIN_DISTINCT_BYTES = 16
MAX_PATTERN_BYTES = 8
KDF_LABEL = b"kr-reports/kdf/v2"
_demo_key: bytes | None = None
_secret_store: Callable[[str], str] | None = None


class PseudonymKeyError(KrReportsError, RuntimeError):
    """No usable pseudonymization key."""


def use_secret_store(read_secret: Callable[[str], str]) -> None:
    """Read named secrets with `read_secret` (raises PseudonymKeyError for an unknown name)."""
    global _secret_store
    _secret_store = read_secret


def key_configured() -> bool:
    """Whether a key is configured (in KR_PSEUDONYM_KEY or a named Secret block), not whether it is valid."""
    return bool(os.environ.get(KEY_ENV) or os.environ.get(KEY_BLOCK_ENV))


def master_key(demo: bool) -> bytes:
    """The configured key, or in demo mode a random key that lives only in this process."""
    global _demo_key
    configured = os.environ.get(KEY_ENV)
    if configured:
        return _parsed(configured, KEY_ENV)
    block = os.environ.get(KEY_BLOCK_ENV)
    if block:
        return _parsed(_secret_block_value(block), f"Prefect Secret block '{block}'")
    if not demo:
        raise PseudonymKeyError(
            f"no pseudonymization key: set {KEY_ENV} to {MIN_KEY_BYTES}+ random bytes in hex "
            f"(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`), or name a "
            f"Prefect Secret block holding it in {KEY_BLOCK_ENV}, or pass --demo on synthetic data"
        )
    if _demo_key is None:
        _demo_key = secrets.token_bytes(MIN_KEY_BYTES)
    return _demo_key


def _parsed(text: str, origin: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise PseudonymKeyError(f"{origin}: the key must be hex-encoded") from None
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(f"{origin}: the key must hold at least {MIN_KEY_BYTES} bytes")
    if _too_regular(key):
        raise PseudonymKeyError(
            f"{origin}: the key is not random (one byte repeated, a short repeating pattern or "
            f"sequence, or fewer than {MIN_DISTINCT_BYTES} distinct bytes); generate one with "
            f"`python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return key


def _too_regular(key: bytes) -> bool:
    """True for a key a person typed: a repeated pattern of up to MAX_PATTERN_BYTES, the same
    of its successive differences (counting sequences), or few distinct bytes.

    32 random bytes hold about 30 distinct values; a random key fails this with
    probability below 2^-50.
    """
    steps = bytes((b - a) % 256 for a, b in itertools.pairwise(key))
    return len(set(key)) < MIN_DISTINCT_BYTES or _periodic(key) or _periodic(steps)


def _periodic(data: bytes) -> bool:
    return any(data == (data[:period] * (len(data) // period + 1))[: len(data)]
               for period in range(1, MAX_PATTERN_BYTES + 1))


def _secret_block_value(name: str) -> str:
    if _secret_store is None:
        raise PseudonymKeyError(
            f"{KEY_BLOCK_ENV} names a secret, but no secret store is registered in this process "
            f"(kr-reports commands and the flows register Prefect's); set {KEY_ENV} instead"
        )
    return _secret_store(name)


def derive_key(master: bytes, *context: str) -> bytes:
    """HMAC of the master over the context's parts, each length-prefixed.

    The encoding is unambiguous: no two different part lists give the same
    message, whatever characters ('/' included) a part holds.
    """
    message = bytearray(KDF_LABEL)
    for part in context:
        encoded = part.encode()
        message += len(encoded).to_bytes(4, "big") + encoded
    return hmac.new(master, bytes(message), hashlib.sha256).digest()


def release_key(master: bytes, purpose: str, release: str) -> bytes:
    """Per purpose and release: pseudonyms of two releases or purposes never join."""
    return derive_key(master, "release", purpose, release)
