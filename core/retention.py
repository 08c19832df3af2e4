"""Retention of the internal zones: which day partitions are past their keeping time.

Raw and quarantine partitions hold full records (names, e-mails, card numbers) and
protected ones pseudonymized rows. Once a day's releases are stored, the release store
and the ledger hold what was released and what it cost; they are never purged, so a
re-run still serves the stored release. Each purged zone keeps a day's partition for
its configured number of days (config/pipeline.yaml `retention`) and no longer.

Pure: names and dates in, decisions out; stages/retention.py finds and removes folders.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PURGED_ZONES = ("raw", "quarantine", "protected")
PARTITION_NAME = re.compile(r"date=(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class Partition:
    """One day's folder of one source in one zone: `<zone>/<source>/date=<day>`."""

    zone: str
    source: str
    day: dt.date

    @property
    def relative(self) -> str:
        return f"{self.zone}/{self.source}/date={self.day.isoformat()}"


def partition_day(name: str) -> dt.date | None:
    """The day of a partition folder named `date=YYYY-MM-DD`; None for any other name."""
    match = PARTITION_NAME.fullmatch(name)
    if match is None:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:  # date=2026-02-30: not a partition this pipeline wrote
        return None


def is_past_retention(day: dt.date, keep_days: int, as_of: dt.date) -> bool:
    """True when `day` is more than `keep_days` days before `as_of` (older than, not as old as)."""
    return (as_of - day).days > keep_days


def expired_partitions(
    partitions: Iterable[Partition], keep_days: Mapping[str, int], as_of: dt.date
) -> list[Partition]:
    """The partitions past their zone's retention, in the order given.

    Only the zones of PURGED_ZONES are ever purged, and of those only the ones `keep_days`
    names: a zone missing from it keeps everything.
    """
    return [
        p for p in partitions
        if p.zone in PURGED_ZONES and p.zone in keep_days
        and is_past_retention(p.day, keep_days[p.zone], as_of)
    ]
