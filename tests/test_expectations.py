"""Great Expectations suites and runner: raw, protected and release suites on
small hand-made frames, the identifier detectors, and what a failure reports."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest

from core.schemas import SOURCES
from expectations.detectors import detectors, identifier_patterns
from expectations.runner import ValidationFailed, validate_dataframe
from expectations.suites import (
    build_protected_suite,
    build_raw_suite,
    build_release_suite,
)

DAY = dt.date(2024, 3, 15)
NOT_MATCH = "expect_column_values_to_not_match_regex"
SHAPED = "expect_column_values_to_not_be_identifier_shaped"
LUHN = {d.name for d in detectors() if d.luhn}


def detector_expectation(detector: str) -> str:
    """The expectation type a detector becomes: a regex, or the shared predicate with its Luhn check."""
    return SHAPED if detector in LUHN else NOT_MATCH


def ts(day: int, hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> dt.datetime:
    """A UTC instant in March 2024 (the Spark session runs in UTC)."""
    return dt.datetime(2024, 3, day, hour, minute, second, micro, tzinfo=dt.UTC)


def pseudonym(account_id: str) -> str:
    """Shaped like the protect stage's keyed HMAC-SHA256: 64 lowercase hex."""
    return hashlib.sha256(f"test-key:{account_id}".encode()).hexdigest()


# --- raw (typed canonical) fixtures -------------------------------------------------

RAW_DDL = {
    "subscribers": (
        "account_id string, name string, email string, msisdn string, birth_date date, "
        "gender string, region string, postcode string, plan string, addons string, "
        "contract string, payment_method string, card_number string, password_hash string, "
        "monthly_charges double, signup_date date"
    ),
    "devices": (
        "account_id string, imei string, imsi string, mac string, brand string, model string, "
        "os string, first_seen date"
    ),
    "call_records": (
        "call_id string, account_id string, caller_msisdn string, callee_msisdn string, "
        "start_time timestamp, duration_s int, call_type string, cell_id string, roaming boolean"
    ),
    "network_flows": (
        "account_id string, src_ip string, dst_ip string, src_port int, dst_port int, "
        "protocol string, bytes bigint, packets bigint, start_time timestamp, duration_s double"
    ),
    "web_visits": (
        "account_id string, client_ip string, domain string, url string, visit_time timestamp, "
        "bytes bigint, user_agent string"
    ),
}

UA = "Mozilla/5.0 (Linux; Android 14; SM-S911N) AppleWebKit/537.36 Chrome/122.0 Mobile"

RAW_GOOD = {
    "subscribers": [
        ("KR00012345", "Kim Minji", "minji.kim@example.kr", "+821012345678", dt.date(1990, 5, 1),
         "female", "Seoul", "04524", "5G Standard", "music,cloud", "24m", "card",
         "4111111111111111", "$2b$12$Qm9vYmFyYmF6cXV4cXV1eA", 49.5, dt.date(2021, 3, 2)),
        ("KR00012346", "Lee Junho", "junho@example.kr", "010-9876-5432", dt.date(1984, 11, 23),
         "male", "Busan", "48058", "LTE Basic", None, "12m", "bank_transfer",
         None, None, 29.9, dt.date(2019, 7, 15)),
        ("KR00012347", None, None, None, None,
         None, "Incheon", None, "5G Premium", "video", "none", "card",
         None, None, 0.0, dt.date(2023, 6, 30)),
    ],
    "devices": [
        ("KR00012345", "352099001761481", "450051234567890", "00:1a:2b:3c:4d:5e", "Samsung",
         "Galaxy S23", "Android 14", dt.date(2023, 3, 1)),
        ("KR00012345", "356938035643809", None, None, "Apple", "iPhone 15", "iOS 17.4",
         dt.date(2024, 1, 20)),
        ("KR00012346", "490154203237518", "450081987654321", "a4-83-e7-12-34-56", "LG", "V50",
         None, None),
    ],
    "call_records": [
        ("c-000001", "KR00012345", "+821012345678", "+821098765432", ts(15, 0, 0, 0), 125,
         "voice", "C01203", False),
        ("c-000002", "KR00012346", "+821098765432", "+821055550000", ts(15, 23, 59, 59), 0,
         "sms", None, None),
        ("c-000003", "KR00012345", "+821012345678", None, ts(15, 12, 30, 5), 3600,
         "data", "C01204", True),
    ],
    "network_flows": [
        ("KR00012345", "10.20.30.40", "142.250.196.110", 51234, 443, "tcp", 18234, 42,
         ts(15, 8, 15, 2), 1.25),
        ("KR00012346", "2001:0db8:0000:0000:0000:ff00:0042:8329",
         "2404:6800:4004:0820:0000:0000:0000:200e", 5353, 53, "udp", 120, 1,
         ts(15, 0, 0, 0), 0.01),
        ("KR00012347", "10.20.30.41", "8.8.8.8", None, None, "icmp", 84, None,
         ts(15, 23, 59, 59, 999_999), None),
    ],
    "web_visits": [
        ("KR00012345", "10.20.30.40", "naver.com", "https://search.naver.com/search?q=kr",
         ts(15, 9, 1, 7), 53_210, UA),
        ("KR00012346", "10.20.31.7", "youtube.com", None, ts(15, 21, 45), 1_204_332, None),
        ("KR00012347", None, "kakao.com", "https://kakao.com/", ts(15, 0, 0, 0), None, UA),
    ],
}

