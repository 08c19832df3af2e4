"""Real operator formats -> canonical landing text: real files, cut and corrupted copies."""

from __future__ import annotations

import csv
import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from core.formats import canonical_format
from core.schemas import SOURCES
from stages.catalog import MissingInput
from stages.formats import FORMAT_NAMES, FormatError, read_format, read_lines, shipped_format
from transforms.formats import REJECTED_COLUMNS, map_lines
from transforms.ingest import SchemaMismatch, with_typed_and_reasons

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CONN = DATA / "zeek_sample" / "conn.log"
DNS = DATA / "zeek_sample" / "dns.log"
HTTP = DATA / "zeek_sample" / "http.log"
BINETFLOW = DATA / "netflow_ctu" / "2013-10-21_capture-1.binetflow"
APACHE = DATA / "apache_logs" / "apache_logs"
TELCO = DATA / "telco_churn" / "Telco-Customer-Churn.csv"

FORMATS = {name: shipped_format(name) for name in FORMAT_NAMES}
TELCO_ADDONS = next(r for r in FORMATS["telco_customers"].columns if r.column == "addons").mapping("flags")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} not present")

# format, file, options, rows mapped, rows rejected (measured; README: 360/54/150, 2,398, 10,000, 7,043)
REAL_FILES = [
    ("zeek_conn", CONN, {}, 360, 0),
    ("zeek_dns", DNS, {}, 54, 0),
    ("zeek_http", HTTP, {}, 150, 0),
    ("binetflow", BINETFLOW, {}, 2398, 0),
    ("combined_log", APACHE, {"site_domain": "semicomplete.com"}, 9999, 1),
    ("telco_customers", TELCO, {}, 7043, 0),
]


# What ingest then quarantines in the real files (values, not structure): DNS lookups without
# a query, ARP flows. (Conn rows with no payload count fall back to IP-level bytes.)
EXPECTED_INGEST_REASONS = {
    "zeek_conn": set(),
    "zeek_dns": {"missing_required:domain"},
    "zeek_http": set(),
    "binetflow": {"not_allowed:protocol"},
    "combined_log": set(),
    "telco_customers": set(),
}


def _data_lines(fmt: str, path: Path) -> int:
    """Lines of data in the file, counted here without the code under test."""
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    if FORMATS[fmt].layout.kind == "zeek":
        return sum(1 for line in lines if not line.startswith("#"))
    if FORMATS[fmt].layout.kind == "csv":
        return len(lines) - 1
    return len(lines)


def _utc(epoch: str) -> str:
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _zeek_row(path: Path, line_number: int) -> dict[str, str | None]:
    """One data line of a Zeek log as {field: value}, '-' and '(empty)' as None."""
    lines = path.read_text().splitlines()
    fields = next(line for line in lines if line.startswith("#fields\t")).split("\t")[1:]
    values = lines[line_number - 1].split("\t")
    return {f: (None if v in ("-", "(empty)") else v) for f, v in zip(fields, values, strict=True)}


def _rows(df) -> set[tuple]:
    return {tuple(r) for r in df.collect()}


def _write(path: Path, lines: list[str], ending: str = "\n", final: bool = True) -> Path:
    path.write_text(ending.join(lines) + (ending if final else ""), encoding="utf-8", newline="")
    return path


@pytest.fixture(scope="module")
def real(spark):
    """Each real file read once: format -> (mapped rows, rejected rows, facts, mapped dtypes)."""
    if not DATA.is_dir():
        pytest.skip(f"{DATA} not present")
    results = {}
    for fmt, path, options, _, _ in REAL_FILES:
        mapped, rejected, facts = read_format(spark, fmt, path, **options)
        results[fmt] = (mapped.collect(), rejected.collect(), facts, mapped.dtypes, rejected.columns)
    return results


# --- the real files ------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize(("fmt", "path", "options", "n_mapped", "n_rejected"), REAL_FILES,
                         ids=[r[0] for r in REAL_FILES])
