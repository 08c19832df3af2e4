"""Each partner's target and signing key, checked before any data is read."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import fsspec

from core.config import ConfigError, Partner
from core.location import url_of
from core.signing import (
    SigningKey,
    resolve_signing_key,
)

if TYPE_CHECKING:
    from stages.catalog import Catalog


def target_root(catalog: Catalog, partner: Partner) -> str:
    """The partner's delivery target: its configured folder or URL, else <out>/deliveries/<id>."""
    return partner.delivery_target or url_of(catalog.out_dir / "deliveries" / partner.id)


def check_delivery_setup(catalog: Catalog, partners: Iterable[Partner], demo: bool) -> list[str]:
    """Resolve each partner's signing key and target filesystem; notes about demo keys in use.

    Raises SigningKeyError (naming partner and reference) or ConfigError, so a
    run stops before it reads any data.
    """
    notes = []
    for partner in {p.id: p for p in partners}.values():
        open_filesystem(target_root(catalog, partner), partner.id)
        key = partner_signing_key(catalog, partner, demo)
        if key.demo:
            notes.append(
                f"partner '{partner.id}': signing key '{partner.signing_key}' is not available; "
                f"deliveries are signed with the DEMO key {key.origin} (synthetic data only)"
            )
    return notes


def partner_signing_key(catalog: Catalog, partner: Partner, demo: bool) -> SigningKey:
    return resolve_signing_key(partner.id, partner.signing_key, catalog.signing_keys, demo)


EXTRAS = {"s3": "s3", "s3a": "s3"}  # protocol -> the package extra (pyproject.toml) that brings it


def open_filesystem(location: str, partner: str | None = None):
    """(filesystem, path) of a folder or URL; a missing filesystem package is a ConfigError."""
    try:
        return fsspec.core.url_to_fs(location)
    except (ImportError, ValueError) as exc:
        protocol = fsspec.utils.get_protocol(location)
        owner = f"partner '{partner}': " if partner else ""
        extra = EXTRAS.get(protocol)
        hint = f" (install it with: pip install 'kr-reports[{extra}]')" if extra else ""
        message = f"{owner}delivery target protocol '{protocol}' is not usable: {exc}{hint}"
        raise ConfigError(message) from None
