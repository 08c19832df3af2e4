"""Protect: drop direct identifiers, pseudonymize the subscriber, generalize the rest.

Everything here is native Spark (no Python UDFs), so it runs at the speed of
a plain select. The column treatments come from kr_reports.schemas.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from kr_reports.schemas import SourceSpec, Treatment

HMAC_BLOCK_BYTES = 64  # SHA-256 block size
_IPAD_COLUMN, _OPAD_COLUMN = "_hmac_ipad", "_hmac_opad"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_PATTERN = rf"^{_OCTET}(\.{_OCTET}){{3}}$"
IPV6_PATTERN = r"^[0-9A-Fa-f:]{2,39}$"


def _hmac_pads(key: bytes) -> tuple[bytearray, bytearray]:
    if len(key) > HMAC_BLOCK_BYTES:
        raise ValueError("pseudonymization key must be at most 64 bytes")
    block = key.ljust(HMAC_BLOCK_BYTES, b"\0")
    return bytearray(b ^ 0x36 for b in block), bytearray(b ^ 0x5C for b in block)


def pseudonymize_column(df: DataFrame, column: str, key: bytes, alias: str) -> DataFrame:
    """Replace `column` by HMAC-SHA256(key, value) as 64 lowercase hex characters.

    The key's pads travel as a one-row broadcast frame, not as literals, so
    they never appear in a query plan that Spark prints in logs or errors.
    """
    ipad, opad = _hmac_pads(key)
    pads = df.sparkSession.createDataFrame(
        [(ipad, opad)], f"{_IPAD_COLUMN} binary, {_OPAD_COLUMN} binary"
    )
    message = F.encode(F.col(column), "UTF-8")
    inner = F.unhex(F.sha2(F.concat(F.col(_IPAD_COLUMN), message), 256))
    digest = F.sha2(F.concat(F.col(_OPAD_COLUMN), inner), 256)
    pseudonym = F.when(F.col(column).isNotNull(), digest)
    others = [F.col(c) for c in df.columns if c != column]
    return df.crossJoin(F.broadcast(pads)).select(pseudonym.alias(alias), *others)


def _ipv4_network(ip: Column, prefix: int) -> Column:
    kept_octets = prefix // 8
    octets = F.slice(F.split(ip, r"\."), 1, kept_octets)
    zeros = F.array_repeat(F.lit("0"), 4 - kept_octets)
    return F.concat(F.concat_ws(".", F.concat(octets, zeros)), F.lit(f"/{prefix}"))


def _ipv6_network(ip: Column, prefix: int) -> Column:
    kept_groups = prefix // 16
    before_gap = F.when(ip.contains("::"), F.substring_index(ip, "::", 1)).otherwise(ip)
    groups = F.array_remove(F.split(F.lower(before_gap), ":"), "")
    padded = F.slice(F.concat(groups, F.array_repeat(F.lit("0"), kept_groups)), 1, kept_groups)
    normalized = F.transform(padded, lambda g: F.regexp_replace(g, r"^0+(?=.)", ""))
    return F.concat(F.concat_ws(":", normalized), F.lit(f"::/{prefix}"))


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
    is_v4 = text.rlike(IPV4_PATTERN)
    is_v6 = text.rlike(IPV6_PATTERN) & text.contains(":")
    return (
        F.when(is_v4, _ipv4_network(text, ipv4_prefix))
        .when(is_v6, _ipv6_network(text, ipv6_prefix))
        .otherwise(F.lit(None).cast("string"))
    )


def generalize_to_hour(ts: Column) -> Column:
    return F.date_trunc("hour", ts)


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


def generalize_imei_to_tac(imei: Column) -> Column:
    """The 8-digit type allocation code identifies a device model, not a device."""
    return F.when(imei.rlike(r"^[0-9]{15}$"), F.substring(imei, 1, 8))


def _generalized(name: str, treatment: Treatment, on: dt.date) -> Column:
    column = F.col(name)
    if treatment is Treatment.TRUNCATE_IP:
        return generalize_ip(column)
    if treatment is Treatment.COARSEN_HOUR:
        return generalize_to_hour(column)
    if treatment is Treatment.AGE_BAND:
        return generalize_to_age_band(column, on)
    if treatment is Treatment.IMEI_TO_TAC:
        return generalize_imei_to_tac(column)
    return column


def protect(df: DataFrame, source: SourceSpec, key: bytes, on: dt.date) -> DataFrame:
    """The protected dataset of a canonical one: the policy's treatment for every column."""
    kept = [f for f in source.fields if f.treatment is not Treatment.DROP]
    pseudonymized = [f for f in kept if f.treatment is Treatment.PSEUDONYMIZE]
    generalized = df.select(
        *[
            _generalized(f.name, f.treatment, on).alias(f.name)
            for f in kept
            if f.treatment is not Treatment.PSEUDONYMIZE
        ],
        *[F.col(f.name) for f in pseudonymized],
    )
    for field in pseudonymized:
        generalized = pseudonymize_column(generalized, field.name, key, field.name)
    return generalized.select(*[F.col(f.name).alias(f.protected_name or f.name) for f in kept])
