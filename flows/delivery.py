"""Partner delivery: data, report page, manifest and signature, published atomically.

A delivery is `<target>/<report>/<day>/` holding data.parquet, data.csv,
report.html, manifest.json (spec, privacy parameters, ledger entry, cells
released by status, validation summary, software versions, SHA-256 of every
other file) and manifest.json.sig (an Ed25519 signature over the manifest's bytes). The
target is the partner's folder or fsspec URL; the public key is published
beside its deliveries as signing_key.pub.pem.

A delivery copies the stored release: noise is never drawn here. What it may
carry is declared once, in kr_reports.disclosure: every manifest field is
public configuration, computed from noisy values, or a release record (ids,
timestamps, checksums), and the data files carry exactly the published
columns. A delivery that would carry anything else is refused before a file
is written; exact input counts stay in the run's own record.

Atomicity. A local folder is filled in a hidden sibling and renamed into
place. Other filesystems cannot rename atomically, so the files go to a
hidden staging prefix, are copied into place, and the signature is written
last as the commit marker: a delivery without its signature is incomplete,
is never reported as delivered, fails `verify`, and is cleaned up and
rewritten by the next attempt.

Verification needs no Spark, ledger or configuration: only the delivery and
the partner's public key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import platform
import shutil
import uuid
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec
import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fsspec.implementations.local import LocalFileSystem

from kr_reports import disclosure, report_page
from kr_reports.config import ConfigError, Partner, ReportSpec
from kr_reports.private import shared_mode
from kr_reports.signing import (
    SignatureInvalid,
    SigningKey,
    check_signature,
    fingerprint,
    public_key_pem,
    resolve_signing_key,
    sign_document,
)
from kr_reports.store import json_text, write_atomically

if TYPE_CHECKING:
    from flows.catalog import Catalog

DATA_FILES = ("data.parquet", "data.csv")
REPORT_PAGE = "report.html"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
PUBLIC_KEY = "signing_key.pub.pem"
STAGING = ".staging"
MANIFEST_VERSION = 1
VERSIONED_PACKAGES = (
    "kr-reports", "pyspark", "great-expectations", "diffprivlib", "prefect", "cryptography", "fsspec",
)


class DeliveryInvalid(RuntimeError):
    """A delivery does not verify: incomplete, altered, or signed by another key."""


class DeliveryIncomplete(DeliveryInvalid):
    """A delivery, its manifest or its signature is missing."""


class ManifestInvalid(DeliveryInvalid):
    """manifest.json cannot be read as a manifest."""


class ChecksumMismatch(DeliveryInvalid):
    """A delivered file does not match its manifest."""


class BadSignature(DeliveryInvalid):
    """The signature does not verify with the given public key."""


# ---- configuration and keys, checked before any data is read --------------------------------


def target_root(catalog: Catalog, partner: Partner) -> str:
    """The partner's delivery target: its configured folder or URL, else <out>/deliveries/<id>."""
    return partner.delivery_target or str(catalog.out_dir / "deliveries" / partner.id)


def check_delivery_setup(catalog: Catalog, partners: Iterable[Partner], demo: bool) -> list[str]:
    """Resolve each partner's signing key and target filesystem; notes about demo keys in use.

    Raises SigningKeyError (naming partner and reference) or ConfigError, so a
    run stops before it reads any data.
    """
    notes = []
    for partner in {p.id: p for p in partners}.values():
        _filesystem(target_root(catalog, partner), partner.id)
        key = _signing_key(catalog, partner, demo)
        if key.demo:
            notes.append(
                f"partner '{partner.id}': signing key '{partner.signing_key}' is not available; "
                f"deliveries are signed with the DEMO key {key.origin} (synthetic data only)"
            )
    return notes


def _signing_key(catalog: Catalog, partner: Partner, demo: bool) -> SigningKey:
    return resolve_signing_key(partner.id, partner.signing_key, catalog.signing_keys, demo)


EXTRAS = {"s3": "s3", "s3a": "s3"}  # protocol -> the package extra (pyproject.toml) that brings it


