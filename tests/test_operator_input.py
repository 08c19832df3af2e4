"""Operator input that could destroy data or fail obscurely: names, folders, keys, damaged files.

Release ids, report names, partner ids and purposes become folders and key
contexts, so each is one plain name that stays under its folder. A damaged or
unreadable input is one line naming the file and what was expected (exit 2),
never a Python or Java traceback.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from core.config import (
    Aggregation,
    ConfigError,
    Partner,
    ReportSpec,
    load_pipeline_config,
    load_report_specs,
)
from core.keys import KEY_ENV, PseudonymKeyError, key_configured, master_key, release_key
from core.names import UnsafeName, check_identifier, path_under
from core.release_record import ReleaseRecord
from core.store import StoredRelease
from kr_reports.cli import main
from stages.catalog import Catalog
from stages.delivery import deliver

FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration",
          "orig_bytes", "resp_bytes", "conn_state", "local_orig", "missed_bytes", "history", "orig_pkts",
          "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "tunnel_parents")
ROW = ("1379288667.706265", "CoyZrY2g74UvMMgp4a", "192.168.33.10", "1032", "54.245.228.191", "80",
       "tcp", "http", "0.447460", "601", "38393", "RSTO", "-", "0", "ShADadR", "22", "1489", "31", "39641",
       "(empty)")


def _zeek_conn(path: Path, rows: int = 40) -> Path:
    header = ["#separator \\x09", "#empty_field\t(empty)", "#unset_field\t-", "#path\tconn",
              "#fields\t" + "\t".join(FIELDS)]
    body = ["\t".join((f"{1379288667 + i}.5", *ROW[1:])) for i in range(rows)]
    path.write_text("\n".join(header + body) + "\n")
    return path


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def _run(capsys, *args) -> tuple[int, list[str]]:
    code = main(list(args))
    err = capsys.readouterr().err
    return code, err.splitlines()


def _one_line_error(code: int, lines: list[str]) -> str:
    assert code == 2, lines
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


# ---- names and the folders they make ------------------------------------------------------


# Every escape stays inside tmp_path even where the code under test is wrong: an absolute
# release id is a folder of the test's own (never a system folder that a regression would wipe).
@pytest.mark.parametrize("release", ["../..", "..", "a/../../b", "ABSOLUTE", ".hidden", "x" * 129, "", "a b"])
def test_protect_refuses_a_release_that_would_leave_its_folder(release, tmp_path, config_dir, capsys):
    if release == "ABSOLUTE":
        release = str(tmp_path / "work")
    data = tmp_path / "work" / "data"
    for name, payload in (("ledger.sqlite", b"ledger"), ("keys/p.ed25519.pem", b"key"),
                          ("quarantine/protect/old/part-0.parquet", b"rows")):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_bytes(payload)
    (tmp_path / "work" / "sentinel.txt").write_text("beside the data folder")
    before = _snapshot(tmp_path / "work")
    source = _zeek_conn(tmp_path / "conn.log")
    code, lines = _run(capsys, "protect", "--format", "zeek_conn", "--input", str(source),
                       "--out", str(tmp_path / "out"), "--release", release, "--data-dir", str(data),
                       "--config-dir", str(config_dir), "--demo")
    assert "release id" in _one_line_error(code, lines)
    assert _snapshot(tmp_path / "work") == before
    assert not (tmp_path / "out").exists()


def test_protect_refuses_a_quarantine_folder_that_holds_data(tmp_path, config_dir, capsys):
    quarantine = tmp_path / "ledger-folder"
    quarantine.mkdir()
    (quarantine / "ledger.sqlite").write_bytes(b"not to be replaced")
    source = _zeek_conn(tmp_path / "conn.log")
    code, lines = _run(capsys, "protect", "--format", "zeek_conn", "--input", str(source),
                       "--out", str(tmp_path / "out"), "--quarantine", str(quarantine), "--release", "r1",
                       "--config-dir", str(config_dir), "--demo")
    assert "--quarantine" in _one_line_error(code, lines) and "not empty" in lines[0]
    assert (quarantine / "ledger.sqlite").read_bytes() == b"not to be replaced"


def test_kanon_refuses_a_quarantine_folder_that_holds_data(tmp_path, capsys):
    quarantine = tmp_path / "q"
    quarantine.mkdir()
    (quarantine / "keep.csv").write_text("kept")
    table = tmp_path / "people.csv"
    table.write_text("age;zip\n30;1000\n")
    code, lines = _run(capsys, "kanon", "--input", str(table), "--qi", "age", "--hierarchies", str(tmp_path),
                       "--k", "2", "--out", str(tmp_path / "out"), "--quarantine", str(quarantine))
    assert "--quarantine" in _one_line_error(code, lines)
    assert (quarantine / "keep.csv").read_text() == "kept"


def test_protect_accepts_only_a_configured_purpose(tmp_path, config_dir, capsys):
    source = _zeek_conn(tmp_path / "conn.log")
    code, lines = _run(capsys, "protect", "--format", "zeek_conn", "--input", str(source),
                       "--out", str(tmp_path / "out"), "--release", "r1", "--purpose", "marketing",
                       "--config-dir", str(config_dir), "--demo")
    line = _one_line_error(code, lines)
    assert "--purpose 'marketing'" in line
    assert all(p in line for p in load_pipeline_config(config_dir).purposes)


def test_a_name_is_one_plain_segment_and_a_path_stays_under_its_parent(tmp_path):
    assert check_identifier("conn.log-2026-11-01", "release id") == "conn.log-2026-11-01"
    for bad in ("..", "a..b", "a/b", "a\\b", "-a", ".a", "a\0b", "é", None):
        with pytest.raises(UnsafeName):
            check_identifier(bad, "release id")
    assert path_under(tmp_path, "a", "b") == tmp_path.resolve() / "a" / "b"
    (tmp_path / "inside").mkdir()
    (tmp_path / "inside" / "link").symlink_to(tmp_path.parent)
    for parts in (("..",), ("a", "..", ".."), ("/etc",), ("inside", "link", "x"), (".",)):
        with pytest.raises(UnsafeName):
            path_under(tmp_path, *parts)


def test_a_delivery_under_an_unsafe_report_name_writes_nothing(tmp_path, config_dir):
    """Defence in depth: a spec built in code, past validation, still cannot leave the partner's folder."""
    catalog = Catalog(tmp_path / "data", tmp_path / "out")
    partner = Partner(id="p", allowed_purposes=("aggregate_reports",), signing_key="env:KR_TEST_NO_SUCH_KEY",
                      delivery_target=str(tmp_path / "out" / "deliveries" / "p"))
    valid = load_report_specs(config_dir)[0]
    unsafe = ReportSpec.model_construct(name="../../escaped", delivery=valid.delivery,
                                        aggregation=valid.aggregation)
    record = ReleaseRecord(
        release_id="escaped/2026-11-01", number=1, ledger_id="ledger", ledger_entry_id=1, aggregation_hash="",
        report="escaped", source="network_flows", partner="p", period="2026-11-01", accounting="pure",
        epsilon=1.0, delta=0.0, rho=0.0, cells=0, cells_by_status={}, metrics=(), partition_selection=None,
        created_at="2026-11-02T00:00:00+00:00")
    with pytest.raises(UnsafeName):
        deliver(catalog, unsafe, StoredRelease(record, tmp_path / "store"), {}, partner, demo=True)
    assert not (tmp_path / "out" / "escaped").exists() and not (tmp_path / "escaped").exists()