# Each bad fixture breaks rules on purpose; the expected failures are exact:
# (expectation type, column, unexpected rows).
RAW_BAD = {
    "subscribers": (
        [
            (None, "Park Jisoo", "jisoo@example.kr", "010-2222-3333", dt.date(1975, 2, 2),
             "female", "Daegu", "41911", "LTE Basic", None, "12m", "card", None, None,
             19.9, dt.date(2018, 1, 1)),
            ("KR00099001", None, None, None, None, "unknown", "Gwangju", None, "5G Standard",
             None, "24m", "card", None, None, -5.25, dt.date(2020, 2, 2)),
            ("KR00099002", None, None, None, None, "male", "Ulsan", None, "5G Premium",
             None, "none", "card", None, None, 12_000.75, dt.date(2022, 9, 9)),
        ],
        {
            ("expect_column_values_to_not_be_null", "account_id", 1),
            ("expect_column_values_to_be_in_set", "gender", 1),
            ("expect_column_values_to_be_between", "monthly_charges", 2),
        },
    ),
    "devices": (
        [
            (None, "352099001761481", None, None, "Samsung", "Galaxy S23", "Android 14", None),
            ("KR00099001", None, "450051234500001", None, "Samsung", "Galaxy A54", None, None),
            ("KR00099002", None, None, "3c:22:fb:00:11:22", "Apple", "iPhone 13", None, None),
        ],
        {
            ("expect_column_values_to_not_be_null", "account_id", 1),
            ("expect_column_values_to_not_be_null", "imei", 2),
        },
    ),
    "call_records": (
        [
            ("c-900001", None, "+821033334444", "+821055556666", ts(15, 10), 60, "voice",
             None, False),
            ("c-900002", "KR00099001", "+821033334445", None, ts(14, 23, 59, 59), 90_061,
             "fax", None, False),
            ("c-900003", "KR00099002", "+821033334446", None, ts(15, 11), -7, "sms",
             None, True),
        ],
        {
            ("expect_column_values_to_not_be_null", "account_id", 1),
            ("expect_column_values_to_be_between", "start_time", 1),
            ("expect_column_values_to_be_between", "duration_s", 2),
            ("expect_column_values_to_be_in_set", "call_type", 1),
        },
    ),
    "network_flows": (
        [
            (None, "10.99.0.1", "1.1.1.1", 40000, 443, "tcp", 500, 3, ts(15, 3), 0.5),
            ("KR00099001", "10.99.0.2", "9.9.9.9", 40001, 70_001, "gre", -1, 2,
             ts(16, 0, 0, 0), 0.5),
            ("KR00099002", "10.99.0.3", "9.9.9.10", 40002, 53, "udp", 2_000_000_000_000, 1,
             ts(15, 4), 90_000.5),
        ],
        {
            ("expect_column_values_to_not_be_null", "account_id", 1),
            ("expect_column_values_to_be_between", "dst_port", 1),
            ("expect_column_values_to_be_in_set", "protocol", 1),
            ("expect_column_values_to_be_between", "bytes", 2),
            ("expect_column_values_to_be_between", "start_time", 1),
            ("expect_column_values_to_be_between", "duration_s", 1),
        },
    ),
    "web_visits": (
        [
            (None, "10.99.1.1", "daum.net", None, ts(15, 6), 1000, None),
            ("KR00099001", "10.99.1.2", None, None, ts(14, 12, 30), 2000, None),
            ("KR00099002", "10.99.1.3", "coupang.com", None, ts(15, 7), -42, None),
        ],
        {
            ("expect_column_values_to_not_be_null", "account_id", 1),
            ("expect_column_values_to_not_be_null", "domain", 1),
            ("expect_column_values_to_be_between", "visit_time", 1),
            ("expect_column_values_to_be_between", "bytes", 1),
        },
    ),
}


