"""Partner delivery: data, report page, manifest and signature, published atomically.

A delivery is `<target>/<report>/<day>/` holding data.parquet, data.csv,
report.html, manifest.json (spec, privacy parameters, ledger entry, cells
released by status, validation summary, software versions, SHA-256 of every
other file) and manifest.json.sig (an Ed25519 signature over the manifest's bytes). The
target is the partner's folder or fsspec URL; the public key is published
beside its deliveries as signing_key.pub.pem.

A delivery copies the stored release: noise is never drawn here. What it may
carry is declared once, in core.disclosure: every manifest field is
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
the partner's public key, whose fingerprint the partner pins out of band (the
copy beside the deliveries is only as safe as that folder). It is strict: a
file the manifest does not list, a manifest whose partner, report, period or
release is not its folder's (a genuine delivery of another day copied in), and
a demo-signed delivery (the manifest says which) all fail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import platform
import posixpath
import shutil
import uuid
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import fsspec
import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fsspec.implementations.local import LocalFileSystem

from core import disclosure, report_page
from core.config import ConfigError, Partner, ReportSpec
from core.errors import KrReportsError
from core.names import check_identifier, path_under
from core.private import shared_mode
from core.release_record import ReleaseRecord
from core.signing import (
    SignatureInvalid,
    SigningKey,
    check_signature,
    fingerprint,
    public_key_pem,
    resolve_signing_key,
    sign_document,
)
from core.store import TABLE_FILE, StoredRelease, json_text, remove_staging, write_atomically

if TYPE_CHECKING:
    from stages.catalog import Catalog

DATA_FILES = ("data.parquet", "data.csv")
REPORT_PAGE = "report.html"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
PUBLIC_KEY = "signing_key.pub.pem"
STAGING = ".staging"
MANIFEST_VERSION = 2  # 2: the manifest says which release it is and whether a demo key signed it
VERSIONED_PACKAGES = (
    "kr-reports", "pyspark", "great-expectations", "diffprivlib", "prefect", "cryptography", "fsspec",
)


class DeliveryInvalid(KrReportsError, RuntimeError):
    """A delivery does not verify: incomplete, altered, or signed by another key."""


class DeliveryIncomplete(DeliveryInvalid):
    """A delivery, its manifest or its signature is missing."""


class ManifestInvalid(DeliveryInvalid):
    """manifest.json cannot be read as a manifest."""


class ChecksumMismatch(DeliveryInvalid):
    """A delivered file does not match its manifest."""


class BadSignature(DeliveryInvalid):
    """The signature does not verify with the given public key."""


class UntrustedKey(DeliveryInvalid):
    """The public key given is not the one whose fingerprint the partner pinned."""


class DemoSigned(DeliveryInvalid):
    """A demo key signed the delivery (or its manifest does not say one did not)."""


class MisplacedDelivery(DeliveryInvalid):
    """The manifest's partner, report, period or release is not that of the folder it is in."""


class UnlistedFile(DeliveryInvalid):
    """A file in the delivery is not listed in its manifest (so nothing vouches for it)."""


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


def _manifest(spec: ReportSpec, release: ReleaseRecord, validation: dict, files: dict[str, bytes],
              key: SigningKey, delivered_at: str) -> dict:
    aggregation, recorded = spec.aggregation, release.to_dict()
    return {
        "manifest_version": MANIFEST_VERSION,
        "report": spec.name,
        "partner": spec.delivery.partner,
        "purpose": spec.delivery.purpose,
        "policy_clause": spec.delivery.policy_clause,
        "period": release.period,
        "release_id": release.release_id,
        "release_number": release.number,
        "ledger_entry_id": release.ledger_entry_id,
        "privacy": {
            "guarantee": recorded["guarantee"],
            "unit": aggregation.privacy_unit,
            "accounting": release.accounting,
            "epsilon": release.epsilon,
            "delta": release.delta,
            "rho": release.rho,
            "contribution_bounds": aggregation.contribution.model_dump(),
            "min_subscribers": aggregation.min_subscribers,
            "sparse_cells": aggregation.sparse_cells if aggregation.min_subscribers is not None else None,
            "partition_selection": recorded["partition_selection"],
            "metrics": recorded["metrics"],
        },
        "spec": spec.model_dump(mode="json"),
        "rows_released": release.cells,
        "cells_by_status": recorded["cells_by_status"],
        "validation": {name: validation.get(name) for name in ("suite", "success", "evaluated", "failed")},
        "software": software_versions(),
        "delivered_at": delivered_at,
        "signing": {
            "algorithm": "Ed25519",
            "public_key_fingerprint": key.fingerprint,
            "demo_key": key.demo,
            "public_key_file": f"../../{PUBLIC_KEY}",
            "signature_file": SIGNATURE,
        },
        "files": {name: sha256_bytes(payload) for name, payload in files.items()},
    }