def test_real_file_rows_are_all_mapped_or_rejected(real, fmt, path, options, n_mapped, n_rejected):
    mapped, rejected, facts, dtypes, rejected_columns = real[fmt]
    assert (len(mapped), len(rejected)) == (n_mapped, n_rejected)
    assert len(mapped) + len(rejected) == _data_lines(fmt, path)
    target = SOURCES[FORMATS[fmt].target]
    assert dtypes == [(c, "string") for c in target.column_names]
    assert rejected_columns == list(REJECTED_COLUMNS)
    assert facts["target"] == target.name and facts["files"] == [str(path)]


@needs_data
@pytest.mark.parametrize("fmt", [r[0] for r in REAL_FILES])
def test_real_files_map_to_text_that_ingest_can_type(spark, real, fmt):
    """No mapped value is unreadable for ingest: formats, times and numbers match its parsers."""
    target = SOURCES[FORMATS[fmt].target]
    mapped = spark.createDataFrame(real[fmt][0], ", ".join(f"`{c}` string" for c in target.column_names))
    flagged = with_typed_and_reasons(mapped, target, None)
    reasons = {r["r"] for r in flagged.select(F.explode("_reasons").alias("r")).distinct().collect()}
    assert not [r for r in reasons if r.startswith("unparseable:")]
    assert reasons <= EXPECTED_INGEST_REASONS[fmt]


@needs_data
def test_zeek_conn_fields_and_sums(real):
    mapped = {tuple(r) for r in real["zeek_conn"][0]}
    first = _zeek_row(CONN, 9)
    assert first["uid"] == "CoyZrY2g74UvMMgp4a"  # the line the test means
    expected = (
        first["id.orig_h"], first["id.orig_h"], first["id.resp_h"], first["id.orig_p"],
        first["id.resp_p"], "tcp",
        str(int(first["orig_bytes"]) + int(first["resp_bytes"])),  # 601 + 38393
        str(int(first["orig_pkts"]) + int(first["resp_pkts"])),
        _utc(first["ts"]), first["duration"],
    )
    assert expected == ("192.168.33.10", "192.168.33.10", "54.245.228.191", "1032", "80", "tcp",
                        "38994", "53", "2013-09-15 23:44:27", "0.447460")
    assert expected in mapped
    # last data line: ICMP, payload bytes and duration unset ('-'): bytes fall back to the
    # IP-level counts; packets 1 + 0
    icmp = _zeek_row(CONN, 368)
    assert icmp["orig_bytes"] is None and icmp["resp_bytes"] is None and icmp["duration"] is None
    ip_bytes = str(int(icmp["orig_ip_bytes"]) + int(icmp["resp_ip_bytes"]))
    assert (icmp["id.orig_h"], icmp["id.orig_h"], icmp["id.resp_h"], "3", "3", "icmp", ip_bytes,
            "1", _utc(icmp["ts"]), None) in mapped


@needs_data
def test_zeek_dns_and_http_fields(real):
    dns = _zeek_row(DNS, 9)
    assert (dns["id.orig_h"], dns["id.orig_h"], "guyspy.com", None, _utc(dns["ts"]), None, None) in {
        tuple(r) for r in real["zeek_dns"][0]
    }
    http = _zeek_row(HTTP, 10)
    expected = (http["id.orig_h"], http["id.orig_h"], http["host"], http["uri"], _utc(http["ts"]),
                http["response_body_len"], http["user_agent"])
    assert expected == ("192.168.33.10", "192.168.33.10", "www.guyspy.com", "/", "2013-09-15 23:44:27",
                        "100631", "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0)")
    assert expected in {tuple(r) for r in real["zeek_http"][0]}


@needs_data
def test_zeek_unset_query_becomes_null(real):
    unset = sum(1 for line in DNS.read_text().splitlines()
                if not line.startswith("#") and line.split("\t")[8] == "-")
    assert unset > 0
    assert sum(1 for r in real["zeek_dns"][0] if r["domain"] is None) == unset


