"""The names of the project's JVM functions, and whether the session can call them.

The jar that provides them is built, pinned and loaded by stages.jvm; transforms
only ask whether a function is there and fall back to built-in Spark when not.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

HMAC_SHA256_HEX = "kr_hmac_sha256_hex"
IPV4_NETWORK = "kr_ipv4_network"
FUNCTIONS = {HMAC_SHA256_HEX: "krreports.HmacSha256Hex", IPV4_NETWORK: "krreports.Ipv4Network"}


def has_function(name: str) -> bool:
    """Whether the active session can call JVM function `name`."""
    spark = SparkSession.getActiveSession()
    return spark is not None and spark.catalog.functionExists(name)
