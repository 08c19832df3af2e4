"""Publishing a delivery (IO): atomically in a local folder, signature last on other filesystems."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fsspec.implementations.local import LocalFileSystem

from core.config import Partner, ReportSpec
from core.location import write_once
from core.names import check_identifier, path_under
from core.private import shared_mode
from core.signing import (
    public_key_pem,
)
from core.store import StoredRelease, remove_staging
from stages.delivery.build import build_delivery
from stages.delivery.layout import PUBLIC_KEY, SIGNATURE, STAGING
from stages.delivery.setup import open_filesystem, partner_signing_key, target_root

if TYPE_CHECKING:
    from stages.catalog import Catalog

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
    key = partner_signing_key(catalog, partner, demo)
    fs, root = open_filesystem(target_root(catalog, partner), partner.id)
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
    data = release.table()
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
    return write_once(final, fill, marker=SIGNATURE)


STAGING_GRACE_SECONDS = 3600  # a delivery is staged for seconds; one older than this was abandoned


def remove_staging_leftovers(catalog: Catalog, partner: Partner) -> list[Path]:
    """Hidden staging folders an interrupted run left in the partner's local delivery folder.

    The delivery folder may be shared with runs on other data folders, which the
    data folder's lock does not hold off: only staging older than STAGING_GRACE_SECONDS
    is removed, never one a concurrent run may still be filling. (On other filesystems
    the next delivery of the same report and day clears its own staging prefix.)
    """
    fs, root = open_filesystem(target_root(catalog, partner), partner.id)
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