@needs_data
def test_binetflow_fields_hex_icmp_ports_and_arp(real):
    mapped = {tuple(r) for r in real["binetflow"][0]}
    rows = list(csv.reader(BINETFLOW.read_text().splitlines()))
    header, first = rows[0], dict(zip(rows[0], rows[1], strict=True))
    assert header[:3] == ["StartTime", "Dur", "Proto"]
    assert (first["SrcAddr"], first["SrcAddr"], first["DstAddr"], first["Sport"], first["Dport"], "tcp",
            first["TotBytes"], first["TotPkts"], "2013-10-21 13:22:59", first["Dur"]) in mapped
    icmp = next(dict(zip(header, r, strict=True)) for r in rows[1:] if r[7] == "0x12d6")
    assert icmp["Sport"] == "0x0303"
    assert (icmp["SrcAddr"], icmp["SrcAddr"], icmp["DstAddr"], str(0x0303), str(0x12D6), "icmp",
            icmp["TotBytes"], icmp["TotPkts"], "2013-10-21 13:32:44", icmp["Dur"]) in mapped
    arp = [r for r in real["binetflow"][0] if r["protocol"] == "arp"]
    assert len(arp) == sum(1 for r in rows[1:] if r[2] == "arp") > 0
    assert all(r["src_port"] is None and r["dst_port"] is None for r in arp)


@needs_data
def test_apache_fields_dash_size_and_the_broken_line(real):
    mapped, rejected = real["combined_log"][0], real["combined_log"][1]
    assert (
        "83.149.9.216", "83.149.9.216", "semicomplete.com",
        "/presentations/logstash-monitorama-2013/images/kibana-search.png", "2015-05-17 10:05:03",
        "203023",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/32.0.1700.77 Safari/537.36",
    ) in {tuple(r) for r in mapped}
    last = APACHE.read_text(encoding="utf-8", errors="replace").splitlines()[-2]
    assert last.startswith("180.76.6.56 - - [20/May/2015:21:05:56 +0000] \"GET /robots.txt HTTP/1.1\" 200 - ")
    robots = ("180.76.6.56", "180.76.6.56", "semicomplete.com", "/robots.txt", "2015-05-20 21:05:56", "0",
              "Mozilla/5.0 (Windows NT 5.1; rv:6.0.2) Gecko/20100101 Firefox/6.0.2")
    assert robots in {tuple(r) for r in mapped}
    # line 8899 of the real file ends inside an unterminated quoted user agent
    [bad] = rejected
    assert (bad["line_number"], bad["reason"]) == (8899, "malformed:line")
    assert bad["record"] == APACHE.read_text(encoding="utf-8").splitlines()[8898]


@needs_data
def test_telco_fields_and_blank_total_charges(real):
    mapped = {r["account_id"]: r for r in real["telco_customers"][0]}
    with TELCO.open(newline="") as handle:
        source = list(csv.DictReader(handle))
    first = mapped["7590-VHVEG"]
    assert (first["gender"], first["plan"], first["addons"], first["contract"], first["payment_method"],
            first["monthly_charges"]) == ("female", "dsl", "online_backup", "month-to-month",
                                          "electronic_check", "29.85")
    second = mapped["5575-GNVDE"]
    assert (second["gender"], second["addons"], second["contract"], second["payment_method"]) == (
        "male", "online_security;device_protection", "one_year", "mailed_check")
    for row in source[:200]:  # add-ons: exactly the services that are 'Yes', in file order
        names = [name for column, name in TELCO_ADDONS.items() if row[column] == "Yes"]
        assert mapped[row["customerID"]]["addons"] == (";".join(names) or None)
    blank_total = [r["customerID"] for r in source if not r["TotalCharges"].strip()]
    assert len(blank_total) == 11 and all(c in mapped for c in blank_total)
    assert {r["plan"] for r in mapped.values()} == {"dsl", "fiber_optic", "no_internet"}
    assert {r["contract"] for r in mapped.values()} == {"month-to-month", "one_year", "two_year"}
    assert {r["payment_method"] for r in mapped.values()} == {
        "electronic_check", "mailed_check", "bank_transfer", "credit_card"}
    without_source = FORMATS["telco_customers"].canonical_without_source
    assert without_source == ["name", "email", "msisdn", "birth_date", "region", "postcode",
                              "card_number", "password_hash", "signup_date"]
    assert all(r[c] is None for r in mapped.values() for c in without_source)