# --- protected fixtures -------------------------------------------------------------

PROTECTED_DDL = {
    "subscribers": (
        "subscriber string, age_band string, gender string, region string, plan string, "
        "addons string, contract string, payment_method string, monthly_charges double, "
        "signup_date date"
    ),
    "devices": (
        "subscriber string, tac string, brand string, model string, os string, first_seen date"
    ),
    "call_records": (
        "subscriber string, start_hour timestamp, duration_s int, call_type string, "
        "cell_id string, roaming boolean"
    ),
    "network_flows": (
        "subscriber string, src_net string, dst_net string, src_port int, dst_port int, "
        "protocol string, bytes bigint, packets bigint, start_hour timestamp, duration_s double"
    ),
    "web_visits": "subscriber string, client_net string, domain string, visit_hour timestamp, "
    "bytes bigint",
}

P1, P2, P3 = pseudonym("KR00012345"), pseudonym("KR00012346"), pseudonym("KR00012347")

PROTECTED_GOOD = {
    "subscribers": [
        (P1, "30-39", "female", "Seoul", "5G Standard", "music,cloud", "24m", "card", 49.5,
         dt.date(2021, 3, 2)),
        (P2, "40-49", "male", "Busan", "LTE Basic", None, "12m", "bank_transfer", 29.9,
         dt.date(2019, 7, 15)),
        (P3, None, None, "Incheon", "5G Premium", "video", "none", "card", 0.0, None),
    ],
    "devices": [
        (P1, "35209900", "Samsung", "Galaxy S23", "Android 14", dt.date(2023, 3, 1)),
        (P1, "35693803", "Apple", "iPhone 15", "iOS 17.4", dt.date(2024, 1, 20)),
        (P2, "49015420", "LG", "V50", None, None),
    ],
    "call_records": [
        (P1, ts(15, 0), 125, "voice", "C01203", False),
        (P2, ts(15, 23), 0, "sms", None, None),
        (P1, ts(15, 12), 3600, "data", "C01204", True),
    ],
    "network_flows": [
        (P1, "10.1.2.0/24", "142.250.196.0/24", 51234, 443, "tcp", 18234, 42, ts(15, 8), 1.25),
        (P2, "2001:db8:1::/48", "2404:6800:4004::/48", 5353, 53, "udp", 120, 1, ts(15, 0), 0.01),
        (P3, "10.1.3.0/24", "8.8.8.0/24", None, None, "icmp", 84, None, ts(15, 23), None),
    ],
    "web_visits": [
        (P1, "10.1.2.0/24", "naver.com", ts(15, 9), 53_210),
        (P2, "10.1.3.0/24", "youtube.com", ts(15, 21), 1_204_332),
        (P3, None, "kakao.com", ts(15, 0), None),
    ],
}


# --- release fixtures ---------------------------------------------------------------

RELEASE_DDL = (
    "region string, visit_hour timestamp, age_band string, subscribers bigint, visits bigint"
)
RELEASE_COLUMNS = ["region", "visit_hour", "age_band", "subscribers", "visits"]
RELEASE_COUNTS = ["subscribers", "visits"]
RELEASE_GOOD = [
    ("Seoul", ts(15, 9), "30-39", 1_204, 8_831),
    ("Busan", ts(15, 9), "40-49", 311, 2_004),
    ("Jeju", ts(15, 10), "20-29", 0, 0),
]


# --- helpers ------------------------------------------------------------------------


def frame(spark, ddl, rows):
    return spark.createDataFrame(rows, ddl)


