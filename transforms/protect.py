"""Protect: drop direct identifiers, pseudonymize the subscriber, generalize the rest.

Everything here runs in Spark's JVM (no Python UDFs): built-in functions,
and for the two costliest steps, HMAC and IPv4 parsing, the project's own
JVM functions (built by stages.jvm) when the session has them, with the built-in
route kept as their fallback and reference. bench/bench_pipeline.py measures
the gap to a plain select. What happens to each column is the policy's decision
(core.policy); the generalizer names it may cite are GENERALIZERS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.policy import ResolvedRule
from transforms import jvm_functions as jvm
from transforms.generalize import (
    generalize_phone_to_prefix,
    generalize_postcode_to_region,
    generalize_timestamp,
    generalize_url_to_domain,
    imei_tac,
    user_agent_browser,
    user_agent_os,
    with_mac_vendor,
)

HMAC_BLOCK_BYTES = 64  # SHA-256 block size
_IPAD_COLUMN, _OPAD_COLUMN, _KEY_COLUMN = "_hmac_ipad", "_hmac_opad", "_hmac_key"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # 0-255, no leading zero
IPV4_PATTERN = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"  # unrolled: a tenth cheaper than (\.octet){3}
IPV6_PATTERN = r"^[0-9A-Fa-f:]{2,39}$"


def _hmac_pads(key: bytes) -> tuple[bytearray, bytearray]:
    block = key.ljust(HMAC_BLOCK_BYTES, b"\0")
    return bytearray(b ^ 0x36 for b in block), bytearray(b ^ 0x5C for b in block)


def _hmac_builtin(df: DataFrame, key: bytes, message: Column) -> tuple[DataFrame, Column]:
    """RFC 2104 from Spark's sha2: the key's pads as a one-row frame, and the digest over them."""
    ipad, opad = _hmac_pads(key)
    pads = df.sparkSession.createDataFrame(
        [(ipad, opad)], f"{_IPAD_COLUMN} binary, {_OPAD_COLUMN} binary"
    )
    inner = F.unhex(F.sha2(F.concat(F.col(_IPAD_COLUMN), message), 256))
    return pads, F.sha2(F.concat(F.col(_OPAD_COLUMN), inner), 256)


def _hmac_jvm(df: DataFrame, key: bytes, message: Column) -> tuple[DataFrame, Column]:
    """The project's JVM HMAC (kr_reports/jvm): the key as a one-row frame, and the digest."""
    secret = df.sparkSession.createDataFrame([(bytearray(key),)], f"{_KEY_COLUMN} binary")
    return secret, F.call_function(jvm.HMAC_SHA256_HEX, F.col(_KEY_COLUMN), message)


def pseudonymize_column(df: DataFrame, column: str, key: bytes, alias: str) -> DataFrame:
    """Replace `column` by HMAC-SHA256(key, value) as 64 lowercase hex characters.

    The key material travels as a one-row broadcast frame, not as literals, so
    it never appears in a query plan that Spark prints in logs or errors.
    """
    if len(key) > HMAC_BLOCK_BYTES:
        raise ValueError("pseudonymization key must be at most 64 bytes")
    # Spark strings are UTF-8 bytes already: the cast hands them over as value.encode()
    # would, without encode's validation pass and copy, and keeps bytes that are not
    # UTF-8 instead of replacing them with U+FFFD (which made such ids share a pseudonym).
    message = F.col(column).cast("binary")
    keyed_hmac = _hmac_jvm if jvm.has_function(jvm.HMAC_SHA256_HEX) else _hmac_builtin
    secret, digest = keyed_hmac(df, key, message)
    pseudonym = F.when(F.col(column).isNotNull(), digest)
    others = [F.col(c) for c in df.columns if c != column]
    return df.crossJoin(F.broadcast(secret)).select(pseudonym.alias(alias), *others)


