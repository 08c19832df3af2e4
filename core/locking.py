"""One run at a time on a data folder.

A run writes intermediate datasets (raw, quarantine, protected, the analyst
zone) in place; a second run on the same folder would overwrite them under the
first one's feet. The lock is an exclusive flock(2) on `<data>/.run.lock`: the
kernel releases it when its holder ends, however it ends (kill -9 included), so a
killed run never blocks the next one.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import KrReportsError

LOCK_FILE = ".run.lock"


class RunInProgress(KrReportsError, RuntimeError):
    """Another run holds the data folder."""


@contextmanager
def data_folder_lock(data_dir: Path) -> Iterator[None]:
    """Hold the data folder for this run, or refuse at once when another run holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInProgress(f"another run is in progress on {data_dir}; "
                                "wait for it to finish (its lock is released when it ends)") from None
        yield
    finally:
        os.close(descriptor)  # closing the descriptor releases the lock