def failed_as_triples(exc: ValidationFailed) -> set[tuple[str, str | None, int | None]]:
    return {(f["expectation"], f["column"], f["unexpected_count"]) for f in exc.failures}


def value_texts(rows) -> set[str]:
    """How each cell of `rows` could show up as text (skipping short numbers and flags)."""
    texts: set[str] = set()
    for row in rows:
        for value in row:
            if value is None or isinstance(value, bool):
                continue
            if isinstance(value, dt.datetime):
                texts |= {value.isoformat(), value.strftime("%Y-%m-%d %H:%M:%S")}
            elif isinstance(value, dt.date):
                texts.add(value.isoformat())
            elif len(str(value)) >= 3:
                texts.add(str(value))
    return texts


def assert_no_values(exc: ValidationFailed, rows) -> None:
    reported = str(exc) + repr(exc.failures)
    leaked = sorted(t for t in value_texts(rows) if t in reported)
    assert not leaked, f"data values in the failure report: {leaked}"


# --- detectors ----------------------------------------------------------------------
# The regexes alone, in Python and Java; for imei, iccid and card_number they find
# candidates, and the Luhn check (tests/test_scan.py) decides.

POSITIVE = {
    "email": ["minji.kim@example.kr", "contact: j.doe+tag@mail.co.kr", "A_B@x-y.com"],
    "phone": [
        "+821012345678",
        "+82 10-1234-5678",
        "+14155552671",
        "010-1234-5678",
        "01012345678",
        "tel 010 9876 5432",
        "011-123-4567",
        "02-123-4567",
        "031-1234-5678",
    ],
    "ipv4": ["10.1.2.3", "192.168.0.1", "host 8.8.8.8 ok", "255.255.255.255", "10.1.2.3/32"],
    "ipv6": [
        "2001:0db8:0000:0000:0000:ff00:0042:8329",
        "fe80:0:0:0:202:b3ff:fe1e:8329",
        "2001:db8:0:0:0:0:0:1/128",
        "2001:db8::1",
        "src=2001:db8:1:2::ff, port 443",
        "fe80::202:b3ff:fe1e:8329",
        "2001:db8::1/128",
        "2404:6800:4004:820::200e",
        "::1",
    ],
    "mac": ["00:1a:2b:3c:4d:5e", "00-1A-2B-3C-4D-5E", "mac=a4:83:e7:12:34:56", "001a.2b3c.4d5e"],
    "imei": ["352099001761481", "35-209900-176148-1", "imei:490154203237518"],
    "imsi": ["450051234567890", "310150123456789"],
    "iccid": ["8982300123456789013", "iccid 89014103211118510720"],
    "card_number": [
        "4111111111111111",
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "378282246310005",
        "3782 822463 10005",
        "6011000990139424123",
        "6011-0009-9013-9424-123",
    ],
}

NEGATIVE = {
    "email": ["kim at example.kr", "@handle", "user@localhost", "naver.com"],
    "phone": ["12345678", "2024-03-15", "02-1234", "+8210", "a01012345678", "0101234567890"],
    "ipv4": [
        "10.1.2.0/24",
        "142.250.196.0/24",
        "10.0.0.0/8",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "v 10.1.2",
        "2024.03.15",
    ],
    "ipv6": [
        "2001:db8:1::/48",
        "2404:6800:4004::/48",
        "2001:db8::1/64",
        "2001:0db8:0001:0000:0000:0000:0000:0000/48",
        "10:00",
        "12:30:45",
        "00:1a:2b:3c:4d:5e",
        "std::vector",
        "1:2:3:4:5:6:7:8:9",
    ],
    "mac": ["00:1a:2b:3c:4d", "00:1a:2b:3c:4d:5e:6f", "00:1a-2b:3c:4d:5e", "12:30:45"],
    "imei": ["35209900", "3520990017614812", "35209900176148", "x352099001761481"],
    "imsi": ["150051234567890", "45005123456789", "4500512345678901"],
    "iccid": ["8982300123456789", "898230012345678901234", "9982300123456789013"],
    "card_number": [
        "411111111111",
        "12345678901234567890",
        "2024-03-15 10:00:00",
        "010-1234-5678",
        "C01203",
        "4111 1111-1111 1111",
        "1710496800007",  # epoch milliseconds, Luhn-valid: no card opens with 1
        "20240315100006",  # yyyymmddhhmmss, Luhn-valid: nor with 20 or 21
    ],
}


