"""The leak scanner: the shared detectors as Spark predicates, `scan_path` on Parquet,
CSV and JSON lines, its report (counts, never values) and `kr-reports scan`."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from expectations.detectors import detector_predicates, detector_sql, identifier_patterns
from kr_reports.cli import main
from stages.scan import Finding, ScanError, format_report, scan_path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# --- detectors as Spark predicates ----------------------------------------------------

POSITIVE = {
    "email": ["minji.kim@example.kr", "contact: j.doe+tag@mail.co.kr", "A_B@x-y.com"],
    "phone": [
        "+821012345678",
        "+82 10-1234-5678",
        "+14155552671",
        "010-1234-5678",
        "01012345678",
        "tel 010 9876 5432",
        "02-123-4567",
        "031-1234-5678",
    ],
    "ipv4": ["10.1.2.3", "host 8.8.8.8 ok", "255.255.255.255", "10.1.2.3/32"],
    "ipv6": [
        "2001:0db8:0000:0000:0000:ff00:0042:8329",
        "2001:db8::1",
        "fe80::202:b3ff:fe1e:8329",
        "client 2001:db8:1:2::ff port 443",
        "2001:db8::1/128",
    ],
    "mac": ["00:1a:2b:3c:4d:5e", "00-1A-2B-3C-4D-5E", "mac=a4:83:e7:12:34:56", "001a.2b3c.4d5e"],
    "imei": ["352099001761481", "35-209900-176148-1", "imei:490154203237518", "356938035643809"],
    "imsi": ["450051234567890", "310150123456789"],
    "iccid": ["8982300123456789013", "sim 89014103211118510720"],
    "card_number": [
        "4111111111111111",
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "378282246310005",
        "3782 822463 10005",
        "6011000990139424124",
        "paid with 4012888888881881 today",
        # the first candidate fails the check, the second passes
        "4111111111111112 then 4111111111111111",
    ],
}

NEGATIVE = {
    "email": ["kim at example.kr", "@handle", "user@localhost", "naver.com"],
    "phone": ["12345678", "2024-03-15", "02-1234", "+8210", "a01012345678", "0101234567890"],
    "ipv4": ["10.1.2.0/24", "142.250.196.0/24", "10.0.0.0/8", "256.1.1.1", "1.2.3", "1.2.3.4.5"],
    "ipv6": [
        "2001:db8:1::/48",
        "2001:db8::/48",
        "2404:6800:4004::/48",
        "2001:0db8:0001:0000:0000:0000:0000:0000/48",
        "10:00",
        "std::vector",
    ],
    "mac": ["00:1a:2b:3c:4d", "00:1a:2b:3c:4d:5e:6f", "12:30:45"],
    # Luhn-invalid: the check digit is wrong
    "imei": ["352099001761480", "35-209900-176148-2", "490154203237519", "3520990017614812",
             "0.490154203237518"],
    "imsi": ["150051234567890", "45005123456789", "4500512345678901"],
    "iccid": ["8982300123456789012", "89014103211118510721", "9982300123456789013"],
    "card_number": [
        "4111111111111112",
        "4111 1111 1111 1112",
        "5500-0000-0000-0005",
        "378282246310006",
        "411111111111",
        "1710496800007",  # epoch milliseconds, Luhn-valid
        "16.96565327913312",  # a float whose fraction is 14 Luhn-valid digits (a noise sd)
        "0,4111111111111111",  # decimal comma
        "20240315100006",  # yyyymmddhhmmss, Luhn-valid
        "450-05-1101-20345",
    ],
}

PSEUDONYMS = [hashlib.sha256(f"k:{n}".encode()).hexdigest() for n in range(20)]

# Flagged by no detector at all.
INNOCENT = [
    *PSEUDONYMS,
    "2024-03-15",
    "2024-03-15T10:00:00Z",
    "2024-03-15 23:59:59.999999",
    "2024/03/15 13:22:59.340835",
    "10:00",
    "12:30:45",
    "0",
    "42",
    "-7",
    "3.14",
    "49.5",
    "1204332",
    "1710496800",
    "1710496800007",
    "20240315100006",
    "30-39",
    "90+",
    "5G Standard",
    "naver.com",
    "https://kakao.com/",
    "10.1.2.0/24",
    "2001:db8:1::/48",
    "35209900",
    "450-05-1101-20345",
    "KR00012345",
    "7590-VHVEG",
    "123e4567-e89b-12d3-a456-426614174000",
    "152099001761480 is no IMEI (check digit) nor IMSI (no country code)",
]


@pytest.fixture(scope="module")
def flags(spark) -> dict[str, dict[str, bool]]:
    """value -> detector -> flagged, computed by the shared predicates in Spark."""
    values = sorted(
        {v for vs in POSITIVE.values() for v in vs}
        | {v for vs in NEGATIVE.values() for v in vs}
        | set(INNOCENT)
    )
    df = spark.createDataFrame([(v,) for v in values], "`odd name.x` string")
    checked = df.selectExpr(
        "`odd name.x` AS value", *[f"{detector_sql(d, 'odd name.x')} AS {d}" for d in POSITIVE]
    )
    return {row["value"]: {d: row[d] for d in POSITIVE} for row in checked.collect()}


def test_every_detector_has_a_predicate():
    assert list(detector_predicates()) == list(identifier_patterns()) == list(POSITIVE)
    assert all("{column}" in template for template in detector_predicates().values())


@pytest.mark.parametrize("detector", sorted(POSITIVE))
def test_predicate_flags_identifiers(flags, detector):
    missed = [v for v in POSITIVE[detector] if not flags[v][detector]]
    assert not missed


@pytest.mark.parametrize("detector", sorted(NEGATIVE))
def test_predicate_ignores_lookalikes(flags, detector):
    flagged = [v for v in NEGATIVE[detector] if flags[v][detector]]
    assert not flagged


def test_predicates_ignore_pseudonyms_dates_and_small_numbers(flags):
    flagged = [(v, d) for v in INNOCENT for d, hit in flags[v].items() if hit]
    assert not flagged


def test_luhn_is_what_separates_an_imei_from_a_lookalike(flags):
    # the same shape, one check digit apart
    assert flags["352099001761481"]["imei"] and not flags["352099001761480"]["imei"]
    assert flags["4111111111111111"]["card_number"]
    assert not flags["4111111111111112"]["card_number"]
    assert flags["8982300123456789013"]["iccid"] and not flags["8982300123456789012"]["iccid"]


def test_predicate_of_a_null_is_not_a_match(spark):
    df = spark.createDataFrame([(None,)], "v string")
    row = df.selectExpr(*[f"coalesce({detector_sql(d, 'v')}, false) AS {d}" for d in POSITIVE]).first()
    assert not any(row)


# --- scan_path ------------------------------------------------------------------------

DEVICES = [
    ("352099001761481", "00:1a:2b:3c:4d:5e", "Galaxy S23"),
    ("490154203237518", "a4-83-e7-12-34-56", "V50"),
    ("152099001761480", None, "iPhone 15"),  # Luhn-invalid and no MCC: nothing
    (None, "n/a", None),
]
SUBSCRIBERS_CSV = (
    "account_id,email,msisdn,card,note\n"
    "KR00012345,minji.kim@example.kr,+821012345678,4111 1111 1111 1111,hello\n"
    "KR00012346,junho@example.kr,010-9876-5432,4111 1111 1111 1112,call 02-123-4567\n"
    "KR00012347,,,,\n"
)
FLOWS_JSONL = (
    '{"src": "10.20.30.40", "net": "10.20.30.0/24", "v6": "2001:db8:1:2::ff", "bytes": 18234}\n'
    '{"src": "10.20.30.41", "net": "10.20.31.0/24", "v6": null, "bytes": 120}\n'
    "not json: kim@example.kr\n"
)
IDENTIFIERS = [
    "352099001761481", "490154203237518", "00:1a:2b:3c:4d:5e", "a4-83-e7-12-34-56",
    "minji.kim@example.kr", "junho@example.kr", "+821012345678", "010-9876-5432",
    "4111 1111 1111 1111", "02-123-4567", "10.20.30.40", "10.20.30.41", "2001:db8:1:2::ff",
    "kim@example.kr", "KR00012345",
]


@pytest.fixture(scope="module")
def landing(spark, tmp_path_factory) -> Path:
    """A folder with a Spark Parquet output folder, a CSV and a JSON lines file."""
    root = tmp_path_factory.mktemp("landing")
    devices = spark.createDataFrame(DEVICES, "imei string, mac string, model string")
    devices.coalesce(1).write.parquet(str(root / "devices"))  # part file, _SUCCESS, .crc
    (root / "subscribers.csv").write_text(SUBSCRIBERS_CSV)
    (root / "logs").mkdir()
    (root / "logs" / "flows.jsonl").write_text(FLOWS_JSONL)
    (root / "README.md").write_text("contact: someone@example.kr\n")
    (root / ".hidden.csv").write_text("email\nhidden@example.kr\n")
    (root / "_temporary").mkdir()
    (root / "_temporary" / "part-0.csv").write_text("email\ntemp@example.kr\n")
    return root


def test_scan_reports_file_column_detector_and_rows(spark, landing):
    report = scan_path(spark, landing)
    devices, subscribers = str(landing / "devices"), str(landing / "subscribers.csv")
    flows = str(landing / "logs" / "flows.jsonl")
    assert [(f.file, f.format, f.rows) for f in report.files] == [
        (devices, "parquet", 4),
        (flows, "json", 3),
        (subscribers, "csv", 3),
    ]
    assert (report.files_scanned, report.rows_scanned) == (3, 10)
    # A valid IMEI is also IMSI-shaped (15 digits opening with an MCC) and passes
    # the card check: each detector reports it.
    assert list(report.findings) == [
        Finding(devices, "imei", "imei", 2),
        Finding(devices, "imei", "imsi", 2),
        Finding(devices, "imei", "card_number", 2),
        Finding(devices, "mac", "mac", 2),
        Finding(flows, "_corrupt_record", "email", 1),
        Finding(flows, "src", "ipv4", 2),
        Finding(flows, "v6", "ipv6", 1),
        Finding(subscribers, "email", "email", 2),
        Finding(subscribers, "msisdn", "phone", 2),
        Finding(subscribers, "card", "card_number", 1),
        Finding(subscribers, "note", "phone", 1),
    ]
    assert report.skipped == (str(landing / "README.md"),)
    assert not report.clean


def test_report_and_json_never_show_values(spark, landing):
    report = scan_path(spark, landing)
    text = format_report(report)
    as_json = json.dumps(report.to_dict())
    leaked = [v for v in IDENTIFIERS if v in text or v in as_json]
    assert not leaked
    assert text.splitlines()[0] == (
        "identifier-shaped values found in 3 of 3 files (10 rows scanned); values are not shown"
    )
    assert re.search(r"subscribers\.csv\s+msisdn\s+phone\s+2$", text, re.MULTILINE)
    assert "not scanned (unsupported type): 1 file: " in text


def test_identifier_shaped_column_names_are_withheld(spark, tmp_path):
    # A CSV written without a header: its first row becomes the column names.
    file = tmp_path / "no_header.csv"
    file.write_text("lee@example.kr,01098765432,Seoul\nkim@example.kr,01012345678,Busan\n")
    report = scan_path(spark, file)
    assert list(report.findings) == [
        Finding(str(file), "column 1 name", "email", 1),
        Finding(str(file), "column 1", "email", 1),
        Finding(str(file), "column 2 name", "phone", 1),
        Finding(str(file), "column 2", "phone", 1),
    ]
    text = format_report(report) + json.dumps(report.to_dict())
    assert "lee@example.kr" not in text and "01098765432" not in text


def test_csv_rows_with_extra_fields_are_scanned_whole(spark, tmp_path):
    file = tmp_path / "ragged.csv"
    file.write_text('a,b\n1,2\n3,4,extra kim@example.kr\n"multi\nline",5\n')
    report = scan_path(spark, file)
    assert report.rows_scanned == 3
    assert list(report.findings) == [Finding(str(file), "_corrupt_record", "email", 1)]


def test_json_file_where_no_line_parses_is_scanned_as_text(spark, tmp_path):
    file = tmp_path / "broken.json"
    file.write_text("kim@example.kr\nnothing here\n")
    report = scan_path(spark, file)
    assert report.rows_scanned == 2
    assert list(report.findings) == [Finding(str(file), "_corrupt_record", "email", 1)]


def test_html_text_and_attribute_values_are_scanned_and_never_shown(spark, tmp_path):
    page = tmp_path / "report.html"
    page.write_bytes(
        b'<!doctype html><html><head><title>Traffic</title></head><body><h1>Busan &amp; Seoul</h1>'
        b'<p>Contact <a href="mailto:kim@example.kr">kim&#64;example.kr</a></p>'
        b'<svg><circle r="3"><title>+82 10-1234-5678</title></circle></svg>'
        b'<p title="10.20.30.40">hour 9: 8,831 visits \xff<div><span>unclosed'
    )
    report = scan_path(spark, page)
    found = {(f.column, f.detector): f.count for f in report.findings}
    assert found == {("html_text", "email"): 2, ("html_text", "phone"): 1, ("html_text", "ipv4"): 1}
    assert report.files[0].format == "html" and report.rows_scanned == 10
    for secret in ("kim", "5678", "10.20.30.40"):
        assert secret not in format_report(report)


def test_clean_files_report_counts(spark, tmp_path):
    (tmp_path / "a.csv").write_text("region,hour,visits\nSeoul,2024-03-15 09:00:00,8831\n")
    (tmp_path / "b.jsonl").write_text('{"region": "Busan", "net": "10.1.2.0/24"}\n' * 2)
    (tmp_path / "c.html").write_text('<p title="Seoul 09:00">8,831 visits, <b>95% interval</b></p>')
    report = scan_path(spark, tmp_path)
    assert report.clean and report.findings == ()
    assert format_report(report) == "no identifier-shaped values found in 3 files, 6 rows"


def test_one_aggregation_per_file(spark, tmp_path):
    spark.createDataFrame(DEVICES, "imei string, mac string, model string").write.parquet(
        str(tmp_path / "devices.parquet")
    )
    group = "scan-one-aggregation"
    spark.sparkContext.setJobGroup(group, group)
    try:
        scan_path(spark, tmp_path / "devices.parquet")
    finally:
        spark.sparkContext.setJobGroup("", "")
    # the aggregation, the column-name check, and at most a schema read or an AQE stage
    assert len(spark.sparkContext.statusTracker().getJobIdsForGroup(group)) <= 4


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "no such file or folder"),
        ("notes.txt", "kim@example.kr", "unsupported file type"),
        ("broken.parquet", "not parquet at all", "not a Parquet file"),
        ("corrupt.parquet", "PAR1 kim@example.kr PAR1", "cannot read as parquet"),
    ],
)
def test_unusable_input_raises_naming_the_path(spark, tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ScanError, match=message) as info:
        scan_path(spark, path)
    assert str(info.value).startswith(f"{path}: ")
    assert "kim@example.kr" not in str(info.value) and "at all" not in str(info.value)


def test_folder_without_data_files_is_an_error(spark, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ScanError, match="no supported data files"):
        scan_path(spark, tmp_path)


# --- kr-reports scan ------------------------------------------------------------------


@pytest.fixture
def cli_env(spark, monkeypatch):
    """The CLI builds its session with get_spark: keep the test session's settings."""
    monkeypatch.setenv("KR_SPARK_MASTER", "local[2]")
    monkeypatch.setenv("KR_SPARK_SHUFFLE_PARTITIONS", "2")


