"""Verifying a delivery: needs no Spark, ledger or configuration, only the delivery and a key."""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.signing import (
    SignatureInvalid,
    check_signature,
    fingerprint,
)
from stages.delivery.layout import (
    MANIFEST,
    SIGNATURE,
    BadSignature,
    ChecksumMismatch,
    DeliveryIncomplete,
    DemoSigned,
    ManifestInvalid,
    MisplacedDelivery,
    UnlistedFile,
    UntrustedKey,
)
from stages.delivery.publish import delivery_folder
from stages.delivery.setup import open_filesystem


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
    fs, root = open_filesystem(str(location))
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
    fs, root = open_filesystem(str(delivery))
    manifest = _parse_manifest(_read(fs, root, MANIFEST, delivery), delivery)
    _check_files(fs, root, manifest, delivery)


def manifest_partner(location: str | Path) -> str:
    """The partner a delivery's manifest names (unverified: only to pick the key to verify it with)."""
    fs, root = open_filesystem(str(location))
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
