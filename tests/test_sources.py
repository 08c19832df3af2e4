"""config/sources.yaml: the daily flow reads an operator's own exports, in a shipped format.

The end-to-end run reads network_flows from a day folder of real Argus
binetflow files (CTU-13, ../shared/data/netflow_ctu) with a few damaged lines,
call_records from an operator's CDR export (its own column names, day-first
local times, an IMSI column) through a format file of the operator's, and the
three other sources from the generator's landing.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import SHARED_DATA

from core.config import ConfigError
from core.schemas import MAX_DURATION_S, SOURCES
from core.sources import GENERATOR_LANDING, SourceLanding, load_sources_config
from stages.catalog import Catalog, MissingInput
from stages.formats import FormatError

ARGUS = SHARED_DATA / "netflow_ctu" / "2013-10-21_capture-1.binetflow"
ZEEK_CONN = SHARED_DATA / "zeek_sample" / "conn.log"
ARGUS_DAY = dt.date(2013, 10, 21)  # the capture's day (Europe/Prague wall clock, all within it in UTC)
ARGUS_ENTRY = {"path": "exports/argus/{day:%Y-%m-%d}/*.binetflow", "format": "binetflow",
               "options": {"timezone": "Europe/Prague"}}
# Lines a real export may hold that the format cannot read, each with its reason.
FIELD_COUNT_LINE = "2013/10/21 14:00:00.000000,1.5,tcp,147.32.83.53,40000,   ->,147.32.80.9"
BAD_TIME_LINE = "2013/13/41 14:00:00.000000,1.5,tcp,147.32.83.53,40001,   ->,147.32.80.9,80,CON,0,0,2,120"
CUT_LINE = "2013/10/21 17:52:36.000000,0.5,udp,147.32.83.53,51494,  <->,147.32.80.105,53,CON,0,0,2,5"
BROKEN_LINES = {"malformed:field_count": FIELD_COUNT_LINE, "malformed:timestamp": BAD_TIME_LINE,
                "malformed:truncated": CUT_LINE}


def write_argus_day(folder: Path) -> int:
    """The capture split over two files of one day folder, with the broken lines; its line count.

    The second file ends without a line break: its last line may be cut short.
    """
    header, *rows = ARGUS.read_text().splitlines()
    half = len(rows) // 2
    folder.mkdir(parents=True)
    first = [header, *rows[:half], FIELD_COUNT_LINE, BAD_TIME_LINE]
    (folder / "capture-1.part-1.binetflow").write_text("\n".join(first) + "\n")
    (folder / "capture-1.part-2.binetflow").write_text("\n".join([header, *rows[half:], CUT_LINE]))
    (folder / "notes.txt").write_text("not a flow file: the pattern leaves it out\n")
    return len(rows) + len(BROKEN_LINES)


# An operator's CDR export: its own names, ';', day-first Berlin wall-clock times, an IMSI beside.
CDR_HEADER = "ACCOUNT;A_NUMBER;B_NUMBER;START_TS;DURATION;CALL_TYPE;CELL;IMSI"
CDR_FORMAT = """\
name: switch_cdr
target: call_records
description: CDR export of the switch (semicolon CSV, day-first local times)
layout: {kind: csv, delimiter: ";", header: true}
options:
  timezone: {kind: timezone, default: Europe/Berlin, help: the switch's clock}
columns:
  account_id: {from: ACCOUNT}
  caller_msisdn: {from: A_NUMBER}
  callee_msisdn: {from: B_NUMBER}
  start_time: {from: START_TS, convert: timestamp, pattern: "dd/MM/yyyy HH:mm:ss", timezone: $timezone}
  duration_s: {from: DURATION}
  call_type: {from: CALL_TYPE, convert: lookup, map: {v: voice, s: sms, d: data}}
  cell_id: {from: CELL}
dropped:
  IMSI: "SIM identity (a device identifier): not part of call_records"
"""
CDR_TYPES = {"voice": "V", "sms": "S", "data": "D"}
CDR_BROKEN = {"not_allowed:call_type":
              "A00000001;+4915100000001;+4930000001;21/10/2013 12:00:00;60;X;C01010;1",
              "malformed:timestamp": "A00000001;+4915100000001;+4930000001;31/02/2013 25:00:00;60;V;C01010;1",
              "malformed:field_count": "A00000001;+4915100000001;+4930000001;21/10/2013 12:00:00"}


def write_cdr_day(folder: Path, generated_calls: pd.DataFrame) -> pd.DataFrame:
    """The generator's clean calls of the day as the switch exports them, plus the broken lines;
    returns the calls written (their times in UTC, as ingest must give them back)."""
    calls = generated_calls.dropna(subset=["account_id", "start_time", "duration_s", "call_type"])
    calls = calls[calls["call_type"].isin(CDR_TYPES)
                  & calls["cell_id"].astype("string").str.fullmatch(r"C\d{5}").fillna(False).astype(bool)
                  & calls["duration_s"].astype("string").str.fullmatch(r"\d+").fillna(False).astype(bool)]
    calls = calls[calls["duration_s"].astype(int) <= MAX_DURATION_S]  # the generator's bad rows are out
    utc = pd.to_datetime(calls["start_time"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    calls = calls[utc.notna() & (utc.dt.date == ARGUS_DAY)].head(400)
    utc = pd.to_datetime(calls["start_time"], format="%Y-%m-%d %H:%M:%S").dt.tz_localize("UTC")
    local = utc.dt.tz_convert("Europe/Berlin").dt.strftime("%d/%m/%Y %H:%M:%S")
    rows = [";".join([a, caller or "", callee or "", when, str(d), CDR_TYPES[kind], cell or "",
                      f"26201{i:010d}"])
            for i, (a, caller, callee, when, d, kind, cell) in enumerate(zip(
                calls["account_id"], calls["caller_msisdn"], calls["callee_msisdn"], local,
                calls["duration_s"], calls["call_type"], calls["cell_id"], strict=True))]
    folder.mkdir(parents=True)
    (folder / "cdr.csv").write_text("\n".join([CDR_HEADER, *rows, *CDR_BROKEN.values()]) + "\n")
    return calls


def write_config(config_dir: Path, tmp: Path, sources: dict | str) -> Path:
    """A copy of the shipped configuration with this sources.yaml."""
    config = tmp / "config"
    shutil.copytree(config_dir, config)
    text = sources if isinstance(sources, str) else yaml.safe_dump({"sources": sources})
    (config / "sources.yaml").write_text(text)
    return config


# --- the model (no Spark) -------------------------------------------------------------


def test_the_shipped_sources_read_the_generators_landing(config_dir):
    config = load_sources_config(config_dir)
    assert set(config.sources) == set(SOURCES)
    assert all(config.landing(s).is_generator_landing for s in SOURCES)


def test_no_sources_file_is_the_generators_landing(tmp_path):
    config = load_sources_config(tmp_path)
    assert config.sources == {}
    assert all(config.landing(s) == GENERATOR_LANDING for s in SOURCES)


def test_a_format_file_is_read_from_the_config_folder(tmp_path, config_dir):
    config = write_config(config_dir, tmp_path, {
        "network_flows": {"path": "/x/{day}", "format_file": "formats/my_flows.yaml"}})
    (config / "formats").mkdir(exist_ok=True)
    (config / "formats" / "my_flows.yaml").write_text("name: my_flows\n")
    landing = load_sources_config(config).landing("network_flows")
    assert landing.format_file == config / "formats" / "my_flows.yaml"


def test_the_day_pattern_names_the_day_and_resolves_against_the_data_folder(tmp_path):
    catalog = Catalog(data_dir=tmp_path / "data", out_dir=tmp_path / "out")
    day_folder = tmp_path / "data" / "exports" / "zeek" / "2013-09-16"
    day_folder.mkdir(parents=True)
    for name in ("conn.00:00:00-01:00:00.log.gz", "conn.01:00:00-02:00:00.log.gz", "dns.00:00:00.log.gz"):
        (day_folder / name).write_bytes(b"")
    (tmp_path / "data" / "exports" / "zeek" / "2013-09-17").mkdir()
    landing = SourceLanding(path="exports/zeek/{day:%Y-%m-%d}/conn.*.log.gz", format="zeek_conn")
    found = catalog.source_input(SOURCES["network_flows"], dt.date(2013, 9, 16), landing)
    assert [p.name for p in found] == ["conn.00:00:00-01:00:00.log.gz", "conn.01:00:00-02:00:00.log.gz"]
    with pytest.raises(MissingInput, match=r"exports/zeek/2013-09-17/conn\.\*\.log\.gz: no network_flows "
                                           r"input for 2013-09-17"):
        catalog.source_input(SOURCES["network_flows"], dt.date(2013, 9, 17), landing)
    absolute = SourceLanding(path=str(tmp_path / "data/exports/zeek/{day:%Y-%m-%d}"), format="zeek_conn")
    assert catalog.source_input(SOURCES["network_flows"], dt.date(2013, 9, 16), absolute) == [day_folder]
    assert catalog.source_input(SOURCES["devices"], ARGUS_DAY, GENERATOR_LANDING) == [
        catalog.landing(SOURCES["devices"], ARGUS_DAY)]


BAD_SOURCES = [
    pytest.param({"flows": {"path": "/x/{day}", "format": "binetflow"}},
                 r"sources\.yaml: sources: .*unknown source\(s\) flows \(expected some of subscribers",
                 id="unknown source"),
    pytest.param({"network_flows": {"path": "/x/{day}", "format": "argus"}},
                 r"sources\.yaml: sources\.network_flows\.format: unknown format 'argus' \(one of "
                 r"binetflow, .*zeek_conn",
                 id="unknown format"),
    pytest.param({"network_flows": {"path": "/exports/argus/latest/*.binetflow", "format": "binetflow"}},
                 r"sources\.yaml: sources\.network_flows\.path: .*has no \{day\}", id="no day in the path"),
    pytest.param({"network_flows": {"path": "/exports/{day:%Y-%m}/*.binetflow", "format": "binetflow"}},
                 r"sources\.yaml: sources\.network_flows\.path: .*does not tell every day apart",
                 id="a month is not a day"),
    pytest.param({"network_flows": {"path": "/x/{date}", "format": "binetflow"}},
                 r"sources\.yaml: sources\.network_flows\.path: .*unknown placeholder\(s\) date",
                 id="unknown placeholder"),
    pytest.param({"network_flows": {"path": "/x/{day}", "format": "binetflow", "options": {"tz": "UTC"}}},
                 r"sources\.yaml: sources\.network_flows\.options: format 'binetflow' takes no "
                 r"option\(s\) tz \(allowed: timezone", id="unknown option"),
    pytest.param({"network_flows": {"path": "/x/{day}", "format": "canonical",
                                    "options": {"source": "devices"}}},
                 r"sources\.network_flows\.options: format 'canonical' takes no option\(s\) source",
                 id="canonical's source is the entry's"),
    pytest.param({"network_flows": {"path": "/x/{day}", "format": "binetflow", "options": {"timezone": 1}}},
                 r"sources\.network_flows\.options\.timezone\.str: Input should be a valid string",
                 id="a number for an option"),
    pytest.param({"network_flows": {"path": "/x/{day}", "format": "zeek_dns"}},
                 r"sources\.network_flows\.format: format 'zeek_dns' reads web_visits files, "
                 "not network_flows",
                 id="a format for another source"),
    pytest.param({"network_flows": {"format": "binetflow"}},
                 r"sources\.network_flows: .*a path is needed", id="no path"),
    pytest.param({"network_flows": {"path": "/x/{day}", "format_file": "formats/missing.yaml"}},
                 r"sources\.network_flows\.format_file: .*format file .*formats/missing\.yaml not found",
                 id="missing format file"),
    pytest.param({"network_flows": {"path": "s3a://bucket/flows/", "format": "binetflow"}},
                 r"sources\.network_flows\.path: .*has no \{day\}", id="a URL without the day"),
    pytest.param("sources:\n  network_flows: [binetflow\n", r"sources\.yaml: not valid YAML", id="not YAML"),
]


@pytest.mark.parametrize(("sources", "error"), BAD_SOURCES)
def test_a_bad_sources_file_stops_the_run_before_the_data_folder(
    sources, error, tmp_path, config_dir, prefect_harness
):
    from flows.daily import daily_partner_reports

    config = write_config(config_dir, tmp_path, sources)
    data = tmp_path / "no-data"
    with pytest.raises(ConfigError, match=error) as refused:
        daily_partner_reports(data_dir=str(data), out_dir=str(tmp_path / "out"), config_dir=str(config),
                              demo=True)
    assert "\n" not in str(refused.value)
    assert str(config / "sources.yaml") in str(refused.value)
    assert not data.exists()


def test_a_bad_format_file_is_refused_before_the_data_folder(tmp_path, config_dir, prefect_harness):
    from flows.daily import daily_partner_reports

    config = write_config(config_dir, tmp_path, {
        "network_flows": {"path": "/x/{day}", "format_file": "formats/my_flows.yaml"}})
    (config / "formats" / "my_flows.yaml").write_text("name: my_flows\n")  # no target, layout, columns
    with pytest.raises(ConfigError, match=r"sources\.network_flows\.format_file: .*my_flows\.yaml"):
        daily_partner_reports(data_dir=str(tmp_path / "no-data"), out_dir=str(tmp_path / "out"),
                              config_dir=str(config), demo=True)
    assert not (tmp_path / "no-data").exists()


def test_scheduled_runs_with_demo_keys_refuse_a_source_read_from_exports(tmp_path, config_dir):
    from flows.schedules import check_demo_data, load_schedules
    from stages.catalog import SYNTHETIC_GENERATOR

    landing = tmp_path / "data" / "landing"  # the generator's marker: synthetic, as far as it goes
    landing.mkdir(parents=True)
    (landing / ".complete").write_text(json.dumps({"generator": SYNTHETIC_GENERATOR, "dates": []}))
    shipped = load_schedules(config_dir / "schedules.yaml")

    def schedules(config: Path):
        parameters = shipped.parameters.model_copy(
            update={"config_dir": str(config), "data_dir": str(tmp_path / "data"), "demo": True})
        return shipped.model_copy(update={"parameters": parameters})

    check_demo_data(schedules(config_dir))  # the shipped sources: the generator's landing
    config = write_config(config_dir, tmp_path, {"network_flows": ARGUS_ENTRY})
    with pytest.raises(ConfigError, match=r"schedules say demo: true, but sources\.yaml reads network_flows "
                                          "from exports"):
        check_demo_data(schedules(config))


# --- ingest through a configured format (Spark) -------------------------------------------


def test_ingest_reads_a_day_of_gzipped_zeek_conn_logs(tmp_path, spark):
    """Two gzipped conn logs of one day folder, picked by the pattern; the next day has none."""
    from stages.daily import ingest

    catalog = Catalog(data_dir=tmp_path / "data", out_dir=tmp_path / "out")
    day = dt.date(2013, 9, 15)  # the sample's day (UTC)
    folder = tmp_path / "data" / "zeek" / day.isoformat()
    folder.mkdir(parents=True)
    header = [line for line in ZEEK_CONN.read_text().splitlines() if line.startswith("#")]
    rows = [line for line in ZEEK_CONN.read_text().splitlines() if not line.startswith("#")]
    half = len(rows) // 2
    for name, part in (("conn.00.log.gz", rows[:half]), ("conn.01.log.gz", rows[half:])):
        with gzip.open(folder / name, "wt") as handle:
            handle.write("\n".join([*header, *part]) + "\n")
    landing = SourceLanding(path="zeek/{day:%Y-%m-%d}/conn.*.log.gz", format="zeek_conn")
    result = ingest(catalog, "network_flows", day, landing=landing)
    assert result.rows_in == len(rows)
    assert result.rows_in == result.rows_kept + result.rows_quarantined
    assert result.rows_kept > len(rows) // 2
    with pytest.raises(MissingInput, match=r"zeek/2013-09-16/conn\.\*\.log\.gz: no network_flows input"):
        ingest(catalog, "network_flows", day + dt.timedelta(days=1), landing=landing)


def test_canonical_files_in_an_own_folder_are_read_as_the_entrys_source(tmp_path, spark):
    from stages.daily import ingest

    catalog = Catalog(data_dir=tmp_path / "data", out_dir=tmp_path / "out")
    day = dt.date(2026, 11, 1)
    folder = tmp_path / "data" / "drops" / "20261101"
    folder.mkdir(parents=True)
    (folder / "visits.csv").write_text("\n".join([
        ",".join(SOURCES["web_visits"].column_names),
        "A000001,192.0.2.10,example.com,https://example.com/a,2026-11-01 08:00:00,1200,Mozilla/5.0",
        "A000002,192.0.2.11,example.org,,2026-11-01 09:30:00,900,curl/8.0",
        "A000003,192.0.2.12,example.net,,2026-11-01 10:00:00,lots,curl/8.0",
        'A000004,192.0.2.13,example.com,"https://example.com/x',  # a quote never closed
    ]) + "\n")
    landing = SourceLanding(path="drops/{day:%Y%m%d}", format="canonical")
    result = ingest(catalog, "web_visits", day, landing=landing)
    assert (result.rows_in, result.rows_kept) == (4, 2)
    assert result.quarantined_by_reason == {"malformed:record": 1, "unparseable:bytes": 1}


def test_an_option_value_the_format_cannot_use_is_one_line_naming_the_folder(tmp_path, spark):
    from stages.daily import ingest

    catalog = Catalog(data_dir=tmp_path / "data", out_dir=tmp_path / "out")
    write_argus_day(tmp_path / "data" / "exports" / "argus" / ARGUS_DAY.isoformat())
    landing = SourceLanding(**{**ARGUS_ENTRY, "options": {"timezone": "Europe/Atlantis"}})
    with pytest.raises(FormatError, match=r"capture-1\.part-1\.binetflow: .*Europe/Atlantis"):
        ingest(catalog, "network_flows", ARGUS_DAY, landing=landing)


# --- the daily flow over an Argus export ----------------------------------------------------


@pytest.fixture(scope="module")
def argus_run(tmp_path_factory, spark, prefect_harness, config_dir):
    """One daily run: network_flows from real Argus files, call_records from a CDR export read
    through the operator's format file, the rest from the generator's landing."""
    from flows.daily import daily_partner_reports
    from stages.generate import write_landing

    root = tmp_path_factory.mktemp("argus-run")
    data, out = root / "data", root / "out"
    generated = write_landing(data / "landing", n_subscribers=300, days=1, seed=13, bad_row_rate=0.03,
                              start_date=ARGUS_DAY)
    lines = write_argus_day(data / "exports" / "argus" / ARGUS_DAY.isoformat())
    landing_calls = pd.read_parquet(data / "landing" / "call_records" / f"date={ARGUS_DAY.isoformat()}")
    calls = write_cdr_day(data / "exports" / "cdr" / ARGUS_DAY.strftime("%Y%m%d"), landing_calls)
    config = write_config(config_dir, root, {
        "network_flows": ARGUS_ENTRY,
        "call_records": {"path": "exports/cdr/{day:%Y%m%d}/cdr.csv",
                         "format_file": "formats/switch_cdr.yaml"},
    })  # the others: not listed
    (config / "formats" / "switch_cdr.yaml").write_text(CDR_FORMAT)
    # binetflow's account is the source address, which no generated subscriber has: every
    # subscriber's usage band is the same, so the analyst zone can be k-anonymous, not l-diverse.
    analyst = yaml.safe_load((config / "analyst.yaml").read_text())
    (config / "analyst.yaml").write_text(yaml.safe_dump({**analyst, "l": None}))
    summary = daily_partner_reports(day=ARGUS_DAY.isoformat(), data_dir=str(data), out_dir=str(out),
                                    config_dir=str(config), demo=True)
    return {"data": data, "summary": summary, "generated": generated, "lines": lines, "config": config,
            "calls": calls}


def test_the_run_over_an_argus_export_releases_every_report(argus_run):
    from core.config import load_report_specs

    summary = argus_run["summary"]
    assert summary["failed_reports"] == [] and summary["refused_reports"] == []
    released = {r["report"] for r in summary["reports"]}
    assert released == {s.name for s in load_report_specs(argus_run["config"])}
    assert all(Path(r["delivery"]).is_dir() for r in summary["reports"])


def test_every_argus_line_is_kept_or_quarantined_with_its_reason(argus_run, spark):
    sources = {s["source"]: s for s in argus_run["summary"]["sources"]}
    flows = sources["network_flows"]
    assert flows["rows_in"] == argus_run["lines"]
    assert flows["rows_in"] == flows["rows_kept"] + flows["rows_quarantined"]
    assert flows["rows_kept"] > 2000
    by_reason = flows["quarantined_by_reason"]
    assert {reason: by_reason.get(reason) for reason in BROKEN_LINES} == dict.fromkeys(BROKEN_LINES, 1)
    assert by_reason["not_allowed:protocol"] == 18  # the capture's ARP records
    quarantine = pd.read_parquet(argus_run["data"] / "quarantine" / "network_flows" /
                                 f"date={ARGUS_DAY.isoformat()}")
    assert len(quarantine) == flows["rows_quarantined"]
    broken = quarantine[quarantine["reason"].str.startswith("malformed:")]
    assert dict(zip(broken["reason"], broken["record"], strict=True)) == BROKEN_LINES
    assert all(list(r) == [reason] for r, reason in zip(broken["reasons"], broken["reason"], strict=True))
    raw = pd.read_parquet(argus_run["data"] / "raw" / "network_flows" / f"date={ARGUS_DAY.isoformat()}")
    assert len(raw) == flows["rows_kept"]
    assert raw["src_ip"].str.startswith("147.32.").any()  # the capture's campus, not generated flows


def test_the_other_sources_still_come_from_the_generators_landing(argus_run):
    sources = {s["source"]: s for s in argus_run["summary"]["sources"]}
    for name in ("subscribers", "devices", "web_visits"):
        assert sources[name]["rows_in"] == argus_run["generated"]["rows"][name], name
        assert sources[name]["rows_quarantined"] == argus_run["generated"]["rows_corrupted"][name], name


def test_a_cdr_export_with_its_own_names_is_read_through_the_operators_format_file(argus_run):
    sources = {s["source"]: s for s in argus_run["summary"]["sources"]}
    cdr, calls = sources["call_records"], argus_run["calls"]
    assert cdr["rows_in"] == len(calls) + len(CDR_BROKEN)
    assert cdr["rows_in"] == cdr["rows_kept"] + cdr["rows_quarantined"]
    assert cdr["rows_quarantined"] == len(CDR_BROKEN), cdr["quarantined_by_reason"]
    assert {reason: cdr["quarantined_by_reason"].get(reason) for reason in CDR_BROKEN} == dict.fromkeys(
        CDR_BROKEN, 1)
    raw = pd.read_parquet(argus_run["data"] / "raw" / "call_records" / f"date={ARGUS_DAY.isoformat()}")
    assert "IMSI" not in raw.columns and "imsi" not in raw.columns
    # Berlin wall-clock times came back as the UTC instants the generator drew.
    expected = sorted(pd.to_datetime(calls["start_time"], format="%Y-%m-%d %H:%M:%S"))
    assert sorted(pd.to_datetime(raw["start_time"]).dt.tz_localize(None)) == expected
    assert sorted(raw["call_type"].value_counts().to_dict().items()) == sorted(
        calls["call_type"].value_counts().to_dict().items())


def test_no_number_of_the_cdr_export_is_left_in_the_protected_zone(argus_run):
    calls = argus_run["calls"]
    numbers = set(calls["caller_msisdn"].dropna()) | set(calls["callee_msisdn"].dropna()) | set(
        calls["account_id"])
    protected = pd.read_parquet(argus_run["data"] / "protected" / "call_records" /
                                f"date={ARGUS_DAY.isoformat()}")
    assert len(protected) > 0
    texts = {str(v) for column in protected.columns for v in protected[column].dropna().unique()}
    assert not (texts & numbers)
    assert not any(text.startswith("26201") for text in texts)  # no IMSI
