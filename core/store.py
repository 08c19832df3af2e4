"""The release store: every noisy release, written once, read again instead of re-noised.

releases/
  store.json                 the identity of the ledger that paid for every release here
  <name>/<period>/<n>/       release n of an aggregation for a period (1, 2, ...)
    release.parquet          the noisy table with its intervals
    release.json             its record (core.release_record): plan, charge, ledger identity,
                             aggregation hash

The store may be a local folder or a URL on shared storage (core.location). A
release folder is written once, so a reader sees all of it or nothing: locally
it is filled in a hidden sibling and renamed into place; on an object store its
record is written last, and a folder without a record is not a release. The
store and the ledger must agree: the store names its ledger once (store.json),
and every record names its charge.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.errors import InternalAlarm
from core.location import location, on_shared_storage, write_once
from core.release_record import RecordInvalid, ReleaseRecord

STORE_FILE = "store.json"
RECORD_FILE = "release.json"
TABLE_FILE = "release.parquet"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PERIOD = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class StoreError(InternalAlarm, RuntimeError):
    """The release store is not what the ledger or the caller expects."""


def json_text(document, *, sort_keys: bool = False) -> str:
    """JSON with NaN and infinities as null: JSON has no NaN, and a reader must not guess."""
    return json.dumps(_finite(document), indent=2, sort_keys=sort_keys, allow_nan=False)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass(frozen=True)
class StoredRelease:
    """A release in the store: its record, and the folder holding its noisy table."""

    record: ReleaseRecord
    folder: Path

    @property
    def table_path(self) -> Path:
        return self.folder / TABLE_FILE

    def table(self) -> pd.DataFrame:
        with self.table_path.open("rb") as table:
            return pd.read_parquet(table)


class ReleaseStore:
    def __init__(self, root: Path | str):
        self.root = location(root)

    def __repr__(self) -> str:
        return f"ReleaseStore({str(self.root)!r})"

    def folder(self, name: str, period: str, number: int) -> Path:
        if not _NAME.match(name) or not _PERIOD.match(period) or number < 1:
            raise StoreError(f"not a release of the store: name {name!r}, period {period!r}, number {number}")
        return self.root / name / period / str(number)

    def numbers(self, name: str, period: str) -> list[int]:
        """Stored releases of an aggregation for a period, oldest first."""
        folder = self.root / name / period
        if not _NAME.match(name) or not folder.is_dir():
            return []
        stored = (p for p in folder.iterdir() if p.name.isdigit() and (p / RECORD_FILE).is_file())
        return sorted(int(p.name) for p in stored)

    def latest(self, name: str, period: str) -> StoredRelease | None:
        numbers = self.numbers(name, period)
        return self.read(name, period, numbers[-1]) if numbers else None

    def read(self, name: str, period: str, number: int) -> StoredRelease:
        folder = self.folder(name, period, number)
        return StoredRelease(_read_record(folder / RECORD_FILE), folder)

    def records(self) -> Iterator[ReleaseRecord]:
        """Every stored release's record."""
        for path in sorted(self.root.glob(f"*/*/*/{RECORD_FILE}")):
            if not any(part.startswith(".") for part in path.parts[-4:-1]):
                yield _read_record(path)

    def is_empty(self) -> bool:
        return next(self.records(), None) is None

    def ledger_id(self) -> str | None:
        """The ledger this store's releases were charged to; None for a store never written."""
        marker = self.root / STORE_FILE
        if not marker.is_file():
            return None
        return json.loads(marker.read_text()).get("ledger_id")

    def bind_to_ledger(self, ledger_id: str) -> None:
        """Name the store's ledger, once, before its first release is written."""
        if self.ledger_id() == ledger_id:
            return
        document = json_text({"ledger_id": ledger_id})
        self.root.mkdir(parents=True, exist_ok=True)
        if on_shared_storage(self.root):  # one object, written whole
            (self.root / STORE_FILE).write_text(document)
            return
        temporary = self.root / f".{STORE_FILE}.tmp-{uuid.uuid4().hex}"
        temporary.write_text(document)
        os.replace(temporary, self.root / STORE_FILE)

    def write(self, name: str, period: str, number: int, table: pd.DataFrame,
              record: ReleaseRecord) -> StoredRelease:
        """Store a release once; a release already stored under that number is an error."""
        final = self.folder(name, period, number)

        def fill(folder: Path) -> None:
            with (folder / TABLE_FILE).open("wb") as out:
                table.to_parquet(out, index=False)
            (folder / RECORD_FILE).write_text(json_text(record.to_dict()))  # the marker: last

        if not write_once(final, fill, marker=RECORD_FILE):
            raise StoreError(f"{final}: release {number} of '{name}' for {period} is already stored")
        return self.read(name, period, number)


def _read_record(path: Path) -> ReleaseRecord:
    try:
        return ReleaseRecord.from_dict(json.loads(path.read_text()))
    except RecordInvalid as invalid:
        raise RecordInvalid(f"{path}: {invalid}") from None


_STAGING = re.compile(r"^\..+\.(tmp|unsigned)-[0-9a-f]{32}$")  # write_once's staging, retired deliveries


def remove_staging(root: Path, older_than_seconds: float = 0.0) -> list[Path]:
    """Remove hidden `.<name>.tmp-<uuid>` staging entries (and `.unsigned-` retirees) an interrupted
    writer left under `root`.

    A staging entry lives only while its writer fills it, so one found by a run that
    holds its folder's lock is a leftover. Where other writers may be at work (a
    shared delivery folder), pass `older_than_seconds` to leave the young ones alone.
    Returns what was removed. Shared storage has no staging (core.location.write_once).
    """
    if on_shared_storage(root) or not root.is_dir():
        return []
    cutoff = time.time() - older_than_seconds
    removed = []
    for folder, subfolders, files in os.walk(root):
        for name in [*subfolders, *files]:
            path = Path(folder) / name
            if _STAGING.match(name) and _remove_if_older(path, cutoff):
                removed.append(path)
        subfolders[:] = [name for name in subfolders if not _STAGING.match(name)]
    return removed


def _remove_if_older(path: Path, cutoff: float) -> bool:
    try:  # a writer may rename its staging entry into place meanwhile: then it is not ours to remove
        if path.lstat().st_mtime > cutoff:
            return False
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    return True
