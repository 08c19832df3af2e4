"""Pseudonymization keys: one master key, derived per context.

The master key comes from KR_PSEUDONYM_KEY (hex, at least 32 bytes), or
from the Prefect Secret block named by KR_PSEUDONYM_KEY_BLOCK. Demo runs on
the embedded synthetic data may use a random per-process key instead.
Derived keys (HMAC of the master over a context string such as
"protected/2026-11-01") make pseudonyms of two contexts impossible to join.
Keys are never logged, never put in exception messages, and never passed
as Prefect parameters (which Prefect stores).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

KEY_ENV = "KR_PSEUDONYM_KEY"
KEY_BLOCK_ENV = "KR_PSEUDONYM_KEY_BLOCK"
MIN_KEY_BYTES = 32
_demo_key: bytes | None = None


class PseudonymKeyError(RuntimeError):
    """No usable pseudonymization key."""


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
    return key


def _secret_block_value(name: str) -> str:
    from prefect.blocks.system import Secret

    try:
        return str(Secret.load(name).get())
    except ValueError:
        raise PseudonymKeyError(f"Prefect Secret block '{name}' not found") from None


def derive_key(master: bytes, context: str) -> bytes:
    return hmac.new(master, f"kr-reports/v1/{context}".encode(), hashlib.sha256).digest()


def release_key(master: bytes, purpose: str, release: str) -> bytes:
    """Per purpose and release: pseudonyms of two releases or purposes never join."""
    return derive_key(master, f"release/{purpose}/{release}")
