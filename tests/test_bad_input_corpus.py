"""The bad-input corpus: each kind of damaged input the fault run found, as a small file.

Every case goes through the route an operator uses (`kr-reports protect`, or
the daily flow's ingest stage) and asserts where each row went: rows in =
kept + quarantined, with the reason the quarantine gives. The files are made
here, so each kind stays covered without outside data.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from core.schemas import SOURCES
from kr_reports.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOOD_HOSTS = ("192.0.2.10", "2001:db8:1:2::7")
# Not one host's address: out of range, a name, a zone id, a prefix, a NUL byte inside.
MALFORMED_ADDRESSES = ("999.1.1.1", "abc", "300.300.300.300", "fe80::1%eth0", "10.0.0.1/24",
                       "10.0.0\x001")
# A plausible day for events: a month ago (the plausible range ends a day after today).
BASE_DAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=30)
BASE_TIME = dt.datetime.combine(BASE_DAY, dt.time(10))


# ---- writing the corpus ---------------------------------------------------------------------


ZEEK_CONN_FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
                    "duration", "orig_bytes", "resp_bytes", "orig_pkts", "resp_pkts")


def _zeek_conn(path: Path, rows: list[tuple[str, str]]) -> Path:
    """A conn.log of (ts, originating address) rows, the rest of each record plausible."""
    lines = ["#separator \\x09", "#path\tconn", "#fields\t" + "\t".join(ZEEK_CONN_FIELDS)]
    for i, (ts, host) in enumerate(rows):
        lines.append("\t".join((ts, f"C{i:05d}", host, "40000", "198.51.100.1", "443", "tcp",
                                "1.5", "100", "2000", "3", "4")))
    path.write_text("\n".join(lines) + "\n")
    return path


BINETFLOW_HEADER = "StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,TotPkts,TotBytes"


def _binetflow(path: Path, rows: list[tuple[str, str]]) -> Path:
    """Argus flows of (StartTime, SrcAddr) rows."""
    lines = [BINETFLOW_HEADER]
    lines += [f"{start},1.0,tcp,{host},40000,->,198.51.100.1,443,CON,4,600" for start, host in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _combined_log(path: Path, rows: list[tuple[str, str]]) -> Path:
    """Combined log lines of (time, host) rows."""
    lines = [f'{host} - - [{time}] "GET /index.html HTTP/1.1" 200 512 "-" "curl/8.0"'
             for time, host in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _canonical_csv(path: Path, source: str, records: list[dict]) -> Path:
    columns = SOURCES[source].column_names
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: r.get(c) for c in columns} for r in records)
    return path


def _canonical_json(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _call(i: int, **values) -> dict:
    return {"call_id": f"{i:016x}", "account_id": f"A{i % 7:06d}", "start_time": f"{BASE_TIME}",
            "duration_s": "60", "call_type": "voice", "cell_id": "C09123", "roaming": "false", **values}


def _visit(i: int, **values) -> dict:
    return {"account_id": f"A{i % 40:06d}", "client_ip": "192.0.2.10", "domain": "example.com",
            "url": f"https://example.com/page/{i}", "visit_time": f"{BASE_TIME}",
            "bytes": "512", **values}


def _epoch_time(offset: int) -> str:
    return str(int(BASE_TIME.replace(tzinfo=dt.UTC).timestamp()) + offset)


def _argus_time(offset: int) -> str:
    return (BASE_TIME + dt.timedelta(seconds=offset)).strftime("%Y/%m/%d %H:%M:%S.%f")


def _clf_time(offset: int) -> str:
    return (BASE_TIME + dt.timedelta(seconds=offset)).strftime("%d/%b/%Y:%H:%M:%S +0000")


ADDRESS_FILES = {  # format -> (writer, event time text of row i)
    "zeek_conn": (_zeek_conn, _epoch_time),
    "binetflow": (_binetflow, _argus_time),
    "combined_log": (_combined_log, _clf_time),
}


# ---- running it -----------------------------------------------------------------------------


def _protect(fmt: str, path: Path, tmp_path: Path, capsys, *extra: str) -> dict:
    out = tmp_path / "out"
    code = main(["protect", "--format", fmt, "--input", str(path), "--out", str(out),
                 "--quarantine", str(tmp_path / "quarantine"), "--config-dir", str(ROOT / "config"),
                 "--release", "corpus", "--demo", *extra])
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_in"] == summary["rows_kept"] + summary["rows_quarantined"]
    assert sum(summary["quarantined_by_reason"].values()) == summary["rows_quarantined"]
    return summary


def _subscribers(tmp_path: Path) -> int:
    return pd.read_parquet(tmp_path / "out" / "protected")["subscriber"].nunique()


# ---- malformed addresses --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(ADDRESS_FILES))
def test_malformed_client_addresses_are_quarantined_not_new_subscribers(fmt, tmp_path, spark, capsys):
    write, time = ADDRESS_FILES[fmt]
    hosts = [*GOOD_HOSTS, *GOOD_HOSTS, *MALFORMED_ADDRESSES]
    path = write(tmp_path / f"input.{fmt}", [(time(i), host) for i, host in enumerate(hosts)])
    summary = _protect(fmt, path, tmp_path, capsys)
    reason = "bad_ip_address:client_ip" if fmt == "combined_log" else "bad_ip_address:src_ip"
    assert summary["rows_in"] == len(hosts)
    assert summary["quarantined_by_reason"] == {reason: len(MALFORMED_ADDRESSES)}
    assert summary["rows_kept"] == 2 * len(GOOD_HOSTS)
    assert _subscribers(tmp_path) == len(GOOD_HOSTS)


def test_a_malformed_server_address_is_quarantined_too(tmp_path, spark, capsys):
    lines = _zeek_conn(tmp_path / "conn.log", [(_epoch_time(i), GOOD_HOSTS[0]) for i in range(3)])
    text = lines.read_text().replace("198.51.100.1", "198.51.100.256", 1)
    lines.write_text(text)
    summary = _protect("zeek_conn", lines, tmp_path, capsys)
    assert summary["quarantined_by_reason"] == {"bad_ip_address:dst_ip": 1}
    assert summary["rows_kept"] == 2


VALID_ADDRESSES = ("192.0.2.10", "0.0.0.0", "255.255.255.255", "::", "::1", "2001:db8::1",
                   "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "FE80::A")
OTHER_SPELLINGS = ("10.0.0.1\n", "010.0.0.1", ":1:2:3:4:5:6:7", "1::2::3", "::ffff:192.0.2.1")


@pytest.mark.parametrize("route", ["jvm", "builtin"])
def test_every_address_ingest_accepts_has_a_network_on_both_routes(route, spark, monkeypatch):
    """Ingest lets in exactly one spelling per address, and protect cuts a network from each."""
    from pyspark.sql import functions as F

    from core.schemas import IP_ADDRESS
    from transforms import jvm_functions as jvm
    from transforms.protect import generalize_ip

    if route == "builtin":
        monkeypatch.setattr(jvm, "has_function", lambda name: False)
    else:
        assert jvm.has_function(jvm.IPV4_NETWORK)
    texts = [*VALID_ADDRESSES, *MALFORMED_ADDRESSES, *OTHER_SPELLINGS]
    df = spark.createDataFrame([(t,) for t in texts], "ip string")
    rows = df.select("ip", F.col("ip").rlike(IP_ADDRESS.anchored).alias("ok"),
                     generalize_ip(F.col("ip")).alias("network")).collect()
    assert [r["ip"] for r in rows if r["ok"]] == list(VALID_ADDRESSES)
    assert [r["ip"] for r in rows if r["ok"] and r["network"] is None] == []


# ---- implausible timestamps ------------------------------------------------------------------


IMPLAUSIBLE_TIMES = {  # format -> (writer, plausible time, implausible times)
    "zeek_conn": (_zeek_conn, _epoch_time(0), ("0", "99999999999")),
    "binetflow": (_binetflow, _argus_time(0), ("1900/01/01 00:00:00.000000",
                                               "9999/12/31 23:59:59.000000")),
    "combined_log": (_combined_log, _clf_time(0), ("01/Jan/1900:00:00:00 +0000",
                                                   "31/Dec/9999:23:59:59 +0000")),
}


@pytest.mark.parametrize("fmt", sorted(IMPLAUSIBLE_TIMES))
def test_implausible_event_times_are_quarantined_without_a_day(fmt, tmp_path, spark, capsys):
    write, good, bad = IMPLAUSIBLE_TIMES[fmt]
    rows = [(good, GOOD_HOSTS[0]), (good, GOOD_HOSTS[1]), *[(t, GOOD_HOSTS[0]) for t in bad]]
    summary = _protect(fmt, write(tmp_path / f"input.{fmt}", rows), tmp_path, capsys)
    event_time = SOURCES[summary["target_source"]].event_time
    assert summary["quarantined_by_reason"] == {f"implausible_time:{event_time}": len(bad)}
    assert summary["rows_kept"] == 2


@pytest.mark.parametrize("file_format", ["json", "parquet"])
def test_a_year_5138_canonical_record_is_quarantined(file_format, tmp_path, spark, capsys):
    """Kept, it was written as an INT96 timestamp that pandas read back as 2216."""
    records = [_visit(0), _visit(1, visit_time="5138-11-16 09:46:39"),
               _visit(2, visit_time="1999-12-31 23:59:59")]
    if file_format == "json":
        path = _canonical_json(tmp_path / "visits.jsonl", records)
    else:
        path = tmp_path / "visits.parquet"
        pd.DataFrame(records, columns=SOURCES["web_visits"].column_names).to_parquet(path)
    summary = _protect("canonical", path, tmp_path, capsys, "--source", "web_visits")
    assert summary["quarantined_by_reason"] == {"implausible_time:visit_time": 2}
    assert summary["rows_kept"] == 1


def test_the_configured_plausible_range_is_the_one_applied(tmp_path, spark, capsys):
    config = tmp_path / "config"
    config.mkdir()
    for name in ("policy.yaml", "pipeline.yaml"):
        (config / name).write_text((ROOT / "config" / name).read_text())
    pipeline = (config / "pipeline.yaml").read_text()
    assert "earliest: 2000-01-01" in pipeline
    (config / "pipeline.yaml").write_text(pipeline.replace("earliest: 2000-01-01", f"earliest: {BASE_DAY}"))
    just_before = f"{BASE_DAY - dt.timedelta(days=1)} 23:59:59"
    path = _canonical_json(tmp_path / "visits.jsonl", [_visit(0), _visit(1, visit_time=just_before)])
    summary = _protect("canonical", path, tmp_path, capsys, "--source", "web_visits",
                       "--config-dir", str(config))
    assert summary["quarantined_by_reason"] == {"implausible_time:visit_time": 1}


# ---- cell ids ----------------------------------------------------------------------------------


def test_a_cell_id_that_is_not_one_is_quarantined(tmp_path, spark, capsys):
    """cell_area is the first four characters of cell_id: free text would reach a release."""
    bad = ("=1+2", "@SUM(A1)", "-C0912", "C0912", "c09123", "C09123\t")
    records = [_call(0), _call(1, cell_id=None), *[_call(2 + i, cell_id=c) for i, c in enumerate(bad)]]
    path = _canonical_csv(tmp_path / "calls.csv", "call_records", records)
    summary = _protect("canonical", path, tmp_path, capsys, "--source", "call_records")
    assert summary["quarantined_by_reason"] == {"bad_cell_id:cell_id": len(bad)}
    assert summary["rows_kept"] == 2  # a roaming call has no cell: null is fine


# ---- CSV with quoted line breaks -----------------------------------------------------------------


def _visits_with_line_breaks(count: int = 300, broken_every: int = 30) -> list[dict]:
    return [_visit(i, url=f"https://example.com/a\nb/{i}" if i % broken_every == 0 else None)
            for i in range(count)]


def test_a_quoted_line_break_keeps_one_record_per_row_in_protect(tmp_path, spark, capsys):
    path = _canonical_csv(tmp_path / "visits.csv", "web_visits", _visits_with_line_breaks())
    assert len(path.read_text().splitlines()) == 1 + 300 + 10
    summary = _protect("canonical", path, tmp_path, capsys, "--source", "web_visits")
    assert (summary["rows_in"], summary["rows_kept"]) == (300, 300)


def test_an_unclosed_quote_is_one_malformed_record(tmp_path, spark, capsys):
    path = _canonical_csv(tmp_path / "visits.csv", "web_visits", _visits_with_line_breaks(20, 100))
    with path.open("a") as handle:  # a quote opened on the last record and never closed
        handle.write('A000001,192.0.2.10,example.com,"https://example.com/x\n')
    summary = _protect("canonical", path, tmp_path, capsys, "--source", "web_visits")
    assert summary["rows_in"] == 21
    assert summary["quarantined_by_reason"] == {"malformed:record": 1}


def test_the_daily_ingest_reads_quoted_line_breaks_and_quarantines_bad_values(tmp_path, spark):
    from stages.catalog import Catalog
    from stages.daily import ingest

    day = BASE_DAY
    catalog = Catalog(data_dir=tmp_path / "data", out_dir=tmp_path / "out")
    landing = catalog.landing(SOURCES["web_visits"], day)
    landing.mkdir(parents=True)
    records = _visits_with_line_breaks()
    records[1]["client_ip"] = "999.1.1.1"
    records[2]["client_ip"] = "fe80::1%eth0"
    _canonical_csv(landing / "part-0.csv", "web_visits", records)
    result = ingest(catalog, "web_visits", day, "csv")
    assert result.rows_in == 300
    assert result.quarantined_by_reason == {"bad_ip_address:client_ip": 2}
    assert result.rows_kept == 298
