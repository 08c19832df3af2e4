import datetime as dt
import hashlib
import hmac
import random

import pytest
from pyspark.sql import functions as F

from core.policy import load_policy
from core.schemas import SOURCES
from transforms import jvm_functions as jvm
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


@pytest.fixture(params=["jvm", "builtin"])
def route(request, monkeypatch, spark):
    """Each test under the project's JVM functions, and under Spark's built-ins (their fallback)."""
    if request.param == "builtin":
        monkeypatch.setattr(jvm, "has_function", lambda name: False)
    else:
        assert jvm.has_function(jvm.HMAC_SHA256_HEX) and jvm.has_function(jvm.IPV4_NETWORK)
    return request.param


def _pseudonyms(spark, values, key=KEY):
    df = spark.createDataFrame([(v,) for v in values], "account_id string")
    return [r["p"] for r in pseudonymize_column(df, "account_id", key, "p").collect()]


def test_pseudonym_is_hmac_sha256_of_the_value(spark, route):
    # Lengths around SHA-256's 64-byte block and its 55-byte last-block limit.
    values = ["KR0000001", "KR0000002", "+821012345678", "ünïcödé", ""]
    values += ["x" * n for n in (55, 56, 63, 64, 65, 200)]
    expected = [hmac.new(KEY, v.encode(), hashlib.sha256).hexdigest() for v in values]
    assert _pseudonyms(spark, values) == expected


def test_pseudonym_is_hmac_of_the_identifier_bytes(spark, route):
    # Not valid UTF-8: hashing the bytes keeps two such identifiers apart, where
    # decoding them first would replace both with U+FFFD and give one pseudonym.
    identifiers = [b"KR\xff1", b"KR\xfe1"]
    df = spark.createDataFrame([(bytearray(i),) for i in identifiers], "raw binary")
    ids = df.select(F.col("raw").cast("string").alias("account_id"))
    pseudonyms = [r["p"] for r in pseudonymize_column(ids, "account_id", KEY, "p").collect()]
    assert pseudonyms == [hmac.new(KEY, i, hashlib.sha256).hexdigest() for i in identifiers]


def test_null_stays_null_and_keys_do_not_join(spark, route):
    assert _pseudonyms(spark, [None]) == [None]
    other = bytes(reversed(range(32)))
    assert _pseudonyms(spark, ["KR1"]) != _pseudonyms(spark, ["KR1"], key=other)
    assert _pseudonyms(spark, ["KR1", "KR1"])[0] == _pseudonyms(spark, ["KR1"])[0]


