"""`kr-reports purge`: remove day partitions of the internal zones past their retention.

Only folders named `date=YYYY-MM-DD` two levels inside raw/, quarantine/ and protected/
are candidates (core/retention.py decides which are past retention); the release
store, the ledger, keys, landing, the analyst zone and deliveries are never looked at. A
symbolic link at any level is reported and left alone, never followed, so a link planted
in a zone cannot make the purge delete anything outside it.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.location import on_shared_storage
from core.locking import data_folder_lock
from core.retention import PURGED_ZONES, Partition, expired_partitions, partition_day
from stages.catalog import Catalog


@dataclass(frozen=True)
class PurgeResult:
    """What a purge removed (or would remove, dry run) and what it left because it is a link."""

    as_of: dt.date
    keep_days: Mapping[str, int]
    removed: tuple[Partition, ...]
    links_skipped: tuple[str, ...] = field(default=())
    dry_run: bool = False


def _is_link(path: Path) -> bool:
    return not on_shared_storage(path) and path.is_symlink()  # shared storage (a URL) has no links


def _real_folders(folder: Path, links: list[str], zones: Path) -> Iterator[Path]:
    """Sub-folders of `folder`, sorted; symbolic links are noted in `links`, not followed."""
    for path in sorted(folder.iterdir()):
        if _is_link(path):
            links.append(str(path.relative_to(zones)))
        elif path.is_dir():
            yield path


def find_partitions(catalog: Catalog, links: list[str]) -> Iterator[tuple[Partition, Path]]:
    """Every `<zone>/<source>/date=D` folder of the purged zones, with its path."""
    for zone in PURGED_ZONES:
        root = catalog.zone_root(zone)
        if _is_link(root):
            links.append(zone)
            continue
        if not root.is_dir():
            continue
        for source in _real_folders(root, links, catalog.zones_root):
            for folder in source.iterdir():
                day = partition_day(folder.name)
                if day is None:
                    continue
                if _is_link(folder):
                    links.append(str(folder.relative_to(catalog.zones_root)))
                elif folder.is_dir():
                    yield Partition(zone, source.name, day), folder


def purge(
    catalog: Catalog, keep_days: Mapping[str, int], as_of: dt.date, dry_run: bool = False
) -> PurgeResult:
    """Remove the partitions past retention as of `as_of` (nothing with `dry_run`).

    Holds the data folder's run lock: a run in progress may be reading the partitions.
    """
    if not catalog.data_dir.is_dir():  # nothing to purge, and no folder to create for a lock
        return PurgeResult(as_of, dict(keep_days), (), (), dry_run)
    with data_folder_lock(catalog.data_dir):
        return _purge(catalog, keep_days, as_of, dry_run)


def _purge(catalog: Catalog, keep_days: Mapping[str, int], as_of: dt.date, dry_run: bool) -> PurgeResult:
    links: list[str] = []
    found = dict(find_partitions(catalog, links))
    expired = sorted(expired_partitions(found, keep_days, as_of), key=lambda p: (p.zone, p.source, p.day))
    removed = []
    for partition in expired:
        path = found[partition]
        if _swapped_for_link(path, catalog.zone_root(partition.zone)):
            links.append(partition.relative)
            continue
        if not dry_run:
            _remove(path)
        removed.append(partition)
    return PurgeResult(as_of, dict(keep_days), tuple(removed), tuple(sorted(links)), dry_run)


def format_purge(result: PurgeResult) -> str:
    """Lines naming each partition (zone, source, day) and the retention applied; no data values."""
    verb = "would remove" if result.dry_run else "removed"
    lines = [f"purge: {verb} {p.relative} (kept {result.keep_days[p.zone]} days)" for p in result.removed]
    lines += [f"purge: left {link}: a symbolic link, not followed" for link in result.links_skipped]
    per_zone = ", ".join(
        f"{zone} {sum(p.zone == zone for p in result.removed)}" for zone in PURGED_ZONES
        if zone in result.keep_days
    )
    lines.append(
        f"purge: {len(result.removed)} partition(s) {verb} as of {result.as_of.isoformat()} ({per_zone}); "
        "the release store and the ledger are never purged"
    )
    return "\n".join(lines)


def _swapped_for_link(path: Path, zone_root: Path) -> bool:
    """A link put on the way since the partition was found: it is left alone."""
    return not on_shared_storage(path) and not path.resolve().is_relative_to(zone_root.resolve())


def _remove(path: Path) -> None:
    if on_shared_storage(path):
        path.fs.rm(path.path, recursive=True)
    else:
        shutil.rmtree(path)  # refuses a symbolic link and does not follow links inside
