"""Data at rest: what holds records or keys is the operator's alone; deliveries keep their modes.

Raw and quarantine zones hold full records (names, e-mails, card numbers);
they, every other internal zone and Spark's scratch are written with files
0600 and folders 0700, whatever umask the operator's shell had.
"""

import os
import stat
from pathlib import Path

import pytest

from core.private import shared_mode
from kr_reports.cli import main

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ZEEK_CONN = SHARED / "zeek_sample" / "conn.log"


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _open_to_others(root: Path) -> list[str]:
    """Every file or folder under `root` (itself included) that group or others can use."""
    return [f"{p.relative_to(root.parent)} {_mode(p):04o}"
            for p in (root, *sorted(root.rglob("*"))) if _mode(p) & 0o077]


def test_every_internal_zone_of_a_daily_run_is_private(daily_run):
    data = daily_run["data"]
    for zone in ("raw", "quarantine"):
        assert [p for p in (data / zone).rglob("*.parquet")], f"the run wrote no {zone} files"
    assert _open_to_others(data) == []


def test_deliveries_keep_the_modes_the_operators_umask_gives(daily_run):
    # A partner's pickup account may not be the operator's: deliveries are not made private.
    deliveries = daily_run["out"] / "deliveries"
    files = [p for p in deliveries.rglob("*") if p.is_file()]
    folders = [p for p in deliveries.rglob("*") if p.is_dir()]
    assert files and folders
    assert {_mode(p) for p in files} == {shared_mode(0o666)}
    assert {_mode(p) for p in folders} == {shared_mode(0o777)}


def test_the_spark_scratch_folder_is_private(spark):
    scratch = Path(spark.conf.get("spark.local.dir")).parent
    assert _mode(scratch) == 0o700 and scratch.stat().st_uid == os.getuid()
    assert spark.sparkContext._jsc.hadoopConfiguration().get("fs.permissions.umask-mode") == "077"


@pytest.mark.skipif(not ZEEK_CONN.is_file(), reason="../shared/data is not available")
def test_protect_writes_private_files_under_a_shared_umask(tmp_path, spark, capsys):
    out, quarantine = tmp_path / "out", tmp_path / "quarantine"
    previous = os.umask(0o022)  # the operator's shell
    try:
        code = main(["protect", "--format", "zeek_conn", "--input", str(ZEEK_CONN), "--out", str(out),
                     "--quarantine", str(quarantine), "--demo", "--release", "r1"])
    finally:
        os.umask(previous)
    assert code == 0, capsys.readouterr().err
    assert list(quarantine.rglob("*.parquet")) and list((out / "protected").rglob("*.parquet"))
    assert _open_to_others(out) == [] and _open_to_others(quarantine) == []


def test_the_cli_refuses_a_world_writable_scratch_folder_in_one_line(tmp_path, monkeypatch, capsys):
    scratch = tmp_path / "shared-scratch"
    scratch.mkdir()
    scratch.chmod(0o1777)  # like /tmp itself
    monkeypatch.setenv("KR_SPARK_LOCAL_DIR", str(scratch))
    assert main(["scan", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"kr-reports scan: error: {scratch}: Spark's scratch folder")
    assert error.endswith(f"it is owned by uid {os.getuid()} with mode 1777")
    assert "\n" not in error and list(scratch.iterdir()) == []