@needs_data
def test_facts_list_every_input_column_as_carried_or_dropped(real):
    facts = real["zeek_conn"][2]
    assert facts["format"] == "zeek_conn" and facts["target"] == "network_flows"
    assert facts["input_columns"][:3] == ["ts", "uid", "id.orig_h"]
    assert set(facts["carried"]) | set(facts["dropped"]) == set(facts["input_columns"])
    assert facts["carried"]["orig_bytes"] == ["bytes"]
    assert facts["dropped"]["uid"] == "connection id: not needed"
    http = real["zeek_http"][2]
    assert "never carried" in http["dropped"]["password"]
    assert real["binetflow"][2]["input_columns"] == [
        "StartTime", "Dur", "Proto", "SrcAddr", "Sport", "Dir", "DstAddr", "Dport", "State", "sTos",
        "dTos", "TotPkts", "TotBytes"]


# --- the registry ----------------------------------------------------------------------


def test_every_format_field_feeds_a_canonical_column_or_says_why_not():
    for name, spec in FORMATS.items():
        if spec.target is None:
            continue
        columns = SOURCES[spec.target].column_names
        assert len(set(spec.input_columns)) == len(spec.input_columns), name
        assert not set(spec.carried) & set(spec.dropped), name
        assert all(reason.strip() for reason in spec.dropped.values()), name
        ruled = {r.column for r in spec.columns}
        assert ruled <= set(columns) and ruled | set(spec.canonical_without_source) == set(columns), name
        assert "account_id" in ruled, name
    assert canonical_format("devices").carried == {c: [c] for c in SOURCES["devices"].column_names}


# --- cut copies --------------------------------------------------------------------------


def _cut(src: Path, dst: Path, keep_lines: int, keep_chars: int) -> str:
    """Copy the first `keep_lines` lines, then `keep_chars` characters of the next one (no newline)."""
    lines = src.read_text(encoding="utf-8", errors="replace").splitlines()
    partial = lines[keep_lines][:keep_chars]
    _write(dst, [*lines[:keep_lines], partial], final=False)
    return partial


@needs_data
@pytest.mark.parametrize(
    ("fmt", "src", "keep_lines", "keep_chars", "n_mapped"),
    [
        ("zeek_conn", CONN, 108, 60, 100),  # 8 header lines + 100 rows, then half a row
        ("binetflow", BINETFLOW, 51, -3, 50),  # only TotBytes cut short: the field count still fits
        ("telco_customers", TELCO, 101, 30, 100),
        ("combined_log", APACHE, 100, 80, 100),
    ],
)
def test_a_cut_last_line_is_rejected_and_the_rest_mapped(spark, tmp_path, fmt, src, keep_lines, keep_chars,
                                                          n_mapped):
    partial = _cut(src, tmp_path / src.name, keep_lines, keep_chars)
    mapped, rejected, _ = read_format(spark, fmt, tmp_path / src.name)
    assert mapped.count() == n_mapped
    assert [tuple(r) for r in rejected.collect()] == [
        (str(tmp_path / src.name), keep_lines + 1, "malformed:truncated", partial)
    ]


@needs_data
def test_an_unterminated_last_line_can_be_accepted(spark, tmp_path):
    _cut(BINETFLOW, tmp_path / "flows.binetflow", 11, 1000)  # the whole 11th line, no final newline
    mapped, rejected, _ = read_format(spark, "binetflow", tmp_path / "flows.binetflow",
                                      allow_unterminated_last_line=True)
    assert (mapped.count(), rejected.count()) == (11, 0)


# --- corrupted copies ----------------------------------------------------------------------


@needs_data
def test_zeek_garbage_lines_are_rejected_with_their_line_numbers(spark, tmp_path):
    lines = CONN.read_text().splitlines()
    short_row = "\t".join(lines[20].split("\t")[:5])
    bad_time = "\t".join(["yesterday", *lines[21].split("\t")[1:]])
    corrupted = [*lines[:12], "garbage here", *lines[12:30], short_row, bad_time, "", *lines[30:]]
    _write(tmp_path / "conn.log", corrupted, ending="\r\n")  # and CRLF line endings
    mapped, rejected, _ = read_format(spark, "zeek_conn", tmp_path / "conn.log")
    assert mapped.count() == 360
    assert sorted((r["line_number"], r["reason"]) for r in rejected.collect()) == [
        (13, "malformed:field_count"), (32, "malformed:field_count"), (33, "malformed:timestamp")
    ]
    assert mapped.where(F.col("start_time").endswith("\r") | F.col("duration_s").endswith("\r")).count() == 0