def build_delivery(spec: ReportSpec, release: ReleaseRecord, data: pd.DataFrame, validation: dict,
                   key: SigningKey, delivered_at: str) -> dict[str, bytes]:
    """Every file of a delivery, by name; the signature covers the manifest's exact bytes.

    Raises disclosure.DisclosureError, before anything is written, when the data
    would carry a column, or the manifest a field, that core.disclosure does
    not allow. The manifest has no NaN or infinity: JSON has none (they are null).
    """
    disclosure.check_data_columns(data.columns, spec.aggregation)
    parquet, csv = DATA_FILES
    files = {
        parquet: _parquet_bytes(data),
        csv: _csv_bytes(data),
        REPORT_PAGE: report_page.render_report(data, report_page.page_info(spec, release)).encode(),
    }
    manifest = _manifest(spec, release, validation, files, key, delivered_at)
    disclosure.check_manifest(manifest)
    manifest_bytes = (json_text(manifest, sort_keys=True) + "\n").encode()
    return {**files, MANIFEST: manifest_bytes, SIGNATURE: sign_document(key, manifest_bytes)}


# A spreadsheet runs a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _neutralised(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def _csv_bytes(data: pd.DataFrame) -> bytes:
    """data.csv, where a text cell a spreadsheet would run as a formula gets a leading "'".

    Only text cells: numeric columns are written as numbers, and a negative
    noisy count ("-3") is a number to a spreadsheet, not a formula; quoting it
    would turn the partner's numbers into text. data.parquet keeps every value as is.
    Lines end CRLF (RFC 4180), so a cell holding a CR is quoted, not a row break.
    """
    text_columns = [c for c in data.columns if not pd.api.types.is_numeric_dtype(data[c])]
    safe = data.assign(**{c: data[c].map(_neutralised) for c in text_columns})
    return safe.to_csv(index=False, lineterminator="\r\n").encode()