def test_identifier_patterns_names_every_detector():
    assert list(identifier_patterns()) == [
        "email", "phone", "ipv4", "ipv6", "mac", "imei", "imsi", "iccid", "card_number",
    ]


@pytest.mark.parametrize("detector", sorted(POSITIVE))
def test_detector_finds_identifiers(detector):
    pattern = re.compile(identifier_patterns()[detector])
    missed = [value for value in POSITIVE[detector] if not pattern.search(value)]
    assert not missed


@pytest.mark.parametrize("detector", sorted(NEGATIVE))
def test_detector_ignores_non_identifiers(detector):
    pattern = re.compile(identifier_patterns()[detector])
    flagged = [value for value in NEGATIVE[detector] if pattern.search(value)]
    assert not flagged


def test_detectors_ignore_pseudonyms_and_protected_values():
    values = [P1, P2, P3, "10.1.2.0/24", "2001:db8:1::/48", "35209900", "30-39"]
    values += ["C01203", "5G Standard", "iOS 17.4", "naver.com", "LTE Basic"]
    patterns = {name: re.compile(regex) for name, regex in identifier_patterns().items()}
    flagged = [(n, v) for n, p in patterns.items() for v in values if p.search(v)]
    assert not flagged


def test_detectors_agree_between_java_and_python(spark):
    from pyspark.sql import functions as F

    samples = sorted(
        {v for vs in POSITIVE.values() for v in vs} | {v for vs in NEGATIVE.values() for v in vs}
    )
    patterns = identifier_patterns()
    checked = spark.createDataFrame([(v,) for v in samples], "value string").select(
        "value", *[F.col("value").rlike(regex).alias(name) for name, regex in patterns.items()]
    )
    java = {row["value"]: {name: row[name] for name in patterns} for row in checked.collect()}
    python = {
        v: {name: re.search(regex, v) is not None for name, regex in patterns.items()}
        for v in samples
    }
    assert java == python


# --- raw suites ---------------------------------------------------------------------


def test_raw_ddl_matches_the_canonical_spec():
    for name, source in SOURCES.items():
        assert [c.split()[0] for c in RAW_DDL[name].split(", ")] == source.column_names


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_raw_suite_passes_a_good_frame(spark, source):
    suite = build_raw_suite(SOURCES[source], DAY)
    summary = validate_dataframe(
        frame(spark, RAW_DDL[source], RAW_GOOD[source]), suite, label=f"raw/{source}"
    )
    assert summary == {
        "suite": f"raw_{source}",
        "success": True,
        "evaluated": len(suite.expectations),
        "failed": 0,
        "failures": [],
    }


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_raw_suite_names_each_broken_rule_without_values(spark, source):
    rows, expected = RAW_BAD[source]
    suite = build_raw_suite(SOURCES[source], DAY)
    with pytest.raises(ValidationFailed) as info:
        validate_dataframe(frame(spark, RAW_DDL[source], rows), suite, label=f"raw/{source}")
    exc = info.value
    assert failed_as_triples(exc) == expected
    message = str(exc)
    assert message.startswith(
        f"raw/{source}: suite raw_{source} failed {len(expected)} of "
        f"{len(suite.expectations)} expectations: "
    )
    for expectation, column, count in expected:
        assert f"{expectation} on {column} ({count} rows)" in message
    assert all(f["element_count"] == len(rows) for f in exc.failures)
    assert_no_values(exc, rows)


def test_raw_suite_event_time_window_is_half_open(spark):
    rows = [(*RAW_GOOD["network_flows"][0][:8], t, 1.0) for t in (ts(15, 0), ts(16, 0))]
    with pytest.raises(ValidationFailed) as info:
        validate_dataframe(
            frame(spark, RAW_DDL["network_flows"], rows),
            build_raw_suite(SOURCES["network_flows"], DAY),
            label="raw/network_flows",
        )
    assert failed_as_triples(info.value) == {
        ("expect_column_values_to_be_between", "start_time", 1)
    }


