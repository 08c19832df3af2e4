"""One run at a time on a data folder, and the staging an interrupted run left is cleaned up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from core.locking import LOCK_FILE, RunInProgress, data_folder_lock
from core.store import remove_staging

HOLD = "import fcntl, os, sys, time; d = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); " \
       "fcntl.flock(d, fcntl.LOCK_EX); print('held', flush=True); time.sleep(600)"


def _staging(parent: Path, name: str, age_seconds: float = 0.0, folder: bool = True) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f".{name}.tmp-{uuid.uuid4().hex}"
    if folder:
        path.mkdir()
        (path / "data.parquet").write_bytes(b"half written")
    else:
        path.write_text("{}")
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return path


def test_a_second_run_on_the_data_folder_is_refused_naming_it(tmp_path):
    refused = pytest.raises(RunInProgress, match="another run is in progress on " + re.escape(str(tmp_path)))
    with data_folder_lock(tmp_path), refused, data_folder_lock(tmp_path):
        pass
    with data_folder_lock(tmp_path):  # released when the first run ended
        pass


def test_a_killed_run_does_not_block_the_next(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / LOCK_FILE)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"
        with pytest.raises(RunInProgress), data_folder_lock(tmp_path):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with data_folder_lock(tmp_path):
        pass


def test_the_flow_and_the_cli_refuse_a_second_run_before_reading_anything(tmp_path, config_dir,
                                                                          prefect_harness, capsys):
    from flows.daily import daily_partner_reports
    from kr_reports.cli import main

    data = tmp_path / "data"
    with data_folder_lock(data):
        with pytest.raises(RunInProgress, match="another run is in progress"):
            daily_partner_reports(data_dir=str(data), out_dir=str(tmp_path / "out"),
                                  config_dir=str(config_dir), demo=True)
        code = main(["run", "--demo", "--data-dir", str(data), "--out-dir", str(tmp_path / "out"),
                     "--config-dir", str(config_dir)])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"kr-reports run: error: another run is in progress on {data}; "
        "wait for it to finish (its lock is released when it ends)")
    assert sorted(p.name for p in data.iterdir()) == [LOCK_FILE]  # nothing read, nothing written


def test_remove_staging_takes_leftovers_and_spares_young_ones_when_asked(tmp_path):
    old_folder = _staging(tmp_path / "report" / "2026-11-01", "1", age_seconds=7200)
    old_file = _staging(tmp_path, "store.json", age_seconds=7200, folder=False)
    young = _staging(tmp_path / "report", "2026-11-02", age_seconds=5)
    kept = [tmp_path / "report" / "2026-11-01" / "1", tmp_path / ".hidden-but-not-staging"]
    kept[0].mkdir()
    kept[1].write_text("x")

    assert sorted(remove_staging(tmp_path, older_than_seconds=3600)) == sorted([old_folder, old_file])
    assert young.exists() and all(p.exists() for p in kept)
    assert remove_staging(tmp_path) == [young]
    assert all(p.exists() for p in kept)


def test_the_next_run_removes_what_an_interrupted_run_left(tmp_path, config_dir, prefect_harness):
    """In the release store (the run holds the data folder) and in a partner's delivery folder
    (shared with runs on other data folders: only staging too old to be in use)."""
    from flows.daily import daily_partner_reports
    from stages.catalog import MissingInput

    data, out = tmp_path / "data", tmp_path / "out"
    release = _staging(data / "releases" / "device_brand_region" / "2026-11-01", "2")
    store_marker = _staging(data / "releases", "store.json", folder=False)
    delivery = out / "deliveries" / "metro-planning" / "device_brand_region"
    abandoned = _staging(delivery, "2026-11-01", age_seconds=2 * 3600)
    in_use = _staging(delivery, "2026-11-02", age_seconds=10)

    with pytest.raises(MissingInput, match="no landing data"):  # the cleanup comes first
        daily_partner_reports(data_dir=str(data), out_dir=str(out), config_dir=str(config_dir), demo=True)

    assert not release.exists() and not store_marker.exists() and not abandoned.exists()
    assert in_use.exists()
