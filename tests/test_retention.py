"""Retention: `kr-reports purge` removes raw, quarantine and protected partitions past their
days, and nothing else (never the release store, the ledger, keys or deliveries)."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from core.config import ConfigError, Retention, load_pipeline_config
from core.locking import LOCK_FILE, data_folder_lock
from core.retention import (
    PURGED_ZONES,
    Partition,
    expired_partitions,
    is_past_retention,
    partition_day,
)
from kr_reports.cli import main
from stages.catalog import Catalog
from stages.retention import purge

AS_OF = dt.date(2026, 12, 7)
DAYS = ("2026-10-01", "2026-11-06", "2026-11-07", "2026-11-29", "2026-11-30", "2026-12-06")
SOURCES = ("network_flows", "subscribers")
RECORD = b"KR0000042,Kim Minji,kim@example.kr,4111111111111111\n"  # what raw zones hold


# ---- which partitions are past retention (pure) ------------------------------------------


@pytest.mark.parametrize(("name", "day"), [
    ("date=2026-11-30", dt.date(2026, 11, 30)),
    ("date=2026-02-30", None),  # not a day
    ("date=2026-11-30.tmp", None),
    (".date=2026-11-30", None),
    ("day=2026-11-30", None),
    ("date=20261130", None),
    ("_SUCCESS", None),
])
def test_only_date_partition_names_have_a_day(name, day):
    assert partition_day(name) == day


def test_older_than_n_days_means_more_than_n_days_before():
    assert not is_past_retention(dt.date(2026, 11, 30), 7, AS_OF)  # 7 days old: kept
    assert is_past_retention(dt.date(2026, 11, 29), 7, AS_OF)  # 8 days old: past
    assert not is_past_retention(AS_OF + dt.timedelta(days=3), 7, AS_OF)  # a future day is kept


def test_only_the_configured_purged_zones_expire():
    old = dt.date(2020, 1, 1)
    partitions = [Partition(zone, "network_flows", old)
                  for zone in ("raw", "quarantine", "protected", "releases", "landing", "analyst")]
    assert expired_partitions(partitions, {"raw": 1, "protected": 1}, AS_OF) == [partitions[0], partitions[2]]
    everything = dict.fromkeys(("raw", "quarantine", "protected", "releases", "landing", "analyst"), 1)
    assert [p.zone for p in expired_partitions(partitions, everything, AS_OF)] == list(PURGED_ZONES)


# ---- configuration --------------------------------------------------------------------------


def test_the_shipped_retention_covers_every_purged_zone(config_dir):
    retention = load_pipeline_config(config_dir).retention
    assert set(retention.keep_days()) == set(PURGED_ZONES)
    assert retention.keep_days() == {"raw": 7, "quarantine": 30, "protected": 30}
    assert Retention().keep_days() == retention.keep_days()  # the default is the shipped one


def _config_with_retention(tmp_path: Path, config_dir: Path, retention) -> Path:
    config = tmp_path / "config"
    shutil.copytree(config_dir, config)
    pipeline = yaml.safe_load((config / "pipeline.yaml").read_text())
    pipeline["retention"] = retention
    (config / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    return config


@pytest.mark.parametrize(("retention", "message"), [
    ({"raw": -1}, r"retention\.raw: Input should be greater than or equal to 1"),
    ({"quarantine": 0}, r"retention\.quarantine: Input should be greater than or equal to 1"),
    ({"protected": "30"}, r"retention\.protected: Input should be a valid integer"),
    ({"protected": 2.5}, r"retention\.protected: Input should be a valid integer"),
    ({"landing": 3}, r"retention\.landing: Extra inputs are not permitted"),
])
def test_bad_retention_is_a_config_error_naming_the_key(tmp_path, config_dir, retention, message):
    config = _config_with_retention(tmp_path, config_dir, retention)
    with pytest.raises(ConfigError, match=rf"pipeline\.yaml: {message}"):
        load_pipeline_config(config)
    assert main(["purge", "--config-dir", str(config), "--data-dir", str(tmp_path / "data")]) == 2


# ---- purging a data folder ------------------------------------------------------------------


def _write(path: Path, content: bytes = RECORD) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _data_folder(root: Path) -> Path:
    """Partitions of every day in every zone, and everything a purge must never touch."""
    data = root / "data"
    for zone in PURGED_ZONES:
        for source in SOURCES:
            for day in DAYS:
                _write(data / zone / source / f"date={day}" / "part-00000.snappy.parquet")
                _write(data / zone / source / f"date={day}" / "_SUCCESS", b"")
        _write(data / zone / "network_flows" / "date=2026-02-30" / "part-00000.parquet")  # not a day
        _write(data / zone / "network_flows" / "notes" / "date=2026-10-01" / "x")  # not a partition
        _write(data / zone / "README")
    old = DAYS[0]
    _write(data / "landing" / "network_flows" / f"date={old}" / "part-00000.parquet")
    _write(data / "analyst" / f"date={old}" / "records" / "part-00000.parquet")
    _write(data / "releases" / "network_traffic_region_hour" / old / "1" / "release.parquet")
    _write(data / "releases" / "network_traffic_region_hour" / old / "1" / "record.json", b"{}")
    _write(data / "ledger.sqlite", b"SQLite format 3\0")
    _write(data / "keys" / "metro-planning.ed25519.pem", b"-----BEGIN PRIVATE KEY-----\n")
    _write(data / "data_docs" / old / "run" / "index.html", b"<html></html>")
    _write(root / "out" / "deliveries" / "metro-planning" / "x" / old / "data.csv", b"region\n")
    return data


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and link under `root`: relative path -> content hash (or link target)."""
    files = {}
    for path in root.rglob("*"):
        if path.name == LOCK_FILE:  # the data folder's run lock, taken by the purge
            continue
        if path.is_symlink():
            files[str(path.relative_to(root))] = f"-> {path.readlink()}"
        elif path.is_file():
            files[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def _partition_files(zone: str, source: str, day: str) -> set[str]:
    folder = f"data/{zone}/{source}/date={day}"
    return {f"{folder}/part-00000.snappy.parquet", f"{folder}/_SUCCESS"}


def _expected_left(before: dict[str, str], keep_days: dict[str, int]) -> dict[str, str]:
    gone = set()
    for zone, keep in keep_days.items():
        for source in SOURCES:
            for day in DAYS:
                if (AS_OF - dt.date.fromisoformat(day)).days > keep:
                    gone |= _partition_files(zone, source, day)
    assert gone and gone <= set(before)
    return {path: digest for path, digest in before.items() if path not in gone}


def test_purge_with_the_configured_days_removes_exactly_the_old_partitions(tmp_path, config_dir, capsys):
    data = _data_folder(tmp_path)
    before = _snapshot(tmp_path)
    code = main(["purge", "--data-dir", str(data), "--config-dir", str(config_dir),
                 "--as-of", AS_OF.isoformat()])
    printed = capsys.readouterr().out
    assert code == 0, printed
    keep_days = {"raw": 7, "quarantine": 30, "protected": 30}
    assert _snapshot(tmp_path) == _expected_left(before, keep_days)
    # raw keeps 7 days: 2026-11-29 (8 days old) goes, 2026-11-30 stays; the others keep 30.
    assert "purge: removed raw/network_flows/date=2026-11-29 (kept 7 days)" in printed
    assert "purge: removed quarantine/subscribers/date=2026-11-06 (kept 30 days)" in printed
    assert "date=2026-11-30" not in printed and "quarantine/subscribers/date=2026-11-07" not in printed
    assert "purge: 16 partition(s) removed as of 2026-12-07 (raw 8, quarantine 4, protected 4)" in printed
    assert "Kim" not in printed and "example.kr" not in printed


def test_older_than_applies_to_every_zone_and_a_dry_run_removes_nothing(tmp_path, config_dir, capsys):
    data = _data_folder(tmp_path)
    before = _snapshot(tmp_path)
    args = ["purge", "--data-dir", str(data), "--config-dir", str(config_dir),
            "--as-of", AS_OF.isoformat(), "--older-than", "2"]
    assert main([*args, "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert _snapshot(tmp_path) == before
    assert "purge: would remove protected/subscribers/date=2026-11-30 (kept 2 days)" in listed
    assert main(args) == 0
    assert _snapshot(tmp_path) == _expected_left(before, dict.fromkeys(PURGED_ZONES, 2))
    done = capsys.readouterr().out
    assert done.replace("removed", "would remove") == listed.replace("removed", "would remove")
    assert "(raw 10, quarantine 10, protected 10)" in done
    assert main(args) == 0  # again: nothing left to remove
    assert "purge: 0 partition(s) removed" in capsys.readouterr().out


@pytest.mark.parametrize("days", ["0", "-3", "seven"])
def test_older_than_must_be_a_positive_number_of_days(tmp_path, days, capsys):
    with pytest.raises(SystemExit) as info:
        main(["purge", "--data-dir", str(tmp_path), f"--older-than={days}"])
    assert info.value.code == 2
    assert "--older-than" in capsys.readouterr().err


def test_symbolic_links_in_a_zone_are_left_alone_and_not_followed(tmp_path, capsys):
    data = _data_folder(tmp_path / "site")
    outside = tmp_path / "outside"
    _write(outside / "victim" / "date=2020-01-01" / "kept.parquet")
    _write(outside / "day" / "kept.parquet")
    (data / "raw" / "network_flows" / "date=2020-01-01").symlink_to(outside / "day")
    (data / "quarantine" / "web_visits").symlink_to(outside / "victim")
    shutil.rmtree(data / "protected")
    (data / "protected").symlink_to(outside)
    before_outside = _snapshot(outside)

    result = purge(Catalog(data, tmp_path / "out"), dict.fromkeys(PURGED_ZONES, 1), AS_OF)

    assert _snapshot(outside) == before_outside
    assert (data / "raw" / "network_flows" / "date=2020-01-01").is_symlink()
    assert result.links_skipped == ("protected", "quarantine/web_visits", "raw/network_flows/date=2020-01-01")
    assert {p.zone for p in result.removed} == {"raw", "quarantine"}
    assert all(p.day != dt.date(2020, 1, 1) for p in result.removed)


def test_an_empty_or_missing_data_folder_purges_nothing(tmp_path):
    result = purge(Catalog(tmp_path / "none", tmp_path / "out"), dict.fromkeys(PURGED_ZONES, 1), AS_OF)
    assert result.removed == () and result.links_skipped == ()
    assert not (tmp_path / "none").exists()


def test_purge_is_refused_while_a_run_holds_the_data_folder(tmp_path, config_dir, capsys):
    data = _data_folder(tmp_path)
    before = _snapshot(tmp_path)
    with data_folder_lock(data):
        code = main(["purge", "--data-dir", str(data), "--config-dir", str(config_dir),
                     "--as-of", AS_OF.isoformat()])
    assert code == 2
    assert "another run is in progress" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before