def _ipv4_network_builtin(ip: Column, prefix: int) -> Column:
    """`ip`'s network if it is a dotted quad, else null, from Spark's built-in functions.

    Matching the pattern is most of the cost; the network is cut without
    arrays. rlike compiles a literal pattern once, where regexp_extract would
    compare the pattern text on every row and copy the match (about twice the
    cost); the split/slice/concat_ws this replaces built three arrays per
    address (issue 3).
    """
    kept_octets = prefix // 8
    network = F.substring_index(ip, ".", kept_octets)
    zeroed = ".0" * (4 - kept_octets)
    return F.when(ip.rlike(IPV4_PATTERN), F.concat(network, F.lit(f"{zeroed}/{prefix}")))


def _ipv4_network_jvm(ip: Column, prefix: int) -> Column:
    """The same from the project's JVM function: one pass over the characters, no regex."""
    return F.call_function(jvm.IPV4_NETWORK, ip, F.lit(prefix))


def _ipv6_network(ip: Column, prefix: int) -> Column:
    """The groups written before any "::", padded with zeros to prefix/16, leading zeros dropped.

    String functions only: arrays and a regex lambda per group cost twice as much.
    """
    kept_groups = prefix // 16
    colon = F.lit(":")
    before_gap = F.trim(F.substring_index(ip, "::", 1), colon)  # no "::": the whole address
    padded = F.ltrim(F.concat(before_gap, F.lit(":0" * kept_groups)), colon)
    kept = F.lower(F.substring_index(padded, ":", kept_groups))
    # A group's leading zeros but its last character; like the per-group "^0+(?=.)" it
    # replaced, "." keeps a zero before a trailing line break (which IPV6_PATTERN lets by).
    return F.concat(F.regexp_replace(kept, r"(^|:)0+(?=(?!:).)", "$1"), F.lit(f"::/{prefix}"))