def _parquet_bytes(data: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    data.to_parquet(buffer, index=False)
    return buffer.getvalue()


# ---- publishing (IO) ------------------------------------------------------------------------


RELEASE_SUFFIX = ".release-"


def delivery_folder(period: str, number: int = 1) -> str:
    """`<period>` for a period's first release; `<period>.release-<n>` for a deliberate new one.

    A new release was charged again so that it could be shared: it is delivered
    beside the first, which stays as the partner received it.
    """
    return str(period) if number == 1 else f"{period}{RELEASE_SUFFIX}{number}"


def parse_delivery_folder(name: str) -> tuple[str, int]:
    """(period, release number) of a folder that delivery_folder named."""
    period, _, number = name.partition(RELEASE_SUFFIX)
    return period, int(number or 1)


@dataclass(frozen=True)
class Delivered:
    """A delivery: where it is, whether this call wrote it (False: kept as delivered before), and
    whether a demo key signed it."""

    path: str  # the delivery's folder, or its URL
    created: bool
    demo_key: bool


def deliver(catalog: Catalog, spec: ReportSpec, release: StoredRelease, validation: dict,
            partner: Partner, demo: bool = False) -> Delivered:
    """Copy a stored release to the partner's target, signed; a complete delivery is kept as it is."""
    key = _signing_key(catalog, partner, demo)
    fs, root = _filesystem(target_root(catalog, partner), partner.id)
    _publish_public_key(fs, root, key.public)
    record = release.record
    report, folder = check_identifier(spec.name, "report name"), delivery_folder(record.period, record.number)
    check_identifier(folder, "delivery folder")
    root, relative = root.rstrip("/"), f"{report}/{folder}"
    final, local = f"{root}/{relative}", isinstance(fs, LocalFileSystem)
    if local:  # what may be replaced (and removed) stays inside the partner's folder
        path_under(root, report, folder)
    path = final if local else fs.unstrip_protocol(final)
    if fs.isfile(f"{final}/{SIGNATURE}"):
        return Delivered(path, created=False, demo_key=key.demo)  # delivered before: kept as it is
    data = pd.read_parquet(release.folder / TABLE_FILE)
    delivered_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    files = build_delivery(spec, record, data, validation, key, delivered_at)
    if local:
        created = _publish_local(Path(final), files)
    else:
        created = _publish_staged(fs, final, f"{root}/{STAGING}/{relative}", files)
    return Delivered(path, created=created, demo_key=key.demo)


def _shared_folders(folder: Path) -> None:
    """Make `folder` and its missing parents with the mode the operator's own umask gives.

    The internal zones are private (core.private sets the process umask
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


STAGING_GRACE_SECONDS = 3600  # a delivery is staged for seconds; one older than this was abandoned


def remove_staging_leftovers(catalog: Catalog, partner: Partner) -> list[Path]:
    """Hidden staging folders an interrupted run left in the partner's local delivery folder.

    The delivery folder may be shared with runs on other data folders, which the
    data folder's lock does not hold off: only staging older than STAGING_GRACE_SECONDS
    is removed, never one a concurrent run may still be filling. (On other filesystems
    the next delivery of the same report and day clears its own staging prefix.)
    """
    fs, root = _filesystem(target_root(catalog, partner), partner.id)
    if not isinstance(fs, LocalFileSystem):
        return []
    return remove_staging(Path(root), older_than_seconds=STAGING_GRACE_SECONDS)


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
    unlisted: tuple[str, ...]  # not in the manifest, accepted unverified: the partner named them
    demo_key: bool  # signed by a demo key, or the manifest does not say it was not


def verify_delivery(location: str | Path, public_key: Ed25519PublicKey, *, pinned: str | None = None,
                    partner: str | None = None, allow_extra: Iterable[str] = (),
                    allow_demo: bool = False) -> Verified:
    """Verify a delivery as its partner should trust it; raise DeliveryInvalid naming what fails.

    In order: the public key is the one whose fingerprint the partner pinned
    (`pinned`, given to them out of band: the key file beside the deliveries is
    only as safe as that folder); the signature over manifest.json; a demo key
    did not sign it (unless `allow_demo`); the manifest's partner, report,
    period and release are those of the folders it sits in (`partner` when the
    partner's folder is not named by its id), so a genuine delivery of another
    day does not pass for this one; every listed file's SHA-256; and no file
    is there that the manifest does not list, but those named in `allow_extra`.
    """
    fs, root = _filesystem(str(location))
    if not fs.isdir(root):
        raise DeliveryIncomplete(f"{location}: no delivery here")
    _check_pin(public_key, pinned, location)
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
    demo = _check_demo(manifest, allow_demo, location)
    _check_place(root, manifest, partner, location)
    listed = _check_files(fs, root, manifest, location)
    unlisted = _check_unlisted(fs, root, listed, set(allow_extra), location)
    return Verified(str(location), str(manifest.get("partner")), str(manifest.get("report")),
                    str(manifest.get("period")), fingerprint(public_key), listed, unlisted, demo)


def _check_pin(public_key: Ed25519PublicKey, pinned: str | None, location) -> None:
    actual = fingerprint(public_key)
    if pinned is not None and actual != pinned:
        raise UntrustedKey(f"{location}: the public key given is {actual}, not the pinned {pinned}: "
                           "it is not the key the operator gave you (replaced, or another partner's)")


def _check_demo(manifest: dict, allow_demo: bool, location) -> bool:
    """Whether the delivery may be demo-signed; DemoSigned unless the manifest says it is not, or allowed."""
    said = manifest["signing"].get("demo_key")
    if said is False:
        return False
    if allow_demo:
        return True
    if said is True:
        raise DemoSigned(f"{location}: signed with a DEMO key (synthetic data only, never real partner "
                         "data); pass --allow-demo to accept a demo delivery")
    raise DemoSigned(f"{location}: manifest.json (version {manifest.get('manifest_version')}) does not say "
                     "whether a demo key signed it; pass --allow-demo only if the key's fingerprint "
                     "was given to you as the partner's real key")


def _check_place(root: str, manifest: dict, partner: str | None, location) -> None:
    """MisplacedDelivery unless the manifest's partner, report, period and release are its folders'."""
    parts = PurePosixPath(posixpath.normpath(root)).parts  # `d/x/..` is `d`
    if len(parts) < 3:
        raise MisplacedDelivery(f"{location}: not in a <partner>/<report>/<period> folder")
    in_folder = {"partner": partner or parts[-3], "report": parts[-2], "period": parts[-1]}
    in_manifest = {"partner": manifest.get("partner"), "report": manifest.get("report"),
                   "period": delivery_folder(manifest.get("period"), manifest.get("release_number", 1))}
    wrong = [f"{what} '{in_manifest[what]}', not '{in_folder[what]}'"
             for what in in_folder if in_manifest[what] != in_folder[what]]
    if wrong:
        hint = "" if partner else " (give --partner when your folder is not named by your partner id)"
        raise MisplacedDelivery(f"{location}: manifest.json is for another place: {'; '.join(wrong)}: a "
                                f"genuine delivery of another report, day or partner was put here{hint}")


def _check_unlisted(fs, root: str, listed: tuple[str, ...], allowed: set[str], location) -> tuple[str, ...]:
    """The allowed unlisted files present; UnlistedFile naming the others."""
    present = {PurePosixPath(p.rstrip("/")).name for p in fs.ls(root, detail=False)}
    unlisted = present - set(listed) - {MANIFEST, SIGNATURE}
    refused = sorted(unlisted - allowed)
    if refused:
        raise UnlistedFile(f"{location}: {', '.join(refused)}: not listed in manifest.json, so not signed "
                           "(remove it, or accept it unverified with --allow-extra NAME)")
    return tuple(sorted(unlisted))


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
