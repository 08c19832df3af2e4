import datetime as dt
import hashlib
import hmac

import pytest
from pyspark.sql import functions as F

from kr_reports.schemas import SOURCES, protected_columns
from transforms.protect import (
    _hmac_pads,
    generalize_imei_to_tac,
    generalize_ip,
    generalize_to_age_band,
    generalize_to_hour,
    protect,
    pseudonymize_column,
)

KEY = bytes(range(32))


def _pseudonyms(spark, values, key=KEY):
    df = spark.createDataFrame([(v,) for v in values], "account_id string")
    return [r["p"] for r in pseudonymize_column(df, "account_id", key, "p").collect()]


def test_pseudonym_is_hmac_sha256_of_the_value(spark):
    values = ["KR0000001", "KR0000002", "+821012345678", "ünïcödé"]
    expected = [hmac.new(KEY, v.encode(), hashlib.sha256).hexdigest() for v in values]
    assert _pseudonyms(spark, values) == expected


def test_null_stays_null_and_keys_do_not_join(spark):
    assert _pseudonyms(spark, [None]) == [None]
    other = bytes(reversed(range(32)))
    assert _pseudonyms(spark, ["KR1"]) != _pseudonyms(spark, ["KR1"], key=other)
    assert _pseudonyms(spark, ["KR1", "KR1"])[0] == _pseudonyms(spark, ["KR1"])[0]


def test_key_material_never_appears_in_the_query_plan(spark, capsys):
    df = spark.createDataFrame([("KR1",)], "account_id string")
    pseudonymize_column(df, "account_id", KEY, "p").explain(extended=True)
    plan = capsys.readouterr().out
    ipad, opad = _hmac_pads(KEY)
    for secret in (KEY.hex(), bytes(ipad).hex(), bytes(opad).hex()):
        assert secret not in plan.lower()
    assert "[" + ", ".join(str(b) for b in ipad[:4]) not in plan


@pytest.mark.parametrize(
    ("ip", "v4_24", "v4_16"),
    [
        ("192.168.17.201", "192.168.17.0/24", "192.168.0.0/16"),
        (" 10.0.0.1 ", "10.0.0.0/24", "10.0.0.0/16"),
        ("2001:0DB8:85a3:0000:0000:8a2e:0370:7334", "2001:db8:85a3::/48", "2001:db8:85a3::/48"),
        ("2001:db8::1", "2001:db8:0::/48", "2001:db8:0::/48"),
        ("::1", "0:0:0::/48", "0:0:0::/48"),
        ("300.1.1.1", None, None),
        ("1.2.3", None, None),
        ("not-an-ip", None, None),
        (None, None, None),
    ],
)
def test_generalize_ip(spark, ip, v4_24, v4_16):
    df = spark.createDataFrame([(ip,)], "ip string")
    row = df.select(
        generalize_ip(F.col("ip")).alias("a"), generalize_ip(F.col("ip"), 16).alias("b")
    ).first()
    assert (row["a"], row["b"]) == (v4_24, v4_16)


def test_generalize_ip_rejects_unaligned_prefixes():
    with pytest.raises(ValueError, match="ipv4_prefix"):
        generalize_ip(F.col("ip"), 20)


def test_age_band_hour_and_tac(spark):
    df = spark.createDataFrame(
        [
            (dt.date(1986, 11, 2), dt.datetime(2026, 11, 1, 10, 59, 59), "356938035643809"),
            (dt.date(1930, 1, 1), dt.datetime(2026, 11, 1, 0, 0, 0), "35693803564380"),
            (dt.date(2030, 1, 1), None, None),
        ],
        "birth date, ts timestamp, imei string",
    )
    rows = df.select(
        generalize_to_age_band(F.col("birth"), dt.date(2026, 11, 1)).alias("band"),
        generalize_to_hour(F.col("ts")).alias("hour"),
        generalize_imei_to_tac(F.col("imei")).alias("tac"),
    ).collect()
    assert [r["band"] for r in rows] == ["30-39", "90+", None]
    assert rows[0]["hour"] == dt.datetime(2026, 11, 1, 10, 0)
    assert [r["tac"] for r in rows] == ["35693803", None, None]


@pytest.mark.parametrize("source_name", sorted(SOURCES))
def test_protect_keeps_only_the_policy_columns(spark, source_name):
    source = SOURCES[source_name]
    schema = ", ".join(f"{f.name} {f.dtype}" for f in source.fields)
    df = spark.createDataFrame([], schema)
    protected = protect(df, source, KEY, dt.date(2026, 11, 1))
    assert protected.columns == protected_columns(source)
    dropped = {f.name for f in source.fields if f.treatment == "drop"}
    assert not dropped & set(protected.columns)
    assert "account_id" not in protected.columns
