import datetime as dt
import hashlib
import hmac

import pytest
from pyspark.sql import functions as F

from kr_reports.policy import load_policy
from kr_reports.schemas import SOURCES
from transforms.protect import (
    References,
    _hmac_pads,
    generalize_ip,
    generalize_to_age_band,
    protect,
    protected_columns,
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


def test_age_band(spark):
    df = spark.createDataFrame(
        [(dt.date(1986, 11, 2),), (dt.date(1986, 11, 1),), (dt.date(1930, 1, 1),),
         (dt.date(2030, 1, 1),), (None,)],
        "birth date",
    )
    bands = df.select(generalize_to_age_band(F.col("birth"), dt.date(2026, 11, 1)).alias("b"))
    assert [r["b"] for r in bands.collect()] == ["30-39", "40-49", "90+", None, None]


@pytest.fixture(scope="module")
def policy(config_dir):
    return load_policy(config_dir)


@pytest.mark.parametrize("source_name", sorted(SOURCES))
def test_protect_keeps_only_the_policy_columns(spark, policy, source_name):
    source = SOURCES[source_name]
    rules = policy.resolve(source)
    schema = ", ".join(f"{f.name} {f.dtype}" for f in source.fields)
    protected = protect(spark.createDataFrame([], schema), rules, KEY, dt.date(2026, 11, 1))
    assert protected.columns == protected_columns(rules)
    dropped = {r.column for r in rules if r.treatment == "drop"}
    assert not dropped & set(protected.columns)
    assert "account_id" not in protected.columns


def test_protect_treats_each_column_as_the_policy_says(spark, policy):
    source = SOURCES["web_visits"]
    row = ("KR0000042", "203.0.113.77", "news.example.co.kr", "https://news.example.co.kr/a?u=42",
           dt.datetime(2026, 11, 1, 21, 47, 5), 5120,
           "Mozilla/5.0 (Linux; Android 14; SM-S921N) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0 Mobile Safari/537.36")
    schema = ", ".join(f"{f.name} {f.dtype}" for f in source.fields)
    out = protect(spark.createDataFrame([row], schema), policy.resolve(source), KEY,
                  dt.date(2026, 11, 1)).first().asDict()
    assert out == {
        "subscriber": hmac.new(KEY, b"KR0000042", hashlib.sha256).hexdigest(),
        "client_net": "203.0.113.0/24",
        "domain": "example.co.kr",
        "visit_hour": dt.datetime(2026, 11, 1, 21, 0),
        "bytes": 5120,
        "user_agent_browser": "Chrome",
        "user_agent_os": "Android",
    }


def test_mac_vendor_is_null_without_a_registry_and_looked_up_with_one(spark, policy):
    source = SOURCES["devices"]
    schema = ", ".join(f"{f.name} {f.dtype}" for f in source.fields)
    row = ("KR1", "356938035643809", "450051234567890", "00:1A:11:22:33:44", "Samsung",
           "Galaxy", "Android", dt.date(2026, 1, 1))
    df = spark.createDataFrame([row], schema)
    rules = policy.resolve(source)
    without = protect(df, rules, KEY, dt.date(2026, 11, 1)).first()
    assert without["mac_vendor"] is None and without["tac"] == "35693803"
    oui = spark.createDataFrame([("001A11", "Google, Inc.")], "oui string, vendor string")
    with_registry = protect(df, rules, KEY, dt.date(2026, 11, 1), References(oui=oui)).first()
    assert with_registry["mac_vendor"] == "Google, Inc."
    assert "imsi" not in with_registry.asDict() and "mac" not in with_registry.asDict()
