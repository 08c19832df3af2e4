"""Synthetic landing data: schema contract, determinism, validity and realistic shapes.

The generator makes pyarrow tables; the rules are checked on them through Spark, as ingest
types them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from functools import reduce
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from core.errors import InternalAlarm
from core.schemas import SOURCES, SourceSpec
from stages.generate import json_lines, write_landing
from synthetic import (
    generate_call_records,
    generate_devices,
    generate_network_flows,
    generate_subscribers,
    generate_web_visits,
    inject_bad_rows,
)
from synthetic.draws import (
    keys_of,
    luhn_check_digit,
    normal,
    uniform,
    uniform_index,
    weighted_index,
)
from synthetic.model import DEVICE_MODELS, HOURLY_WEIGHTS, REGION_WEIGHTS
from synthetic.records import event_seconds, event_time, records_per_subscriber
from synthetic.text import decimal_text, time_text

DAY = dt.date(2026, 11, 1)
SEED = 11
N_SUBSCRIBERS = 200
DAILY = ("call_records", "network_flows", "web_visits")
CHILDREN = ("devices", *DAILY)


def generate_all(seed: int, n_subscribers: int = N_SUBSCRIBERS) -> dict[str, pa.Table]:
    """All five sources for one day, derived from one subscribers table."""
    subscribers = generate_subscribers(n_subscribers, seed)
    return {
        "subscribers": subscribers,
        "devices": generate_devices(subscribers, seed),
        "call_records": generate_call_records(subscribers, DAY, seed),
        "network_flows": generate_network_flows(subscribers, DAY, seed),
        "web_visits": generate_web_visits(subscribers, DAY, seed),
    }


@pytest.fixture(scope="module")
def tables() -> dict[str, pa.Table]:
    return generate_all(SEED)


@pytest.fixture(scope="module")
def landing(spark, tables):
    frames = {name: spark.createDataFrame(table).cache() for name, table in tables.items()}
    yield frames
    for df in frames.values():
        df.unpersist()


def rule_violations(source: SourceSpec, day: dt.date | None) -> dict[str, Column]:
    """Per rule, a column true where a row breaks it (written apart from the generator)."""
    rules: dict[str, Column] = {}
    for f in source.fields:
        raw = F.col(f.name)
        typed = raw.try_cast(f.dtype)
        rules[f"{f.name}:parse"] = raw.isNotNull() & typed.isNull()
        if f.required:
            rules[f"{f.name}:required"] = raw.isNull()
        if f.min_value is not None:
            rules[f"{f.name}:min"] = typed < F.lit(f.min_value)
        if f.max_value is not None:
            rules[f"{f.name}:max"] = typed > F.lit(f.max_value)
        if f.allowed:
            rules[f"{f.name}:allowed"] = ~raw.isin(*f.allowed)
        if f.pattern:
            rules[f"{f.name}:pattern"] = ~raw.rlike(f.pattern.anchored)
    if source.event_time is not None and day is not None:
        at = F.col(source.event_time).try_cast("timestamp")
        start = F.lit(f"{day.isoformat()} 00:00:00").cast("timestamp")
        end = F.lit(f"{(day + dt.timedelta(days=1)).isoformat()} 00:00:00").cast("timestamp")
        rules[f"{source.event_time}:day"] = (at < start) | (at >= end)
    return {name: F.coalesce(rule, F.lit(False)) for name, rule in rules.items()}


def is_invalid(source: SourceSpec, day: dt.date | None) -> Column:
    """True where a row breaks at least one rule."""
    return reduce(lambda a, b: a | b, rule_violations(source, day).values())


def day_of(name: str) -> dt.date | None:
    return DAY if SOURCES[name].is_daily else None


def luhn_valid(number: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char) * (2 if position % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


# --- contract ----------------------------------------------------------------


def test_region_weights_are_the_configured_regions_in_order(config_dir: Path):
    regions = yaml.safe_load((config_dir / "pipeline.yaml").read_text())["regions"]
    assert list(REGION_WEIGHTS) == regions
    assert REGION_WEIGHTS["Gyeonggi"] > REGION_WEIGHTS["Seoul"] > REGION_WEIGHTS["Busan"]
    assert min(REGION_WEIGHTS.values()) == REGION_WEIGHTS["Sejong"]


@pytest.mark.parametrize("name", list(SOURCES))
def test_landing_columns_are_the_canonical_columns_as_strings(landing, name):
    df = landing[name]
    assert df.columns == SOURCES[name].column_names
    assert all(isinstance(f.dataType, StringType) for f in df.schema.fields)
    assert df.count() > 0


@pytest.mark.parametrize("name", list(SOURCES))
def test_same_seed_gives_identical_rows(tables, name):
    assert generate_all(SEED)[name].equals(tables[name])


@pytest.mark.parametrize("name", list(SOURCES))
def test_different_seed_gives_different_rows(spark, landing, name):
    other = spark.createDataFrame(generate_all(SEED + 1)[name])
    assert other.exceptAll(landing[name]).count() > 0.9 * other.count()


@pytest.mark.parametrize("name", list(SOURCES))
def test_rows_do_not_depend_on_how_subscribers_are_chunked(tables, name):
    """Subscribers 1-200 in two chunks give the rows of one chunk, in the same order."""
    first, rest = generate_all(SEED, 70), generate_subscribers(N_SUBSCRIBERS - 70, SEED, first=71)
    later = {"subscribers": rest, "devices": generate_devices(rest, SEED),
             "call_records": generate_call_records(rest, DAY, SEED),
             "network_flows": generate_network_flows(rest, DAY, SEED),
             "web_visits": generate_web_visits(rest, DAY, SEED)}
    assert pa.concat_tables([first[name], later[name]]).equals(tables[name])


# --- clean rows are valid ------------------------------------------------------


@pytest.mark.parametrize("name", list(SOURCES))
def test_clean_rows_pass_every_rule(landing, name):
    violations = rule_violations(SOURCES[name], day_of(name))
    counts = landing[name].select(
        *[F.sum(rule.cast("int")).alias(rule_name) for rule_name, rule in violations.items()]
    ).first()
    assert {rule: n for rule, n in counts.asDict().items() if n} == {}


@pytest.mark.parametrize("name", CHILDREN)
def test_every_record_belongs_to_a_subscriber(landing, name):
    orphans = landing[name].join(landing["subscribers"], on="account_id", how="left_anti")
    assert orphans.count() == 0


def test_subscriber_identifiers_are_well_formed(landing):
    patterns = {
        "account_id": r"^KR[0-9]{8}$",
        "msisdn": r"^\+8210[0-9]{8}$",
        "postcode": r"^[0-9]{5}$",
        "email": r"^[a-z]+\.[a-z]+[0-9]+@[a-z.]+$",
        "card_number": r"^[0-9]{16}$",
        "password_hash": r"^[0-9a-f]{64}$",
        "birth_date": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    }
    subscribers = landing["subscribers"]
    malformed = subscribers.select(
        *[F.sum((~F.col(c).rlike(p)).cast("int")).alias(c) for c, p in patterns.items()]
    ).first()
    assert {c: n for c, n in malformed.asDict().items() if n} == {}
    assert subscribers.select("account_id").distinct().count() == N_SUBSCRIBERS
    assert subscribers.select("msisdn").distinct().count() == N_SUBSCRIBERS


def test_subscriber_categories_have_expected_values(landing):
    subscribers = landing["subscribers"]
    values = {
        c: {r[0] for r in subscribers.select(c).distinct().collect()}
        for c in ("gender", "contract", "payment_method")
    }
    assert values["gender"] <= {"female", "male", "other"}
    assert {"female", "male"} <= values["gender"]
    assert values["contract"] == {"month-to-month", "one_year", "two_year"}
    card_payers = subscribers.filter(F.col("card_number").isNotNull())
    pays_by_card = F.col("payment_method").isin("credit_card", "debit_card")
    assert card_payers.filter(~pays_by_card).count() == 0
    addons = [r[0] for r in subscribers.select("addons").collect()]
    assert None in addons
    assert any(a and ";" in a for a in addons)
    assert "" not in addons


def test_ages_are_between_16_and_90(landing):
    age = F.floor(
        F.months_between(F.lit("2026-11-01").cast("date"), F.col("birth_date").cast("date")) / 12
    )
    bounds = landing["subscribers"].select(F.min(age), F.max(age)).first()
    assert 16 <= bounds[0] < 25
    assert 70 < bounds[1] <= 90


def test_devices_are_one_to_four_per_subscriber_mostly_one(landing):
    per_subscriber = landing["devices"].groupBy("account_id").count()
    counts = dict(per_subscriber.groupBy("count").count().collect())
    assert set(counts) <= {1, 2, 3, 4}
    assert sum(counts.values()) == N_SUBSCRIBERS
    assert counts[1] > counts.get(2, 0) > counts.get(4, 0)


def test_device_identifiers_are_valid_and_consistent(landing):
    rows = landing["devices"].collect()
    models = {tac: (brand, model, os) for brand, model, os, tac, _ in DEVICE_MODELS}
    for row in rows:
        assert len(row.imei) == 15 and row.imei.isdigit()
        assert luhn_valid(row.imei), row.imei
        assert models[row.imei[:8]] == (row.brand, row.model, row.os)
        assert row.imsi.startswith("45005") and len(row.imsi) == 15 and row.imsi.isdigit()
        pairs = row.mac.split(":")
        assert len(pairs) == 6 and all(len(p) == 2 and int(p, 16) >= 0 for p in pairs)
    assert len({row.imei for row in rows}) == len(rows)


def test_card_numbers_pass_luhn(landing):
    cards = [r[0] for r in landing["subscribers"].select("card_number").dropna().collect()]
    assert cards
    assert all(luhn_valid(card) for card in cards)


def test_luhn_check_digit_matches_known_numbers():
    known = np.array([49015420323751, 35209900176148, 7992739871, 0])
    assert luhn_check_digit(known[:2], 14).tolist() == [8, 1]
    assert luhn_check_digit(known[2:], 10).tolist() == [3, 0]  # 79927398713: the textbook case
    payloads = np.arange(10**14, 10**14 + 2000, 7, dtype=np.int64)
    checked = [f"{p}{d}" for p, d in zip(payloads, luhn_check_digit(payloads, 15), strict=True)]
    assert all(luhn_valid(n) for n in checked)
    assert not any(luhn_valid(n[:-1] + str((int(n[-1]) + 1) % 10)) for n in checked)


def test_event_times_looked_up_are_the_formatted_second_of_the_day():
    """event_time builds its text from lookup tables: the same text as formatting the drawn second."""
    keys = keys_of(np.arange(50_000))
    seconds = event_seconds(SEED, "t", keys)
    looked_up = event_time(DAY, SEED, "t", keys).to_pylist()
    midnight = dt.datetime.combine(DAY, dt.time())
    formatted = [f"{midnight + dt.timedelta(seconds=int(s)):%Y-%m-%d %H:%M:%S}" for s in seconds]
    assert looked_up == formatted
    assert len(set(looked_up)) > 30_000  # ~36,000 of 86,400
    assert time_text(DAY, np.array([0, 86_399])).to_pylist() == ["2026-11-01 00:00:00", "2026-11-01 23:59:59"]


def test_weighted_index_draws_with_the_weights():
    u = uniform(SEED, "w", keys_of(np.arange(400_000)))
    shares = np.bincount(weighted_index(HOURLY_WEIGHTS, u), minlength=24) / len(u)
    expected = np.array(HOURLY_WEIGHTS) / sum(HOURLY_WEIGHTS)
    assert np.abs(shares - expected).max() < 0.002
    edges = np.array([1e-9, 0.2499, 0.2501, 1 - 1e-9])
    assert weighted_index([1.0, 0.0, 3.0], edges).tolist() == [0, 0, 2, 2]
    assert uniform_index(10, np.array([1e-9, 0.5, 1 - 1e-9])).tolist() == [0, 5, 9]


def test_draws_are_uniform_and_normal_and_keyed_by_tag():
    keys = keys_of(np.arange(200_000))
    u = uniform(SEED, "a", keys)
    assert u.min() > 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.005
    assert abs(np.corrcoef(u, uniform(SEED, "b", keys))[0, 1]) < 0.01  # another tag, another stream
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01  # neighbouring keys are independent
    z = normal(SEED, "z", keys)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01


def test_every_record_has_its_own_key():
    records = records_per_subscriber(keys_of(np.arange(1, 20_001)), np.full(20_000, 40))
    assert len(np.unique(records.keys)) == len(records) == 800_000


def test_decimal_text_rounds_to_its_places():
    values = np.array([0.0, 0.0004, 0.0005, 1.5, 69.0, 86_400.0, 123.4567])
    assert decimal_text(values, 3).to_pylist() == [
        "0.000", "0.000", "0.001", "1.500", "69.000", "86400.000", "123.457"]


# --- realistic shapes ----------------------------------------------------------


def test_regions_are_uneven_like_the_population():
    regions = generate_subscribers(5000, SEED).column("region").value_counts().to_pylist()
    counts = {r["values"]: r["counts"] for r in regions}
    assert set(counts) == set(REGION_WEIGHTS)
    assert counts["Gyeonggi"] > counts["Seoul"] > counts["Busan"]
    assert counts["Gyeonggi"] > 10 * counts["Sejong"]


def test_flows_follow_a_diurnal_profile(landing):
    hours = dict(
        landing["network_flows"].groupBy(F.substring("start_time", 12, 2).alias("hour"))
        .count()
        .collect()
    )
    assert hours["20"] > 3 * hours["04"]


def test_flow_bytes_are_heavy_tailed(landing):
    quantiles = landing["network_flows"].select(
        F.percentile(F.col("bytes").cast("long"), F.array(F.lit(0.5), F.lit(0.99)))
    ).first()[0]
    median, p99 = quantiles
    assert 5_000 < median < 100_000
    assert p99 / median > 20


def test_flows_average_the_requested_count_with_a_heavy_tail(landing):
    per_subscriber = landing["network_flows"].groupBy("account_id").count()
    stats = per_subscriber.select(F.sum("count"), F.median("count"), F.max("count")).first()
    total, median, largest = stats
    assert 14 * N_SUBSCRIBERS < total < 26 * N_SUBSCRIBERS
    assert largest > 5 * median


def test_flow_ports_and_packets_follow_protocol_and_bytes(landing):
    flows = landing["network_flows"]
    is_icmp = F.col("protocol") == "icmp"
    has_ports = F.col("src_port").isNotNull() & F.col("dst_port").isNotNull()
    has_a_port = F.col("src_port").isNotNull() | F.col("dst_port").isNotNull()
    assert flows.filter(is_icmp & has_a_port).count() == 0
    assert flows.filter(~is_icmp & ~has_ports).count() == 0
    # about 800 bytes a packet, once a flow is more than a few packets long
    bulk = flows.filter(F.col("bytes").cast("long") > 10_000)
    ratio = F.col("bytes").cast("double") / F.col("packets").cast("double")
    assert bulk.count() > 0
    assert bulk.filter((ratio < 600) | (ratio > 1000)).count() == 0
    assert {r[0] for r in flows.select("protocol").distinct().collect()} == {"tcp", "udp", "icmp"}


def test_subscriber_addresses_are_stable_and_shared_by_flows_and_visits(landing):
    flows = landing["network_flows"].select("account_id", F.col("src_ip").alias("ip"))
    visits = landing["web_visits"].select("account_id", F.col("client_ip").alias("visit_ip"))
    flow_ips = flows.distinct()
    assert flow_ips.groupBy("account_id").count().filter(F.col("count") > 1).count() == 0
    joined = visits.distinct().join(flow_ips, on="account_id", how="inner")
    assert joined.filter(F.col("visit_ip") != F.col("ip")).count() == 0
    assert flow_ips.select("ip").distinct().count() == flow_ips.count()
    ipv6_share = flow_ips.select(F.avg(F.col("ip").contains(":").cast("double"))).first()[0]
    assert 0.02 < ipv6_share < 0.25
    assert flow_ips.filter(~F.col("ip").contains(":") & ~F.col("ip").startswith("10.")).count() == 0


def test_call_records_are_made_from_the_subscribers_line(landing):
    calls = landing["call_records"]
    lines = landing["subscribers"].select("account_id", F.col("msisdn").alias("line"))
    joined = calls.join(lines, on="account_id", how="inner")
    assert joined.filter(F.col("caller_msisdn") != F.col("line")).count() == 0
    roaming_share = calls.select(F.avg((F.col("roaming") == "true").cast("double"))).first()[0]
    assert roaming_share < 0.05
    types = dict(calls.groupBy("call_type").count().collect())
    assert types["voice"] > types["sms"] > types["data"] > 0
    assert calls.select("call_id").distinct().count() == calls.count()


def test_web_domains_are_zipf_distributed(landing):
    ranked = [
        r["count"]
        for r in landing["web_visits"].groupBy("domain").count().orderBy(F.desc("count")).collect()
    ]
    assert len(ranked) > 40
    assert ranked[0] > 5 * ranked[19]
    urls_ok = landing["web_visits"].filter(
        F.col("url").startswith(F.concat(F.lit("https://"), F.col("domain"), F.lit("/")))
    )
    assert urls_ok.count() == landing["web_visits"].count()


# --- malformed rows ------------------------------------------------------------


def test_bad_row_count_is_close_to_the_rate(spark, tables):
    flows = generate_network_flows(tables["subscribers"], DAY, SEED, flows_per_subscriber=25.0)
    n_rows = flows.num_rows
    corrupted = spark.createDataFrame(inject_bad_rows(flows, SOURCES["network_flows"], 0.1, SEED, DAY))
    changed = corrupted.exceptAll(spark.createDataFrame(flows)).count()
    assert n_rows > 4000
    assert 0.7 * 0.1 * n_rows < changed < 1.3 * 0.1 * n_rows


@pytest.mark.parametrize("name", list(SOURCES))
def test_each_injected_row_breaks_a_rule(spark, tables, landing, name):
    clean = landing[name]
    bad = inject_bad_rows(tables[name], SOURCES[name], 0.2, SEED, day_of(name))
    corrupted = spark.createDataFrame(bad).cache()
    changed = corrupted.exceptAll(clean).count()
    invalid = corrupted.filter(is_invalid(SOURCES[name], day_of(name))).count()
    assert corrupted.columns == clean.columns
    assert all(isinstance(f.dataType, StringType) for f in corrupted.schema.fields)
    assert corrupted.count() == clean.count()
    assert changed > 0
    assert invalid == changed
    corrupted.unpersist()


def test_injection_uses_every_kind_of_corruption(spark, tables):
    source = SOURCES["network_flows"]
    corrupted = spark.createDataFrame(inject_bad_rows(tables["network_flows"], source, 0.3, SEED, DAY))
    violations = rule_violations(source, DAY)
    counts = corrupted.select(
        *[F.sum(rule.cast("int")).alias(name) for name, rule in violations.items()]
    ).first()
    kinds = {name.split(":")[1] for name, n in counts.asDict().items() if n}
    assert kinds == {"parse", "required", "min", "max", "allowed", "day"}


def test_injection_is_deterministic_and_chunk_independent(tables):
    source = SOURCES["call_records"]
    calls = tables["call_records"]
    first = inject_bad_rows(calls, source, 0.1, SEED, DAY)
    assert first.equals(inject_bad_rows(calls, source, 0.1, SEED, DAY))
    assert not first.equals(calls)
    # cut between two subscribers' rows: each piece is corrupted as it was in the whole
    accounts = calls.column("account_id").to_pylist()
    cut = accounts.index(accounts[len(accounts) // 2])
    pieces = [inject_bad_rows(calls.slice(0, cut), source, 0.1, SEED, DAY),
              inject_bad_rows(calls.slice(cut), source, 0.1, SEED, DAY)]
    assert pa.concat_tables(pieces).equals(first)


# --- writing the landing zone --------------------------------------------------


@pytest.mark.parametrize("file_format", ["parquet", "csv", "json"])
def test_write_landing_writes_every_dataset_and_the_marker(spark, tmp_path, file_format):
    out = tmp_path / "landing"
    record = write_landing(
        out, n_subscribers=60, days=2, seed=SEED, bad_row_rate=0.05, file_format=file_format,
        chunk_subscribers=25,
    )
    dates = ["2026-11-01", "2026-11-02"]
    marker = json.loads((out / ".complete").read_text())
    assert marker == record
    assert marker["dates"] == dates and marker["format"] == file_format
    assert marker["rows"]["subscribers"] == 60

    def read(path: Path, name: str) -> DataFrame:
        schema = StructType([StructField(c, StringType()) for c in SOURCES[name].column_names])
        return spark.read.format(file_format).schema(schema).option("header", True).load(str(path))

    for name in ("subscribers", "devices"):
        written = read(out / name, name)
        assert written.count() == marker["rows"][name]
        assert written.filter(is_invalid(SOURCES[name], None)).count() == marker["rows_corrupted"][name]
    for name in DAILY:
        invalid = 0
        for day in dates:
            written = read(out / name / f"date={day}", name)
            assert written.count() == marker["rows_by_date"][name][day] > 0
            invalid += written.filter(is_invalid(SOURCES[name], dt.date.fromisoformat(day))).count()
        assert marker["rows"][name] == sum(marker["rows_by_date"][name].values())
        assert marker["rows_corrupted"][name] == invalid  # every row made bad is counted, no other
    assert sum(marker["rows_corrupted"].values()) > 0
    datasets = [out / "subscribers", out / "devices", *[out / n / f"date={d}" for n in DAILY for d in dates]]
    for folder in datasets:  # three parts (25 + 25 + 10 subscribers), then the completion marker
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["_SUCCESS"] + [f"part-0000{i}.{file_format}" for i in range(3)], folder
        assert (folder / "_SUCCESS").stat().st_size == 0
    modes = {stat.S_IMODE(os.stat(p).st_mode) for p in (out, *out.rglob("*"))}
    assert modes <= {0o600, 0o700}  # the landing is the operator's alone
    if file_format == "json":  # JSON lines, every column in order, nulls kept as null
        lines = (out / "subscribers" / "part-00000.json").read_text().splitlines()
        rows = [json.loads(line) for line in lines]
        assert len(rows) == 25 and all(list(row) == SOURCES["subscribers"].column_names for row in rows)
        assert any(row["card_number"] is None for row in rows)


def read_parts(folder: Path) -> pa.Table:
    """A Parquet dataset's part files, in order, as one table."""
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("part-*.parquet"))])