def test_zeek_unset_and_empty_fields_become_null(spark, tmp_path):
    header = [
        "#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-", "#path\thttp",
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\thost\turi\tuser_agent"
        "\tresponse_body_len",
        "#types\ttime\tstring\taddr\tport\taddr\tport\tstring\tstring\tstring\tcount",
    ]
    rows = [
        "1379288667.5\tC1\t10.0.0.1\t1031\t10.0.0.2\t80\tExample.COM:8080\t/a\t(empty)\t-",
        "1379288668.5\tC2\t10.0.0.1\t1032\t10.0.0.2\t80\t-\t(empty)\tcurl/8\t12",
    ]
    _write(tmp_path / "http.log", [*header, *rows, "#close\t2014-04-03-10-08-28"])
    mapped, rejected, facts = read_format(spark, "zeek_http", tmp_path / "http.log")
    assert rejected.count() == 0
    assert sorted(_rows(mapped), key=str) == sorted([
        ("10.0.0.1", "10.0.0.1", "example.com", "/a", "2013-09-15 23:44:27", None, None),
        ("10.0.0.1", "10.0.0.1", None, None, "2013-09-15 23:44:28", "12", "curl/8"),
    ], key=str)
    assert facts["input_columns"][-1] == "response_body_len"


def test_zeek_columns_are_found_by_name_in_each_section(spark, tmp_path):
    """Two logs concatenated, the second with another column order: each row uses its own #fields."""
    first = ["#separator \\x09", "#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration"
             "\torig_bytes\tresp_bytes\torig_pkts\tresp_pkts",
             "100.25\t10.0.0.1\t1\t10.0.0.2\t2\tTCP\t0.5\t10\t-\t1\t-"]
    second = ["#separator \\x09", "#fields\tproto\tid.resp_p\tid.resp_h\tid.orig_p\tid.orig_h\tts\tduration"
              "\tresp_pkts\torig_pkts\tresp_bytes\torig_bytes",
              "udp\t53\t10.0.0.9\t5353\t10.0.0.3\t86400\t-\t-\t-\t-\t-"]
    _write(tmp_path / "conn.log", [*first, "#close\tx", *second])
    mapped, rejected, _ = read_format(spark, "zeek_conn", tmp_path / "conn.log")
    assert rejected.count() == 0
    assert sorted(_rows(mapped), key=str) == sorted([
        ("10.0.0.1", "10.0.0.1", "10.0.0.2", "1", "2", "tcp", "10", "1", "1970-01-01 00:01:40", "0.5"),
        ("10.0.0.3", "10.0.0.3", "10.0.0.9", "5353", "53", "udp", None, None, "1970-01-02 00:00:00", None),
    ], key=str)


def test_zeek_counts_are_summed_only_when_both_are_counts(spark):
    """Unset counts as 0; a value that is not a count is passed on as text for ingest to reject."""
    header = ("#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration\torig_bytes"
              "\tresp_bytes\torig_pkts\tresp_pkts")
    rows = [
        (1, header),
        (2, "1.0\ta\t1\tb\t2\ttcp\t1\t-\t7\t-\t-"),
        (3, "1.0\ta\t1\tb\t2\ttcp\t1\tx1\t7\t1\t1"),
        (4, "1.0\ta\t1\tb\t2\ttcp\t1\t-5\t-\t1\t1"),
        (5, "-\ta\t1\tb\t2\ttcp\t1\t1\t1\t1\t1"),
        (6, "abc\ta\t1\tb\t2\ttcp\t1\t1\t1\t1\t1"),
    ]
    result = map_lines(FORMATS["zeek_conn"], spark.createDataFrame(rows, "line_number long, value string"))
    got = {(r["bytes"], r["packets"], r["start_time"]) for r in result.mapped.collect()}
    assert got == {("7", None, "1970-01-01 00:00:01"), ("x1+7", "2", "1970-01-01 00:00:01"),
                   ("-5", "2", "1970-01-01 00:00:01"), ("2", "2", None)}
    assert [(r["file"], r["line_number"], r["reason"]) for r in result.rejected.collect()] == [
        (None, 6, "malformed:timestamp")]


