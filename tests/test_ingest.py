import datetime as dt

import pytest
from pyspark.sql import functions as F

from core.schemas import NETWORK_FLOWS, SUBSCRIBERS, TimeRange
from transforms.ingest import (
    SchemaMismatch,
    check_landing_columns,
    filter_quarantined,
    filter_usable,
    with_typed_and_reasons,
)

DAY = dt.date(2026, 11, 1)
FLOW_TEXT_SCHEMA = ", ".join(f"{c} string" for c in NETWORK_FLOWS.column_names)


def _flow(**overrides):
    row = {
        "account_id": "KR0000001", "src_ip": "10.0.0.1", "dst_ip": "93.184.216.34",
        "src_port": "50000", "dst_port": "443", "protocol": "tcp", "bytes": "1200",
        "packets": "3", "start_time": "2026-11-01 10:15:00", "duration_s": "0.5",
    }
    row.update(overrides)
    return tuple(row[c] for c in NETWORK_FLOWS.column_names)


CASES = [
    (_flow(), None),
    (_flow(account_id=None), "missing_required:account_id"),
    (_flow(account_id="   "), "missing_required:account_id"),
    (_flow(bytes="12kb"), "unparseable:bytes"),
    (_flow(bytes="-5"), "below_min:bytes"),
    (_flow(bytes="1000000000000000"), "above_max:bytes"),
    (_flow(dst_port="70000"), "above_max:dst_port"),
    (_flow(protocol="gre"), "not_allowed:protocol"),
    (_flow(start_time="2026-11-02 00:00:00"), "outside_day:start_time"),
    (_flow(start_time="1970-01-01 00:00:00"), "outside_day:start_time"),
    (_flow(start_time="2026-13-45 99:00:00"), "unparseable:start_time"),
    (_flow(src_port="", dst_port="", protocol="icmp"), None),  # ICMP has no ports
    (_flow(src_ip="999.1.1.1"), "bad_ip_address:src_ip"),
    (_flow(src_ip="10.0.0.1\n"), "bad_ip_address:src_ip"),  # another spelling of one address
    (_flow(dst_ip="fe80::1%eth0"), "bad_ip_address:dst_ip"),
    (_flow(src_ip="2001:db8::1"), None),
]


def test_each_broken_rule_gives_its_reason(spark):
    df = spark.createDataFrame([c[0] for c in CASES], FLOW_TEXT_SCHEMA)
    flagged = with_typed_and_reasons(df, NETWORK_FLOWS, DAY)
    reasons = [r["_reasons"] for r in flagged.select("_reasons").collect()]
    for (_, expected), got in zip(CASES, reasons, strict=True):
        assert (got[0] if got else None) == expected


def test_rows_are_conserved_and_usable_rows_are_typed(spark):
    df = spark.createDataFrame([c[0] for c in CASES], FLOW_TEXT_SCHEMA)
    flagged = with_typed_and_reasons(df, NETWORK_FLOWS, DAY)
    usable = filter_usable(flagged, NETWORK_FLOWS)
    quarantined = filter_quarantined(flagged, NETWORK_FLOWS)
    expected_bad = sum(1 for _, reason in CASES if reason)
    assert usable.count() + quarantined.count() == len(CASES)
    assert quarantined.count() == expected_bad
    assert usable.columns == NETWORK_FLOWS.column_names
    assert dict(usable.dtypes)["bytes"] == "bigint"
    assert dict(usable.dtypes)["start_time"] == "timestamp"
    assert quarantined.columns == ["source", "reason", "reasons", "record"]
    assert quarantined.where(F.col("reason").isNull()).count() == 0


def test_a_row_keeps_every_reason_it_has(spark):
    row = _flow(bytes="oops", start_time="2026-10-31 23:00:00", protocol="gre")
    flagged = with_typed_and_reasons(spark.createDataFrame([row], FLOW_TEXT_SCHEMA), NETWORK_FLOWS, DAY)
    assert flagged.first()["_reasons"] == [
        "not_allowed:protocol", "unparseable:bytes", "outside_day:start_time"
    ]


def test_an_implausible_event_time_is_quarantined_with_or_without_a_day(spark):
    plausible = TimeRange(dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 11, 3, tzinfo=dt.UTC))
    times = ["2026-11-01 10:15:00", "1970-01-01 00:00:00", "5138-11-16 09:46:39"]
    df = spark.createDataFrame([_flow(start_time=t) for t in times], FLOW_TEXT_SCHEMA)
    without_day = with_typed_and_reasons(df, NETWORK_FLOWS, None, plausible).select("_reasons")
    assert [r["_reasons"] for r in without_day.collect()] == [
        [], ["implausible_time:start_time"], ["implausible_time:start_time"]
    ]
    with_day = with_typed_and_reasons(df, NETWORK_FLOWS, DAY, plausible).select("_reasons")
    assert [r["_reasons"] for r in with_day.collect()][1] == [
        "outside_day:start_time", "implausible_time:start_time"
    ]


def test_blank_text_is_missing_not_an_empty_string(spark):
    df = spark.createDataFrame([_flow(src_ip="  ")], FLOW_TEXT_SCHEMA)
    usable = filter_usable(with_typed_and_reasons(df, NETWORK_FLOWS, DAY), NETWORK_FLOWS)
    assert usable.first()["src_ip"] is None


def test_snapshot_sources_have_no_day_rule(spark):
    schema = ", ".join(f"{c} string" for c in SUBSCRIBERS.column_names)
    values = {c: None for c in SUBSCRIBERS.column_names}
    values.update(account_id="KR1", region="Seoul", plan="basic", birth_date="1980-02-30")
    df = spark.createDataFrame([tuple(values[c] for c in SUBSCRIBERS.column_names)], schema)
    assert with_typed_and_reasons(df, SUBSCRIBERS, None).first()["_reasons"] == [
        "unparseable:birth_date"
    ]


def test_landing_columns_must_match_and_the_error_names_file_and_columns(spark):
    df = spark.createDataFrame([("x", "y")], "account_id string, favourite_colour string")
    with pytest.raises(SchemaMismatch) as err:
        check_landing_columns(df, NETWORK_FLOWS, "landing/network_flows/date=2026-11-01")
    message = str(err.value)
    assert message.startswith("landing/network_flows/date=2026-11-01:")
    assert "missing column(s) src_ip" in message
    assert "unclassified column(s) favourite_colour" in message


def test_a_headerless_file_does_not_echo_its_first_row_in_the_error(spark):
    # Without a header, the first record's values become the column names.
    header = "`KR0000042` string, `minji@example.kr` string, account_id string"
    df = spark.createDataFrame([("x",) * 3], header)
    with pytest.raises(SchemaMismatch) as err:
        check_landing_columns(df, NETWORK_FLOWS, "landing/network_flows/date=2026-11-01")
    message = str(err.value)
    assert "minji@example.kr" not in message and "KR0000042" not in message
    assert "2 more not shown" in message
