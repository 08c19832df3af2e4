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


def _real_folders(folder: Path, links: list[str], data_dir: Path) -> Iterator[Path]:
    """Sub-folders of `folder`, sorted; symbolic links are noted in `links`, not followed."""
    for path in sorted(folder.iterdir()):
        if path.is_symlink():
            links.append(str(path.relative_to(data_dir)))
        elif path.is_dir():
            yield path


def find_partitions(catalog: Catalog, links: list[str]) -> Iterator[tuple[Partition, Path]]:
    """Every `<zone>/<source>/date=D` folder of the purged zones, with its path."""
    for zone in PURGED_ZONES:
        root = catalog.zone_root(zone)
        if root.is_symlink():
            links.append(zone)
            continue
        if not root.is_dir():
            continue
        for source in _real_folders(root, links, catalog.data_dir):
            for folder in source.iterdir():
                day = partition_day(folder.name)
                if day is None:
                    continue
                if folder.is_symlink():
                    links.append(str(folder.relative_to(catalog.data_dir)))
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
    zones = {zone: catalog.zone_root(zone).resolve() for zone in PURGED_ZONES}
    removed = []
    for partition in expired:
        path = found[partition]
        if not path.resolve().is_relative_to(zones[partition.zone]):  # a link swapped in since: leave it
            links.append(partition.relative)
            continue
        if not dry_run:
            shutil.rmtree(path)  # refuses a symbolic link and does not follow links inside
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