def _filesystem(location: str, partner: str | None = None):
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


# ---- building a delivery (pure) -------------------------------------------------------------


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def sha256_bytes(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _manifest(spec: ReportSpec, release: dict, validation: dict, files: dict[str, bytes],
              key: SigningKey, delivered_at: str) -> dict:
    aggregation = spec.aggregation
    return {
        "manifest_version": MANIFEST_VERSION,
        "report": spec.name,
        "partner": spec.delivery.partner,
        "purpose": spec.delivery.purpose,
        "policy_clause": spec.delivery.policy_clause,
        "period": release["period"],
        "release_id": release["release_id"],
        "ledger_entry_id": release["ledger_entry_id"],
        "privacy": {
            "guarantee": release.get("guarantee"),
            "unit": aggregation.privacy_unit,
            "accounting": release["accounting"],
            "epsilon": release["epsilon"],
            "delta": release["delta"],
            "rho": release["rho"],
            "contribution_bounds": aggregation.contribution.model_dump(),
            "min_subscribers": aggregation.min_subscribers,
            "sparse_cells": aggregation.sparse_cells if aggregation.min_subscribers is not None else None,
            "partition_selection": release["partition_selection"],
            "metrics": release["metrics"],
        },
        "spec": spec.model_dump(mode="json"),
        "rows_released": release["cells"],
        "cells_by_status": release["cells_by_status"],
        "validation": {name: validation.get(name) for name in ("suite", "success", "evaluated", "failed")},
        "software": software_versions(),
        "delivered_at": delivered_at,
        "signing": {
            "algorithm": "Ed25519",
            "public_key_fingerprint": key.fingerprint,
            "public_key_file": f"../../{PUBLIC_KEY}",
            "signature_file": SIGNATURE,
        },
        "files": {name: sha256_bytes(payload) for name, payload in files.items()},
    }


def build_delivery(spec: ReportSpec, release: dict, data: pd.DataFrame, validation: dict,
                   key: SigningKey, delivered_at: str) -> dict[str, bytes]:
    """Every file of a delivery, by name; the signature covers the manifest's exact bytes.

    Raises disclosure.DisclosureError, before anything is written, when the data
    would carry a column, or the manifest a field, that kr_reports.disclosure does
    not allow. The manifest has no NaN or infinity: JSON has none (they are null).
    """
    disclosure.check_data_columns(data.columns, spec.aggregation)
    parquet, csv = DATA_FILES
    files = {
        parquet: _parquet_bytes(data),
        csv: data.to_csv(index=False).encode(),
        REPORT_PAGE: report_page.render_report(data, report_page.page_info(spec, release)).encode(),
    }
    manifest = _manifest(spec, release, validation, files, key, delivered_at)
    disclosure.check_manifest(manifest)
    manifest_bytes = (json_text(manifest, sort_keys=True) + "\n").encode()
    return {**files, MANIFEST: manifest_bytes, SIGNATURE: sign_document(key, manifest_bytes)}


def _parquet_bytes(data: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    data.to_parquet(buffer, index=False)
    return buffer.getvalue()


# ---- publishing (IO) ------------------------------------------------------------------------


RELEASE_SUFFIX = ".release-"


def delivery_folder(release: dict) -> str:
    """`<period>` for a period's first release; `<period>.release-<n>` for a deliberate new one.

    A new release was charged again so that it could be shared: it is delivered
    beside the first, which stays as the partner received it.
    """
    number = release.get("number", 1)
    return str(release["period"]) if number == 1 else f"{release['period']}{RELEASE_SUFFIX}{number}"


def parse_delivery_folder(name: str) -> tuple[str, int]:
    """(period, release number) of a folder that delivery_folder named."""
    period, _, number = name.partition(RELEASE_SUFFIX)
    return period, int(number or 1)


def deliver(catalog: Catalog, spec: ReportSpec, release: dict, validation: dict,
            partner: Partner, demo: bool = False) -> dict:
    """Copy a stored release to the partner's target, signed; a complete delivery is kept as it is."""
    key = _signing_key(catalog, partner, demo)
    fs, root = _filesystem(target_root(catalog, partner), partner.id)
    _publish_public_key(fs, root, key.public)
    root, relative = root.rstrip("/"), f"{spec.name}/{delivery_folder(release)}"
    final, local = f"{root}/{relative}", isinstance(fs, LocalFileSystem)
    result = {"path": final if local else fs.unstrip_protocol(final), "created": False, "demo_key": key.demo}
    if fs.isfile(f"{final}/{SIGNATURE}"):
        return result  # delivered before: kept as it is
    data = pd.read_parquet(Path(release["path"]) / "release.parquet")
    delivered_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    files = build_delivery(spec, release, data, validation, key, delivered_at)
    if local:
        return {**result, "created": _publish_local(Path(final), files)}
    return {**result, "created": _publish_staged(fs, final, f"{root}/{STAGING}/{relative}", files)}


def _shared_folders(folder: Path) -> None:
    """Make `folder` and its missing parents with the mode the operator's own umask gives.

    The internal zones are private (kr_reports.private sets the process umask
    to 077). A local delivery is not internal: it is what the partner receives
    (noisy, signed), and an account that picks it up may not be the operator's,
    so its folders and files keep the modes they had before that umask.
    """
    for path in reversed([p for p in (folder, *folder.parents) if not p.exists()]):
        with suppress(FileExistsError):
            path.mkdir()
        path.chmod(shared_mode(0o777))


def _publish_public_key(fs, root: str, public: Ed25519PublicKey) -> None:
    """signing_key.pub.pem beside the partner's deliveries, rewritten only when the key changed."""
    path, pem = f"{root.rstrip('/')}/{PUBLIC_KEY}", public_key_pem(public)
    if fs.exists(path) and fs.cat_file(path) == pem:
        return
    if isinstance(fs, LocalFileSystem):
        local = Path(path)
        _shared_folders(local.parent)
        temporary = local.parent / f".{local.name}.tmp-{uuid.uuid4().hex}"
        temporary.write_bytes(pem)
        temporary.chmod(shared_mode(0o666))
        os.replace(temporary, local)
    else:
        fs.pipe_file(path, pem)  # one object, written whole


def _publish_local(final: Path, files: dict[str, bytes]) -> bool:
    """Rename a filled hidden sibling into place; False when a signed delivery is already there."""
    if (final / SIGNATURE).is_file():
        return False
    if final.exists():  # unsigned: written before deliveries were signed; replace it whole
        retired = final.parent / f".{final.name}.unsigned-{uuid.uuid4().hex}"
        os.replace(final, retired)
        shutil.rmtree(retired)

    def fill(folder: Path) -> None:
        for name, payload in files.items():
            (folder / name).write_bytes(payload)
            (folder / name).chmod(shared_mode(0o666))
        folder.chmod(shared_mode(0o777))

    _shared_folders(final.parent)
    return write_atomically(final, fill)


def _publish_staged(fs, final: str, staging_root: str, files: dict[str, bytes]) -> bool:
    """Stage, copy into place, then write the signature: nothing counts until the signature is there.

    One writer per delivery: leftovers at `final` or under `staging_root` are
    from a failed attempt (they have no signature) and are removed first.
    """
    if fs.exists(f"{final}/{SIGNATURE}"):
        return False
    _remove_unsigned(fs, final)
    _remove(fs, staging_root)
    staging = f"{staging_root}/{uuid.uuid4().hex}"
    try:
        for name, payload in files.items():
            fs.pipe_file(f"{staging}/{name}", payload)
        for name in files:
            if name != SIGNATURE:
                fs.copy(f"{staging}/{name}", f"{final}/{name}")
        fs.copy(f"{staging}/{SIGNATURE}", f"{final}/{SIGNATURE}")  # the commit marker, last
    except BaseException:
        with suppress(Exception):  # best effort: leftovers are unsigned, and the retry clears them
            _remove_unsigned(fs, final)
            _remove(fs, staging_root)
        raise
    _remove(fs, staging_root)
    return True


def _remove_unsigned(fs, final: str) -> None:
    """Remove a partial delivery, its signature first so it is never complete-looking on the way."""
    _remove(fs, f"{final}/{SIGNATURE}")
    _remove(fs, final)


def _remove(fs, path: str) -> None:
    if fs.exists(path):
        fs.rm(path, recursive=True)


# ---- verification (no Spark, ledger or configuration) ---------------------------------------


@dataclass(frozen=True)
class Verified:
    location: str
    partner: str
    report: str
    period: str
    fingerprint: str
    files: tuple[str, ...]
    unlisted: tuple[str, ...]  # present but not in the manifest: reported, not trusted


def verify_delivery(location: str | Path, public_key: Ed25519PublicKey) -> Verified:
    """Check the signature over manifest.json, then every file's SHA-256; raise DeliveryInvalid."""
    fs, root = _filesystem(str(location))
    if not fs.isdir(root):
        raise DeliveryIncomplete(f"{location}: no delivery here")
    manifest_bytes = _read(fs, root, MANIFEST, location)
    signature = _read(fs, root, SIGNATURE, location, missing="the delivery is not signed: it is "
                      "incomplete (the signature is written last) or was tampered with")
    try:
        check_signature(public_key, manifest_bytes, signature)
    except SignatureInvalid as exc:
        raise BadSignature(f"{location}: {exc}") from None
    manifest = _parse_manifest(manifest_bytes, location)
    signing = manifest.get("signing")
    if not isinstance(signing, dict) or signing.get("public_key_fingerprint") != fingerprint(public_key):
        raise BadSignature(f"{location}: manifest.json names another key than the one that signed it")
    listed = _check_files(fs, root, manifest, location)
    present = {Path(p).name for p in fs.ls(root, detail=False)}
    unlisted = tuple(sorted(present - set(listed) - {MANIFEST, SIGNATURE}))
    return Verified(str(location), str(manifest.get("partner")), str(manifest.get("report")),
                    str(manifest.get("period")), fingerprint(public_key), listed, unlisted)


def verify_checksums(delivery: Path | str) -> None:
    """Raise ChecksumMismatch naming the file whose SHA-256 is not the manifest's (no signature check)."""
    fs, root = _filesystem(str(delivery))
    manifest = _parse_manifest(_read(fs, root, MANIFEST, delivery), delivery)
    _check_files(fs, root, manifest, delivery)


def manifest_partner(location: str | Path) -> str:
    """The partner a delivery's manifest names (unverified: only to pick the key to verify it with)."""
    fs, root = _filesystem(str(location))
    partner = _parse_manifest(_read(fs, root, MANIFEST, location), location).get("partner")
    if not isinstance(partner, str):
        raise ManifestInvalid(f"{location}: manifest.json names no partner")
    return partner


def _read(fs, root: str, name: str, location, missing: str = "missing") -> bytes:
    path = f"{root.rstrip('/')}/{name}"
    if not fs.isfile(path):
        raise DeliveryIncomplete(f"{location}: {name}: {missing}")
    return fs.cat_file(path)


def _parse_manifest(payload: bytes, location) -> dict:
    try:
        manifest = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ManifestInvalid(f"{location}: manifest.json is not valid JSON (truncated or altered)") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ManifestInvalid(f"{location}: manifest.json has no 'files' checksums")
    unsafe = [name for name in files if not _plain_name(name)]
    if unsafe:
        raise ManifestInvalid(f"{location}: manifest.json lists files outside the delivery")
    return manifest


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


def _check_files(fs, root: str, manifest: dict, location) -> tuple[str, ...]:
    """The listed files, each present with its SHA-256; ChecksumMismatch naming the first that is not."""
    for name, expected in sorted(manifest["files"].items()):
        path = f"{root.rstrip('/')}/{name}"
        if not fs.isfile(path):
            raise ChecksumMismatch(f"{location}/{name}: listed in manifest.json but missing")
        if _sha256_of(fs, path) != expected:
            raise ChecksumMismatch(f"{location}/{name}: SHA-256 does not match manifest.json")
    return tuple(sorted(manifest["files"]))


def _sha256_of(fs, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