def test_raw_suite_checks_spark_types(spark):
    ddl = RAW_DDL["network_flows"].replace("bytes bigint", "bytes int")
    rows = [(*r[:6], 1000, *r[7:]) for r in RAW_GOOD["network_flows"]]
    with pytest.raises(ValidationFailed) as info:
        validate_dataframe(
            frame(spark, ddl, rows),
            build_raw_suite(SOURCES["network_flows"], DAY),
            label="raw/network_flows",
        )
    assert "expect_column_values_to_be_of_type on bytes (observed IntegerType)" in str(info.value)
    assert [f["column"] for f in info.value.failures] == ["bytes"]


def test_raw_suite_reports_a_missing_column(spark):
    df = frame(spark, RAW_DDL["devices"], RAW_GOOD["devices"]).drop("mac")
    with pytest.raises(ValidationFailed) as info:
        validate_dataframe(df, build_raw_suite(SOURCES["devices"], None), label="raw/devices")
    message = str(info.value)
    assert "expect_table_columns_to_match_ordered_list (missing: mac; unexpected: none)" in message
    assert "expect_column_values_to_be_of_type on mac (error)" in message
    assert_no_values(info.value, RAW_GOOD["devices"])


def test_raw_suite_of_a_daily_source_needs_the_day():
    with pytest.raises(ValueError, match="daily"):
        build_raw_suite(SOURCES["web_visits"], None)


def test_raw_suite_is_built_from_the_spec():
    source = SOURCES["network_flows"]
    suite = build_raw_suite(source, DAY)
    assert suite.name == "raw_network_flows"
    by_type: dict[str, list[dict]] = {}
    for expectation in suite.expectations:
        config = expectation.configuration
        by_type.setdefault(config.type, []).append(config.kwargs)
    assert by_type["expect_table_columns_to_match_ordered_list"] == [
        {"column_list": source.column_names}
    ]
    types = {kw["column"]: kw["type_"] for kw in by_type["expect_column_values_to_be_of_type"]}
    assert types["bytes"] == "LongType" and types["src_port"] == "IntegerType"
    assert types["start_time"] == "TimestampType" and types["duration_s"] == "DoubleType"
    assert sorted(kw["column"] for kw in by_type["expect_column_values_to_not_be_null"]) == [
        "account_id", "bytes", "protocol", "start_time",
    ]
    between = by_type["expect_column_values_to_be_between"]
    (window,) = [kw for kw in between if kw["column"] == "start_time"]
    assert window["min_value"] == ts(15, 0) and window["max_value"] == ts(16, 0)
    assert window["strict_max"] is True


# --- protected suites ---------------------------------------------------------------


def ddl_columns(source: str) -> list[str]:
    return [c.split()[0] for c in PROTECTED_DDL[source].split(", ")]


def ddl_string_columns(source: str) -> list[str]:
    return [c.split()[0] for c in PROTECTED_DDL[source].split(", ") if c.split()[1] == "string"]


def protected_suite(source: str):
    """The protected suite for the fixture's columns (the policy's come from core.policy)."""
    return build_protected_suite(SOURCES[source], ddl_columns(source), ddl_string_columns(source))


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_protected_suite_passes_protected_data(spark, source):
    df = frame(spark, PROTECTED_DDL[source], PROTECTED_GOOD[source])
    summary = validate_dataframe(df, protected_suite(source), label="protected")
    assert summary["success"] and summary["suite"] == f"protected_{source}"


@pytest.mark.parametrize(
    ("source", "column", "value", "detector"),
    [
        ("subscribers", "addons", "minji.kim@example.kr", "email"),
        ("subscribers", "region", "010-1234-5678", "phone"),
        ("call_records", "cell_id", "+821012345678", "phone"),
        ("network_flows", "src_net", "10.1.2.3", "ipv4"),
        ("web_visits", "client_net", "2001:0db8:0000:0000:0000:ff00:0042:8329", "ipv6"),
        ("devices", "model", "00:1a:2b:3c:4d:5e", "mac"),
        ("devices", "tac", "352099001761481", "imei"),
        ("devices", "os", "89014103211118510720", "iccid"),
        ("network_flows", "protocol", "4111-1111-1111-1111", "card_number"),
    ],
)
def test_protected_suite_flags_identifier_values(spark, source, column, value, detector):
    rows = PROTECTED_GOOD[source]
    at = ddl_columns(source).index(column)
    leaky = [(*rows[0][:at], value, *rows[0][at + 1:]), *rows[1:]]
    with pytest.raises(ValidationFailed) as info:
        validate_dataframe(
            frame(spark, PROTECTED_DDL[source], leaky),
            protected_suite(source),
            label=f"protected/{source}",
        )
    exc = info.value
    assert f"{detector_expectation(detector)}[{detector}] on {column} (1 rows)" in str(exc)
    assert {f["column"] for f in exc.failures} == {column}
    assert (detector, 1) in {(f["detector"], f["unexpected_count"]) for f in exc.failures}
    assert value not in str(exc) and value not in repr(exc.failures)
    assert_no_values(exc, leaky)