def test_cli_exits_1_with_a_report_when_it_finds_identifiers(cli_env, landing, capsys):
    assert main(["scan", str(landing)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("identifier-shaped values found in 3 of 3 files")
    assert not [v for v in IDENTIFIERS if v in out]


def test_cli_json(cli_env, landing, capsys):
    assert main(["scan", str(landing), "--json"]) == 1
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["clean"] is False
    assert (report["files_scanned"], report["rows_scanned"]) == (3, 10)
    assert {"file": str(landing / "subscribers.csv"), "column": "email", "detector": "email",
            "count": 2} in report["findings"]
    assert not [v for v in IDENTIFIERS if v in out]


def test_cli_exits_0_on_clean_files(cli_env, tmp_path, capsys):
    (tmp_path / "release.csv").write_text("region,visits\nSeoul,8831\nBusan,2004\n")
    assert main(["scan", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "no identifier-shaped values found in 1 file, 2 rows"


@pytest.mark.parametrize("name", ["missing", "notes.txt"])
def test_cli_exits_2_naming_the_path(cli_env, tmp_path, capsys, name):
    path = tmp_path / name
    if name.endswith(".txt"):
        path.write_text("kim@example.kr")
    assert main(["scan", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"kr-reports scan: error: {path}: ")
    assert "kim@example.kr" not in captured.err + captured.out


def test_cli_help_describes_scan(capsys):
    with pytest.raises(SystemExit) as info:
        main(["scan", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--json" in out and "Luhn" in out and "exit status" in out


# --- real public data -----------------------------------------------------------------


def shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


def test_telco_churn_has_no_identifier_shaped_values(cli_env, capsys):
    # customerID ("7590-VHVEG") is an identifier, but not one of the shapes detected.
    path = shared("telco_churn/Telco-Customer-Churn.csv")
    assert main(["scan", str(path)]) == 0
    assert capsys.readouterr().out.strip() == (
        "no identifier-shaped values found in 1 file, 7,043 rows"
    )


def test_netflow_addresses_are_found_and_counted(spark, tmp_path):
    # Argus flow CSV with real campus IPv4 addresses; copied to a .csv name.
    source = shared("netflow_ctu/2013-10-21_capture-1.binetflow")
    file = tmp_path / "flows.csv"
    shutil.copy(source, file)
    import csv

    with file.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    ipv4 = re.compile(identifier_patterns()["ipv4"])
    expected = {
        column: sum(1 for row in rows if ipv4.search(row[column])) for column in ("SrcAddr", "DstAddr")
    }
    report = scan_path(spark, file)
    assert report.rows_scanned == len(rows) == 2398
    assert list(report.findings) == [
        Finding(str(file), column, "ipv4", count) for column, count in expected.items()
    ]


def test_log_without_a_supported_extension_is_refused(spark):
    path = shared("apache_logs/apache_logs")
    with pytest.raises(ScanError, match="unsupported file type"):
        scan_path(spark, path)