@needs_data
def test_binetflow_corrupted_lines(spark, tmp_path):
    lines = BINETFLOW.read_text().splitlines()
    fields = lines[5].split(",")
    wrong_count = ",".join(fields[:-2])
    bad_time = ",".join(["21.10.2013 noon", *fields[1:]])
    negative = ",".join([*fields[:-1], "-5"])
    _write(tmp_path / "x.binetflow", [*lines[:3], wrong_count, bad_time, negative, "not,a,flow"])
    mapped, rejected, _ = read_format(spark, "binetflow", tmp_path / "x.binetflow")
    assert sorted((r["line_number"], r["reason"]) for r in rejected.collect()) == [
        (4, "malformed:field_count"), (5, "malformed:timestamp"), (7, "malformed:field_count")]
    assert mapped.count() == 3  # the negative byte count is a value: ingest quarantines it
    assert mapped.where(F.col("bytes") == "-5").count() == 1


def test_binetflow_timezone_option_converts_wall_clock_to_utc(spark, tmp_path):
    header = "StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,sTos,dTos,TotPkts,TotBytes,Label"
    rows = ["2013/10/21 13:22:59.340835,1.5,TCP,10.0.0.1,0x0050,  ->,10.0.0.2,443,CON,0,0,3,180,flow=x",
            "2013/01/05 00:30:00.000000,1.5,udp,10.0.0.1,53,  <->,10.0.0.2,53,CON,0,0,2,90,flow=y"]
    _write(tmp_path / "f.binetflow", [header, *rows])
    mapped, _, facts = read_format(spark, "binetflow", tmp_path / "f.binetflow", timezone="Europe/Prague")
    got = sorted((r["start_time"], r["protocol"], r["src_port"]) for r in mapped.collect())
    assert got == [("2013-01-04 23:30:00", "udp", "53"), ("2013-10-21 11:22:59", "tcp", "80")]  # CET, CEST
    assert facts["dropped"]["Label"].startswith("capture label")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        read_format(spark, "binetflow", tmp_path / "f.binetflow", timezone="Mars/Olympus")


def test_combined_log_times_become_utc_and_bad_lines_are_rejected(spark, tmp_path):
    agent = '"-" "Mozilla/5.0 (X11)"'
    lines = [
        '10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a?b=1 HTTP/1.0" 200 2326 "http://r/" "curl/8"',
        f'10.0.0.2 - frank [31/Dec/2015:23:30:00 -0700] "POST /form HTTP/1.1" 201 - {agent}',
        f'10.0.0.3 - - [01/Jan/2016:08:59:59 +0930] "GET / HTTP/1.1" 304 0 {agent}',
        '10.0.0.4 - - [01/Jan/2016:08:59:59 +0000] "GET /common HTTP/1.1" 200 12',  # common log format
        f'10.0.0.5 - - [32/Foo/2016:08:59:59 +0000] "GET / HTTP/1.1" 200 1 {agent}',
        "this is not a log line",
        f'10.0.0.6 - - [01/Jan/2016:08:59:59 +0000] "\\x16\\x03\\x01" 400 0 {agent}',
    ]
    _write(tmp_path / "access.log", lines, ending="\r\n")
    mapped, rejected, _ = read_format(spark, "combined_log", tmp_path / "access.log")
    got = _rows(mapped.select("client_ip", "domain", "url", "visit_time", "bytes", "user_agent"))
    assert sorted(got) == [
        ("10.0.0.1", "unknown.invalid", "/a?b=1", "2000-10-10 20:55:36", "2326", "curl/8"),
        ("10.0.0.2", "unknown.invalid", "/form", "2016-01-01 06:30:00", "0", "Mozilla/5.0 (X11)"),
        ("10.0.0.3", "unknown.invalid", "/", "2015-12-31 23:29:59", "0", "Mozilla/5.0 (X11)"),
        ("10.0.0.4", "unknown.invalid", "/common", "2016-01-01 08:59:59", "12", None),
        ("10.0.0.6", "unknown.invalid", None, "2016-01-01 08:59:59", "0", "Mozilla/5.0 (X11)"),
    ]
    assert sorted((r["line_number"], r["reason"]) for r in rejected.collect()) == [
        (5, "malformed:timestamp"), (6, "malformed:line")]