def test_key_material_never_appears_in_the_query_plan(spark, route, capsys):
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
        ("FE80:0:00A0:000b::", "fe80:0:a0::/48", "fe80:0:a0::/48"),
        (":1:2:3:4:5:6:7", "1:2:3::/48", "1:2:3::/48"),
        ("0.0.0.0", "0.0.0.0/24", "0.0.0.0/16"),
        ("255.255.255.255", "255.255.255.0/24", "255.255.0.0/16"),
        ("300.1.1.1", None, None),
        ("1.2.3.256", None, None),
        ("01.2.3.4", None, None),
        ("1.2.3.4.", None, None),
        ("1..2.3", None, None),
        ("1.2.3.04", None, None),
        ("4294967297.1.1.1", None, None),
        ("1.2.3.4\n", "1.2.3.0/24", "1.2.0.0/16"),  # java.util.regex's "$" lets a final line break by
        ("1.2.3.4\n\n", None, None),
        ("\u0661.2.3.4", None, None),  # an Arabic-Indic digit one
        ("1.2.3", None, None),
        ("1.2.3.4/24", None, None),
        ("::ffff:1.2.3.4", None, None),
        ("not-an-ip", None, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_generalize_ip(spark, route, ip, v4_24, v4_16):
    df = spark.createDataFrame([(ip,)], "ip string")
    row = df.select(
        generalize_ip(F.col("ip")).alias("a"), generalize_ip(F.col("ip"), 16).alias("b")
    ).first()
    assert (row["a"], row["b"]) == (v4_24, v4_16)


def test_generalize_ip_rejects_unaligned_prefixes():
    with pytest.raises(ValueError, match="ipv4_prefix"):
        generalize_ip(F.col("ip"), 20)


@pytest.mark.parametrize(
    ("ipv4_prefix", "ipv6_prefix", "ip", "network"),
    [
        (8, 48, "192.168.17.201", "192.0.0.0/8"),
        (8, 16, "2001:DB8:1::", "2001::/16"),
        (24, 112, "2001:0db8:0:1:2:3:4:5", "2001:db8:0:1:2:3:4::/112"),
        (24, 112, "2001:db8::5", "2001:db8:0:0:0:0:0::/112"),
    ],
)
def test_generalize_ip_other_prefixes(spark, route, ipv4_prefix, ipv6_prefix, ip, network):
    df = spark.createDataFrame([(ip,)], "ip string")
    assert df.select(generalize_ip(F.col("ip"), ipv4_prefix, ipv6_prefix)).first()[0] == network


def _generalize_ip_before_issue_3(ip, ipv4_prefix, ipv6_prefix):
    """generalize_ip as it was before issue 3 (rlike, split, lambdas): the reference."""
    octet = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
    text = F.trim(ip)
    kept_octets, kept_groups = ipv4_prefix // 8, ipv6_prefix // 16
    octets = F.slice(F.split(text, r"\."), 1, kept_octets)
    zeros = F.array_repeat(F.lit("0"), 4 - kept_octets)
    ipv4 = F.concat(F.concat_ws(".", F.concat(octets, zeros)), F.lit(f"/{ipv4_prefix}"))
    before_gap = F.when(text.contains("::"), F.substring_index(text, "::", 1)).otherwise(text)
    groups = F.array_remove(F.split(F.lower(before_gap), ":"), "")
    padded = F.slice(F.concat(groups, F.array_repeat(F.lit("0"), kept_groups)), 1, kept_groups)
    normalized = F.transform(padded, lambda g: F.regexp_replace(g, r"^0+(?=.)", ""))
    ipv6 = F.concat(F.concat_ws(":", normalized), F.lit(f"::/{ipv6_prefix}"))
    is_v6 = text.rlike(r"^[0-9A-Fa-f:]{2,39}$") & text.contains(":")
    return F.when(text.rlike(rf"^{octet}(\.{octet}){{3}}$"), ipv4).when(is_v6, ipv6)


def _address_like_strings(n: int, seed: int = 3) -> list[str]:
    """Valid IPv4 and IPv6 in many spellings, and the same damaged by one edit."""
    rng = random.Random(seed)

    def ipv4() -> str:
        octets = [str(rng.choice([0, 1, 9, 10, 99, 100, 199, 200, 249, 250, 255, rng.randrange(256)]))
                  for _ in range(4)]
        return ".".join(octets)

    def ipv6() -> str:
        groups = [format(rng.choice([0, 1, 0xA0, rng.randrange(0x10000)]), rng.choice(["x", "04X"]))
                  for _ in range(8)]
        if rng.random() < 0.4:
            return ":".join(groups[: rng.choice([8, 8, 1, 2, 3, 4])])
        gap_at, gap_length = rng.randrange(9), rng.randrange(8)
        return ":".join(groups[:gap_at]) + "::" + ":".join(groups[gap_at + gap_length:])

    edits = "0123456789abcdefABCDEF:.. -x/%\n\t\u00a0\uff11"
    values = []
    for _ in range(n):
        value = ipv4() if rng.random() < 0.5 else ipv6()
        if rng.random() < 0.6:
            at = rng.randrange(len(value) + 1)
            cut = rng.choice([0, 1, 1, 2])
            value = value[:at] + rng.choice(["", rng.choice(edits)]) + value[at + cut:]
        values.append(rng.choice(["", " ", "  "]) + value + rng.choice(["", "", " ", "\n"]))
    return values


@pytest.mark.parametrize(("ipv4_prefix", "ipv6_prefix"), [(24, 48), (16, 32), (8, 16), (24, 112)])
def test_generalize_ip_matches_the_implementation_before_issue_3(spark, route, ipv4_prefix, ipv6_prefix):
    values = _address_like_strings(3000)
    df = spark.createDataFrame([(v,) for v in values], "ip string")
    compared = df.select(
        "ip",
        _generalize_ip_before_issue_3(F.col("ip"), ipv4_prefix, ipv6_prefix).alias("before"),
        generalize_ip(F.col("ip"), ipv4_prefix, ipv6_prefix).alias("now"),
    )
    counts = compared.agg(
        F.count("before").alias("parsed"),
        F.count(F.when(F.col("before").contains(":"), 1)).alias("ipv6"),
        F.count(F.when(~F.col("before").eqNullSafe(F.col("now")), 1)).alias("different"),
    ).first()
    different = compared.filter(~F.col("before").eqNullSafe(F.col("now"))).limit(5).collect()
    assert (counts["different"], different) == (0, [])
    ipv4 = counts["parsed"] - counts["ipv6"]
    assert ipv4 > 900 and counts["ipv6"] > 600  # both families are exercised,
    assert counts["parsed"] < 2700  # and so are strings that do not parse


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