# ---- the catalog's names ----------------------------------------------------------------------


@pytest.fixture
def config_copy(tmp_path, config_dir) -> Path:
    copy = tmp_path / "config"
    shutil.copytree(config_dir, copy)
    return copy


def _edit(path: Path, change) -> None:
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.mark.parametrize("name", ["../../x", "other_report"])
def test_a_report_is_named_as_its_file(name, config_copy):
    path = config_copy / "reports" / "device_brand_region.yaml"
    _edit(path, lambda spec: spec.update(name=name))
    with pytest.raises(ConfigError, match=rf"{path.name}: .*name"):
        load_report_specs(config_copy)


def test_a_report_names_one_aggregation(config_dir):
    spec = load_report_specs(config_dir)[0]
    other = Aggregation.model_validate({**spec.aggregation.model_dump(), "name": "other"})
    with pytest.raises(ValidationError, match="not the report's name"):
        ReportSpec(name=spec.name, delivery=spec.delivery, aggregation=other)


@pytest.mark.parametrize("change, message", [
    (lambda p: p["partners"].append(dict(p["partners"][0])), "partner id given twice: metro-planning"),
    (lambda p: p["caps"].append(dict(p["caps"][0])), "cap given twice: partner internal over 30 days"),
    (lambda p: p["purposes"].append("aggregate_reports"), "purpose given twice"),
    (lambda p: p["purposes"].append("a/b"), "purpose 'a/b' is not a plain name"),
    (lambda p: p["partners"][0].update(allowed_purposes=["marketing"]), "marketing not among purposes"),
    (lambda p: p["partners"][0].update(id="../x"), r"partners\.0\.id"),
])
def test_partners_purposes_and_caps_are_plain_and_given_once(change, message, config_copy):
    _edit(config_copy / "pipeline.yaml", change)
    with pytest.raises(ConfigError, match=rf"pipeline\.yaml: .*{message}"):
        load_pipeline_config(config_copy)


def test_a_delivery_purpose_and_partner_are_plain_names(config_copy):
    path = config_copy / "reports" / "device_brand_region.yaml"
    _edit(path, lambda spec: spec["delivery"].update(purpose="x/../y", partner="../p"))
    with pytest.raises(ConfigError, match=r"delivery\.partner: .*; delivery\.purpose: .*not a plain name"):
        load_report_specs(config_copy)


# ---- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [
    "00" * 32, "ab" * 32, "0123456789abcdef" * 4, bytes(range(32)).hex(), bytes(range(200, 232)).hex(),
    (b"password" * 4).hex(), bytes(range(15)).hex() * 3,
])
def test_a_key_with_too_little_entropy_is_refused_without_showing_it(key, monkeypatch):
    monkeypatch.setenv(KEY_ENV, key)
    with pytest.raises(PseudonymKeyError, match="not random") as refused:
        master_key(demo=False)
    assert key not in str(refused.value).lower()