@needs_data
def test_telco_corrupted_lines_and_crlf(spark, tmp_path):
    lines = TELCO.read_text().splitlines()
    extra_comma = lines[3].replace("Female", "Female,oops", 1).replace("Male", "Male,oops", 1)
    corrupted = [lines[0], *lines[1:3], extra_comma, *lines[4:50], lines[0], "", *lines[50:101]]
    _write(tmp_path / "telco.csv", ["\ufeff" + corrupted[0], *corrupted[1:]], ending="\r\n")
    mapped, rejected, _ = read_format(spark, "telco_customers", tmp_path / "telco.csv")
    assert [(r["line_number"], r["reason"]) for r in rejected.collect()] == [(4, "malformed:field_count")]
    assert mapped.count() == 99  # 100 rows, one broken; the repeated header and the blank line are not data
    assert mapped.where(F.col("monthly_charges").contains("\r")).count() == 0


# --- missing, empty and headerless files -------------------------------------------------


@needs_data
@pytest.mark.parametrize(
    ("fmt", "src", "drop", "message"),
    [
        ("zeek_conn", CONN, "#fields", "not a Zeek log (no #fields header line)"),
        ("binetflow", BINETFLOW, "StartTime,", "not a binetflow file (header line lacks "),
        ("telco_customers", TELCO, "customerID,", "not a telco_customers file (header line lacks "),
    ],
)
def test_a_file_without_its_header_is_an_error_naming_it(spark, tmp_path, fmt, src, drop, message):
    lines = [line for line in src.read_text().splitlines() if not line.startswith(drop)]
    copy = _write(tmp_path / src.name, lines)
    with pytest.raises(FormatError, match="^" + re.escape(f"{copy}: {message}")) as raised:
        read_format(spark, fmt, copy)
    assert drop.strip("#,") in str(raised.value)


@needs_data
def test_a_file_of_another_kind_is_an_error_naming_it(spark, tmp_path):
    with pytest.raises(FormatError, match="^" + re.escape(f"{DNS}: a Zeek 'dns' log, not 'conn'")):
        read_format(spark, "zeek_conn", DNS)
    with pytest.raises(FormatError, match="^" + re.escape(f"{CONN}: not a web server combined log")):
        read_format(spark, "combined_log", CONN)


def test_missing_and_empty_inputs_are_errors_naming_them(spark, tmp_path):
    with pytest.raises(MissingInput, match="^" + re.escape(f"{tmp_path / 'nope.log'}: input not found")):
        read_format(spark, "zeek_conn", tmp_path / "nope.log")
    (tmp_path / "empty.log").write_text("")
    with pytest.raises(FormatError, match="^" + re.escape(f"{tmp_path / 'empty.log'}: empty file")):
        read_format(spark, "zeek_conn", tmp_path / "empty.log")
    (tmp_path / "blank.csv").write_text("\n\n")
    with pytest.raises(FormatError, match="^" + re.escape(f"{tmp_path / 'blank.csv'}: empty file")):
        read_format(spark, "telco_customers", tmp_path / "blank.csv")
    (tmp_path / "folder").mkdir()
    with pytest.raises(FormatError, match="folder holds no input files"):
        read_format(spark, "binetflow", tmp_path / "folder")
    with pytest.raises(ValueError, match="unknown format 'pcap'"):
        read_format(spark, "pcap", tmp_path)
    with pytest.raises(ValueError, match="takes no option"):
        read_format(spark, "zeek_conn", tmp_path / "empty.log", site_domain="x")


@needs_data
def test_a_folder_of_logs_is_read_file_by_file(spark, tmp_path):
    shutil.copy(CONN, tmp_path / "conn.00.log")
    _cut(CONN, tmp_path / "conn.01.log", 20, 10)
    (tmp_path / "_SUCCESS").write_text("")
    mapped, rejected, facts = read_format(spark, "zeek_conn", tmp_path)
    assert mapped.count() == 360 + 12
    cut = [(r["file"], r["line_number"]) for r in rejected.collect()]
    assert cut == [(str(tmp_path / "conn.01.log"), 21)]
    assert len(facts["files"]) == 2


