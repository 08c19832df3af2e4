"""Subscriber-level helpers shared by the sources: hash keys, records per subscriber, addresses."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from core.schemas import SourceSpec
from synthetic.draws import RECORD_KEY, SUBSCRIBER_KEY, random_bits, uniform
from synthetic.model import IPV6_SHARE, REGIONS


def account_number(account_id: Column) -> Column:
    """The number inside an account id ('KR00000042' -> 42)."""
    return F.substring(account_id, 3, 12).try_cast("long")


def subscriber_ip(seed: int) -> Column:
    """The subscriber's address: a unique 10.0.0.0/8 IPv4, or for some a 2001:db8::/32 IPv6."""
    key = F.col(SUBSCRIBER_KEY)
    # odd multiplier: a bijection of the 24-bit host numbers, so addresses are unique
    number = account_number(F.col("account_id"))
    host = F.pmod(number * F.lit(2_654_435) + F.lit(seed % 2**24), F.lit(2**24))
    ipv4 = F.concat_ws(
        ".",
        F.lit("10"),
        F.pmod(F.shiftright(host, 16), F.lit(256)).cast("string"),
        F.pmod(F.shiftright(host, 8), F.lit(256)).cast("string"),
        F.pmod(host, F.lit(256)).cast("string"),
    )
    interface = F.lit(1) + F.pmod(random_bits(seed, "ipv6:host", key), F.lit(65535))
    ipv6 = F.concat_ws(
        ":",
        F.lit("2001:db8"),
        F.lower(F.hex(F.lit(0x100) + F.shiftright(host, 16))),
        F.lower(F.hex(F.pmod(host, F.lit(65536)))),
        F.lit(""),
        F.lower(F.hex(interface)),
    )
    return F.when(uniform(seed, "ipv6", key) < F.lit(IPV6_SHARE), ipv6).otherwise(ipv4)


def region_number(region: Column) -> Column:
    """1-based position of a region in REGIONS (0 when unknown)."""
    return F.array_position(F.array(*[F.lit(r) for r in REGIONS]), region).cast("int")


def with_subscriber_key(df: DataFrame) -> DataFrame:
    """Add the subscriber's hash key, the input of every per-subscriber draw."""
    return df.withColumn(SUBSCRIBER_KEY, F.xxhash64(F.col("account_id")))


def with_records_per_subscriber(df: DataFrame, count: Column, keep: Sequence[str]) -> DataFrame:
    """One row per record: account_id, subscriber key and `keep`, `seq` 1..count, record key."""
    columns = ["account_id", SUBSCRIBER_KEY, *keep]
    return (
        df.select(*columns, count.alias("n_records"))
        .filter(F.col("n_records") > 0)
        .select(*columns, F.explode(F.sequence(F.lit(1), F.col("n_records"))).alias("seq"))
        .withColumn(RECORD_KEY, F.xxhash64(F.col(SUBSCRIBER_KEY), F.col("seq")))
    )


def select_landing(df: DataFrame, source: SourceSpec) -> DataFrame:
    """The canonical landing columns of `source`, in order, all strings."""
    return df.select(*[F.col(c).cast("string").alias(c) for c in source.column_names])