def test_a_random_key_is_accepted(monkeypatch):
    key = os.urandom(32)
    monkeypatch.setenv(KEY_ENV, key.hex())
    assert master_key(demo=False) == key


def test_demo_mode_uses_a_configured_key_and_key_configured_tells_so(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("KR_PSEUDONYM_KEY_BLOCK", raising=False)
    assert not key_configured()
    assert master_key(demo=True) == master_key(demo=True)  # the run's random key, kept
    key = os.urandom(32)
    monkeypatch.setenv(KEY_ENV, key.hex())
    assert key_configured() and master_key(demo=True) == key


def test_the_derivation_context_is_unambiguous():
    master = os.urandom(32)
    assert release_key(master, "a/b", "c") != release_key(master, "a", "b/c")
    assert release_key(master, "a", "b") == release_key(master, "a", "b")


# ---- damaged and unreadable inputs -------------------------------------------------------------


def _protect(capsys, tmp_path, config_dir, fmt, source, *extra) -> str:
    code, lines = _run(capsys, "protect", "--format", fmt, "--input", str(source),
                       "--out", str(tmp_path / "out"), "--quarantine", str(tmp_path / "q"), "--release", "r1",
                       "--config-dir", str(config_dir), "--demo", *extra)
    line = _one_line_error(code, lines)
    assert str(source) in line
    return line


def test_a_truncated_gzip_file_is_one_line(tmp_path, config_dir, capsys):
    whole = gzip.compress(_zeek_conn(tmp_path / "conn.log", rows=4000).read_bytes())
    cut = tmp_path / "conn.log.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    assert "truncated or corrupt gzip" in _protect(capsys, tmp_path, config_dir, "zeek_conn", cut)


def test_an_unreadable_file_is_one_line(tmp_path, config_dir, capsys, monkeypatch):
    source = _zeek_conn(tmp_path / "conn.log")
    source.chmod(0)
    if os.geteuid() == 0:  # root reads any file: make the open fail as it does for anyone else
        real_open = Path.open

        def denied(self, *args, **kwargs):
            if self == source:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", denied)
    assert "permission denied" in _protect(capsys, tmp_path, config_dir, "zeek_conn", source)


def test_a_pipe_is_not_a_file(tmp_path, config_dir, capsys):
    fifo = tmp_path / "conn.log"
    os.mkfifo(fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert "not a regular file" in _protect(capsys, tmp_path, config_dir, "zeek_conn", fifo)


def test_a_corrupt_parquet_file_is_one_line(tmp_path, config_dir, capsys):
    good = tmp_path / "flows.parquet"
    pd.DataFrame({"a": range(100)}).to_parquet(good)
    payload = good.read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(payload[: len(payload) - 20])
    line = _protect(capsys, tmp_path, config_dir, "canonical", cut, "--source", "network_flows")
    assert "not a Parquet file" in line


def test_a_parquet_file_damaged_inside_is_one_line(spark, tmp_path, config_dir, capsys):
    good = tmp_path / "flows.parquet"
    pd.DataFrame({"subscriber_id": [f"s{i}" for i in range(500)]}).to_parquet(good, compression=None)
    payload = bytearray(good.read_bytes())
    footer = int.from_bytes(payload[-8:-4], "little")
    start = len(payload) - 8 - footer
    payload[start:start + footer // 2] = b"\xff" * (footer // 2)  # the footer's metadata, not its magic
    good.write_bytes(bytes(payload))
    line = _protect(capsys, tmp_path, config_dir, "canonical", good, "--source", "network_flows")
    assert "cannot be read as canonical" in line


def test_format_options_are_checked_in_one_line(tmp_path, config_dir, capsys):
    source = _zeek_conn(tmp_path / "conn.log")
    line = _protect(capsys, tmp_path, config_dir, "zeek_conn", source, "--timezone", "UTC")
    assert "--timezone does not apply to --format zeek_conn" in line
    line = _protect(capsys, tmp_path, config_dir, "canonical", source)
    assert "--format canonical needs --source" in line


def test_an_unknown_timezone_is_one_line(spark, tmp_path, config_dir, capsys):
    flows = tmp_path / "flows.binetflow"
    flows.write_text("StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,sTos,dTos,TotPkts,TotBytes\n"
                     "2013/10/21 13:22:59.340835,3.5,tcp,147.32.83.53,60686,   ->,147.32.80.88,5222,PA_PA,"
                     "0,0,448,49634\n")
    line = _protect(capsys, tmp_path, config_dir, "binetflow", flows, "--timezone", "Mars/Olympus")
    assert "unknown time zone" in line


def test_a_canonical_file_without_a_suffix_names_the_option_to_give(spark, tmp_path, config_dir, capsys):
    bare = tmp_path / "flows"
    bare.write_text("subscriber_id\ns1\n")
    line = _protect(capsys, tmp_path, config_dir, "canonical", bare, "--source", "network_flows")
    assert "--file-format" in line