def generalize_ip(ip: Column, ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> Column:
    """IPv4 to its /ipv4_prefix network, IPv6 to its /ipv6_prefix; anything else to null.

    Prefixes are octet (IPv4) and hextet (IPv6) aligned. An address that does
    not parse is dropped rather than passed through.
    """
    if ipv4_prefix % 8 or not 0 < ipv4_prefix < 32:
        raise ValueError(f"ipv4_prefix must be 8, 16 or 24, got {ipv4_prefix}")
    if ipv6_prefix % 16 or not 0 < ipv6_prefix < 128:
        raise ValueError(f"ipv6_prefix must be a multiple of 16 below 128, got {ipv6_prefix}")
    text = F.trim(ip)
    ipv4_network = _ipv4_network_jvm if jvm.has_function(jvm.IPV4_NETWORK) else _ipv4_network_builtin
    # A colon decides the branch, so each row runs one of the two validations.
    ipv6_network = F.when(text.rlike(IPV6_PATTERN), _ipv6_network(text, ipv6_prefix))
    return F.when(text.contains(":"), ipv6_network).otherwise(ipv4_network(text, ipv4_prefix))


def generalize_to_age_band(birth_date: Column, on: dt.date) -> Column:
    """Ten-year bands ('30-39'); 90 and over as '90+'; impossible ages to null."""
    age = F.floor(F.months_between(F.lit(on), birth_date) / 12)
    decade = F.floor(age / 10) * 10
    band = F.concat(decade.cast("string"), F.lit("-"), (decade + 9).cast("string"))
    return (
        F.when(age.isNull() | (age < 0), F.lit(None).cast("string"))
        .when(age >= 90, F.lit("90+"))
        .otherwise(band)
    )


# name -> column generalizer (value, run day) -> value. Names are what
# config/policy.yaml may cite; anything else is refused when the rules resolve.
COLUMN_GENERALIZERS: dict[str, Callable[[Column, dt.date], Column]] = {
    "identity": lambda value, on: value,
    "ip_prefix": lambda value, on: generalize_ip(value),
    "hour": lambda value, on: generalize_timestamp(value, "hour"),
    "day": lambda value, on: generalize_timestamp(value, "day"),
    "age_band": generalize_to_age_band,
    "imei_tac": lambda value, on: imei_tac(value),
    "phone_prefix": lambda value, on: generalize_phone_to_prefix(value),
    "registered_domain": lambda value, on: generalize_url_to_domain(value),
    "postcode_region": lambda value, on: generalize_postcode_to_region(value),
}
# Generalizers with more than one output: output name -> suffixed outputs.
USER_AGENT_SUFFIXES = ("browser", "os")
# Generalizers that join a reference table (see stages.reference).
TABLE_GENERALIZERS = ("mac_vendor",)
GENERALIZERS = (*COLUMN_GENERALIZERS, "user_agent_family", *TABLE_GENERALIZERS)


@dataclass(frozen=True)
class References:
    """Reference tables some generalizers join with; None when not available."""

    oui: DataFrame | None = None


def rule_outputs(rule: ResolvedRule) -> tuple[str, ...]:
    """The protected column(s) one source column becomes (none when dropped)."""
    if rule.treatment == "drop":
        return ()
    if rule.generalizer == "user_agent_family":
        return tuple(f"{rule.output}_{suffix}" for suffix in USER_AGENT_SUFFIXES)
    return (rule.output,)


def protected_columns(rules: Sequence[ResolvedRule]) -> list[str]:
    """Column names of the protected dataset, in schema order."""
    return [name for rule in rules for name in rule_outputs(rule)]


def check_generalizers(rules: Sequence[ResolvedRule]) -> None:
    unknown = sorted({r.generalizer for r in rules if r.generalizer} - set(GENERALIZERS))
    if unknown:
        raise ValueError(
            f"policy names unknown generalizer(s) {', '.join(unknown)}; "
            f"known: {', '.join(GENERALIZERS)}"
        )


def _with_table_generalizers(
    df: DataFrame, rules: Sequence[ResolvedRule], references: References
) -> DataFrame:
    for rule in rules:
        if rule.generalizer != "mac_vendor":
            continue
        if references.oui is None:  # no registry: the vendor is unknown, never the MAC
            df = df.withColumn(f"_gen_{rule.column}", F.lit(None).cast("string"))
        else:
            df = with_mac_vendor(df, rule.column, references.oui, f"_gen_{rule.column}")
    return df


def _outputs_of(rule: ResolvedRule, on: dt.date) -> list[Column]:
    column = F.col(rule.column)
    if rule.treatment == "keep":
        return [column.alias(rule.output)]
    if rule.generalizer in TABLE_GENERALIZERS:
        return [F.col(f"_gen_{rule.column}").alias(rule.output)]
    if rule.generalizer == "user_agent_family":
        names = rule_outputs(rule)
        return [user_agent_browser(column).alias(names[0]), user_agent_os(column).alias(names[1])]
    return [COLUMN_GENERALIZERS[rule.generalizer](column, on).alias(rule.output)]


def protect(
    df: DataFrame,
    rules: Sequence[ResolvedRule],
    key: bytes,
    on: dt.date,
    references: References | None = None,
) -> DataFrame:
    """The protected dataset of a canonical one: each column treated as the policy says.

    Dropped columns never reach the output; the subscriber identifier is
    replaced by its keyed HMAC; generalized columns become their category.
    """
    check_generalizers(rules)
    kept = [r for r in rules if r.treatment != "drop"]
    pseudonymized = [r for r in kept if r.treatment == "pseudonymize"]
    enriched = _with_table_generalizers(df, kept, references or References())
    treated = enriched.select(
        *[out for r in kept if r.treatment != "pseudonymize" for out in _outputs_of(r, on)],
        *[F.col(r.column).alias(r.output) for r in pseudonymized],
    )
    for rule in pseudonymized:
        treated = pseudonymize_column(treated, rule.output, key, rule.output)
    return treated.select(*protected_columns(rules))