def test_protected_suite_passes_numbers_that_fail_the_luhn_check(spark):
    # 15 and 16 digits shaped like an IMEI and a card, with a wrong check digit; the
    # IMEI opens with 1, so it is no IMSI either.
    rows = PROTECTED_GOOD["devices"]
    values = [("152099001761480", "4111111111111112"), ("89014103211118510721", "5500 0000 0000 0005")]
    near_misses = [
        (*row[:3], model, os_, row[5]) for row, (model, os_) in zip(rows[:2], values, strict=True)
    ]
    summary = validate_dataframe(
        frame(spark, PROTECTED_DDL["devices"], [*near_misses, rows[2]]),
        protected_suite("devices"),
        label="protected/devices",
    )
    assert summary["success"]


def test_detector_expectations_use_the_shared_detectors():
    suite = protected_suite("devices")
    by_type: dict[str, set[tuple[str, str]]] = {}
    for e in suite.expectations:
        config = e.configuration
        if config.type in (NOT_MATCH, SHAPED):
            assert config.kwargs["column"] == e.meta["column"]
            detector = e.meta["detector"]
            if config.type == NOT_MATCH:
                assert config.kwargs["regex"] == identifier_patterns()[detector]
            else:
                assert config.kwargs["detector"] == detector
            by_type.setdefault(config.type, set()).add((e.meta["column"], detector))
    columns = ddl_string_columns("devices")
    assert by_type[SHAPED] == {(c, d) for c in columns for d in LUHN}
    assert by_type[NOT_MATCH] == {(c, d) for c in columns for d in identifier_patterns() if d not in LUHN}


def test_identifier_expectation_refuses_an_unknown_detector():
    from expectations.suites import ExpectColumnValuesToNotBeIdentifierShaped

    with pytest.raises(ValueError, match="unknown detector"):
        ExpectColumnValuesToNotBeIdentifierShaped(column="tac", detector="passport")


def test_detector_expectations_take_one_spark_aggregation(spark):
    # Every detector of every column is computed in the same aggregation as the
    # suite's other column checks: the Luhn detectors add no Spark job.
    df = frame(spark, PROTECTED_DDL["subscribers"], PROTECTED_GOOD["subscribers"]).cache()
    suite = protected_suite("subscribers")
    regex_only = protected_suite("subscribers")
    regex_only.expectations = [e for e in regex_only.expectations if e.configuration.type != SHAPED]
    try:
        df.count()
        jobs = {}
        for name, s in {"all": suite, "regex_only": regex_only}.items():
            spark.sparkContext.setJobGroup(f"detectors-{name}", name)
            validate_dataframe(df, s, label=name)
            jobs[name] = len(spark.sparkContext.statusTracker().getJobIdsForGroup(f"detectors-{name}"))
        spark.sparkContext.setJobGroup("", "")
    finally:
        df.unpersist()
    assert jobs["all"] == jobs["regex_only"] <= 6


def test_protected_suite_requires_a_hex_pseudonym(spark):
    rows = PROTECTED_GOOD["web_visits"]
    bad = [(P1.upper(), *rows[0][1:]), (None, *rows[1][1:]), rows[2]]
    with pytest.raises(ValidationFailed) as info:
        validate_dataframe(
            frame(spark, PROTECTED_DDL["web_visits"], bad),
            protected_suite("web_visits"),
            label="protected/web_visits",
        )
    assert failed_as_triples(info.value) == {
        ("expect_column_values_to_not_be_null", "subscriber", 1),
        ("expect_column_values_to_match_regex", "subscriber", 1),
    }
    assert_no_values(info.value, bad)