def test_written_rows_do_not_depend_on_the_chunk_size(tmp_path):
    small = write_landing(tmp_path / "small", n_subscribers=90, days=2, seed=SEED, bad_row_rate=0.1,
                          chunk_subscribers=13)
    whole = write_landing(tmp_path / "whole", n_subscribers=90, days=2, seed=SEED, bad_row_rate=0.1)
    assert small == whole and sum(whole["rows_corrupted"].values()) > 0
    folders = [Path(name) for name in ("subscribers", "devices")] + [
        Path(name) / f"date={day}" for name in DAILY for day in whole["dates"]]
    for folder in folders:
        assert len(list((tmp_path / "small" / folder).glob("part-*"))) == 7  # 90 = 6 * 13 + 12
        assert read_parts(tmp_path / "small" / folder).equals(read_parts(tmp_path / "whole" / folder))


def test_write_landing_replaces_an_earlier_landing(tmp_path):
    write_landing(tmp_path, n_subscribers=40, days=1, seed=SEED, chunk_subscribers=10)
    again = write_landing(tmp_path, n_subscribers=15, days=1, seed=SEED, chunk_subscribers=10)
    assert sorted(p.name for p in (tmp_path / "subscribers").iterdir()) == [
        "_SUCCESS", "part-00000.parquet", "part-00001.parquet"]
    assert read_parts(tmp_path / "subscribers").num_rows == again["rows"]["subscribers"] == 15


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"file_format": "xlsx"}, "file_format must be one of ('parquet', 'csv', 'json'), not 'xlsx'"),
        ({"n_subscribers": 0}, "n_subscribers must be a whole number of at least 1, not 0"),
        ({"n_subscribers": 2.5}, "n_subscribers must be a whole number of at least 1, not 2.5"),
        ({"days": -1}, "days must be a whole number of at least 0, not -1"),
        ({"bad_row_rate": 1.5}, "bad_row_rate must be between 0 and 1, not 1.5"),
        ({"chunk_subscribers": 0}, "chunk_subscribers must be a whole number of at least 1, not 0"),
    ],
)
def test_write_landing_refuses_bad_arguments_before_writing(tmp_path, arguments, message):
    out = tmp_path / "landing"
    with pytest.raises(ValueError) as raised:
        write_landing(out, **{"n_subscribers": 10, "days": 1, **arguments})
    assert str(raised.value) == message
    assert not out.exists()


def test_generate_command_reports_a_bad_argument_in_one_line(tmp_path, capsys):
    from kr_reports.cli import main

    out = tmp_path / "landing"
    assert main(["generate", "--subscribers", "0", "--days", "1", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error == "kr-reports generate: error: n_subscribers must be a whole number of at least 1, not 0\n"
    assert not out.exists()


def test_json_lines_escape_quotes_and_backslashes_and_keep_nulls():
    table = pa.table({"a": ['say "hi"', "C:\\dir", None], "b": ["1", None, "é"]})
    lines = bytes(json_lines(table)).decode().splitlines()
    assert [json.loads(line) for line in lines] == table.to_pylist()
    with pytest.raises(InternalAlarm, match="control character"):
        json_lines(pa.table({"a": ["line\nbreak"]}))