# --- line numbers ----------------------------------------------------------------------------


def test_line_numbers_are_exact_across_file_splits(spark, tmp_path):
    big = _write(tmp_path / "numbers.txt", [str(i) for i in range(1, 30_001)])
    spark.conf.set("spark.sql.files.maxPartitionBytes", "20000")  # about 9 splits
    try:
        splits = spark.read.text(str(big)).select("_metadata.file_block_start").distinct().count()
        assert splits > 3
        lines = read_lines(spark, big)
        wrong = lines.where(F.col("value") != F.col("line_number").cast("string")).count()
        assert (lines.count(), wrong) == (30_000, 0)
        assert lines.where("truncated").count() == 0
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")


# --- canonical files ---------------------------------------------------------------------------


def _canonical_flows(spark):
    rows = [("KR1", "10.0.0.1", "10.0.0.2", "1", "2", "tcp", "10", "1", "2026-11-01 10:00:00", "0.5"),
            ("KR2", None, "10.0.0.3", None, None, "icmp", "5", "1", "2026-11-01 11:00:00", None)]
    schema = ", ".join(f"{c} string" for c in SOURCES["network_flows"].column_names)
    return spark.createDataFrame(rows, schema)


@pytest.mark.parametrize("file_format", ["parquet", "csv", "json"])
def test_canonical_files_map_onto_themselves(spark, tmp_path, file_format):
    df = _canonical_flows(spark)
    writer = df.select(*reversed(df.columns)).write.option("header", True)  # column order does not matter
    writer.format(file_format).save(str(tmp_path / "flows"))
    mapped, rejected, facts = read_format(spark, "canonical", tmp_path / "flows", source="network_flows")
    assert mapped.dtypes == [(c, "string") for c in SOURCES["network_flows"].column_names]
    assert _rows(mapped) == _rows(df) and rejected.count() == 0
    assert facts["options"] == {"source": "network_flows", "file_format": file_format}


def test_canonical_typed_parquet_is_cast_to_landing_text(spark, tmp_path):
    typed = _canonical_flows(spark).withColumn("start_time", F.to_timestamp("start_time"))
    typed.withColumn("bytes", F.col("bytes").cast("bigint")).write.parquet(str(tmp_path / "p"))
    mapped, _, _ = read_format(spark, "canonical", tmp_path / "p", source="network_flows")
    assert sorted(r["start_time"] for r in mapped.collect()) == ["2026-11-01 10:00:00", "2026-11-01 11:00:00"]


def test_canonical_csv_with_a_broken_record_and_wrong_columns(spark, tmp_path):
    _canonical_flows(spark).write.option("header", True).csv(str(tmp_path / "flows"))
    header = ",".join(SOURCES["network_flows"].column_names)
    _write(tmp_path / "flows" / "part-extra.csv", [header, "KR3,1.2.3.4"])
    mapped, rejected, _ = read_format(spark, "canonical", tmp_path / "flows", source="network_flows")
    assert mapped.count() == 2
    [bad] = rejected.collect()
    assert tuple(bad) == (str(tmp_path / "flows" / "part-extra.csv"), 2, "malformed:record", "KR3,1.2.3.4")
    _canonical_flows(spark).withColumn("imei", F.lit("1")).write.json(str(tmp_path / "extra"))
    with pytest.raises(SchemaMismatch, match=r"extra: unclassified column\(s\) imei"):
        read_format(spark, "canonical", tmp_path / "extra", source="network_flows")
    _canonical_flows(spark).withColumn("src_ip", F.lit(None).cast("string")).write.json(str(tmp_path / "j"))
    mapped, _, _ = read_format(spark, "canonical", tmp_path / "j", source="network_flows")
    assert mapped.where(F.col("src_ip").isNull()).count() == 2  # a key JSON lines omit is null
    _canonical_flows(spark).drop("bytes").write.option("header", True).csv(str(tmp_path / "short"))
    with pytest.raises(SchemaMismatch, match=r"part-[^ ]*\.csv: missing column\(s\) bytes"):
        read_format(spark, "canonical", tmp_path / "short", source="network_flows")
    with pytest.raises(ValueError, match="needs the source option"):
        read_format(spark, "canonical", tmp_path / "extra")