def test_protected_suite_refuses_a_dropped_column(spark):
    rows = [(*r, "https://naver.com/") for r in PROTECTED_GOOD["web_visits"]]
    df = frame(spark, PROTECTED_DDL["web_visits"] + ", url string", rows)
    with pytest.raises(ValidationFailed) as info:
        validate_dataframe(df, protected_suite("web_visits"), label="protected")
    assert "(missing: none; unexpected: url)" in str(info.value)


# --- release suite ------------------------------------------------------------------


def release_suite():
    return build_release_suite(RELEASE_COLUMNS, RELEASE_COUNTS)


def test_release_suite_passes_a_good_release(spark):
    summary = validate_dataframe(
        frame(spark, RELEASE_DDL, RELEASE_GOOD), release_suite(), label="release"
    )
    assert summary["success"] and summary["suite"] == "release"


def test_release_suite_fails_a_negative_or_missing_count(spark):
    rows = [(*RELEASE_GOOD[0][:4], -3), (*RELEASE_GOOD[1][:3], None, 5), RELEASE_GOOD[2]]
    with pytest.raises(ValidationFailed) as info:
        validate_dataframe(frame(spark, RELEASE_DDL, rows), release_suite(), label="release/x")
    assert failed_as_triples(info.value) == {
        ("expect_column_values_to_be_between", "visits", 1),
        ("expect_column_values_to_not_be_null", "subscribers", 1),
    }
    assert "-3" not in str(info.value)


def test_release_suite_fails_an_extra_column(spark):
    rows = [(*r, P1) for r in RELEASE_GOOD]
    df = frame(spark, RELEASE_DDL + ", subscriber string", rows)
    with pytest.raises(ValidationFailed) as info:
        validate_dataframe(df, release_suite(), label="release/x")
    assert [f["expectation"] for f in info.value.failures] == [
        "expect_table_columns_to_match_ordered_list"
    ]
    assert "(missing: none; unexpected: subscriber)" in str(info.value)
    assert P1 not in str(info.value)


def test_release_suite_fails_an_identifier_shaped_value(spark):
    rows = [("kim@example.kr", *RELEASE_GOOD[0][1:]), *RELEASE_GOOD[1:]]
    with pytest.raises(ValidationFailed) as info:
        validate_dataframe(frame(spark, RELEASE_DDL, rows), release_suite(), label="release/x")
    assert failed_as_triples(info.value) == {(NOT_MATCH, "region", 1)}
    assert f"{NOT_MATCH}[email] on region (1 rows)" in str(info.value)
    assert "kim@example.kr" not in str(info.value)


def test_release_suite_scans_only_the_named_string_columns():
    suite = build_release_suite(RELEASE_COLUMNS, RELEASE_COUNTS, string_columns=["region"])
    scanned = {
        (e.meta["column"], e.meta["detector"])
        for e in suite.expectations
        if e.configuration.type in (NOT_MATCH, SHAPED)
    }
    assert scanned == {("region", d) for d in identifier_patterns()}
    with pytest.raises(ValueError, match="not among the expected"):
        build_release_suite(RELEASE_COLUMNS, ["cells"])


# --- runner -------------------------------------------------------------------------


def test_runner_reuses_its_context_and_never_mixes_frames(spark):
    suite = release_suite()
    good = frame(spark, RELEASE_DDL, RELEASE_GOOD)
    bad = frame(spark, RELEASE_DDL, [(*RELEASE_GOOD[0][:4], -1)])
    assert validate_dataframe(good, suite, label="1")["success"]
    with pytest.raises(ValidationFailed):
        validate_dataframe(bad, suite, label="2")
    assert validate_dataframe(good, suite, label="3")["success"]


def test_runner_leaves_caching_as_it_found_it(spark):
    suite = release_suite()
    uncached = frame(spark, RELEASE_DDL, RELEASE_GOOD)
    validate_dataframe(uncached, suite, label="uncached")
    assert not uncached.is_cached
    cached = frame(spark, RELEASE_DDL, RELEASE_GOOD).cache()
    try:
        validate_dataframe(cached, suite, label="cached")
        assert cached.is_cached
    finally:
        cached.unpersist()


def test_runner_shows_no_progress_bars(spark, capfd):
    validate_dataframe(frame(spark, RELEASE_DDL, RELEASE_GOOD), release_suite(), label="quiet")
    captured = capfd.readouterr()
    assert "Calculating Metrics" not in captured.err + captured.out
