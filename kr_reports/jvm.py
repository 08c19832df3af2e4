"""The project's JVM functions: HMAC-SHA256 and IPv4 networks, compiled from kr_reports/jvm.

Spark's built-in functions can do both (transforms.protect keeps that route),
but at about twice the cost of a JVM function that parses once and keeps the
key's digest state (bench/bench_pipeline.py --protect-pieces measures both).
The jar is compiled with the JDK's javac on first use, into Spark's scratch
folder under a name that hashes the sources and the Spark version, and is
handed to Spark with spark.jars, so executors of a cluster get it too.
Without a javac, the session runs without the functions and protect falls
back to the built-in route, with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession
from pyspark.sql.types import StringType

log = logging.getLogger(__name__)

SOURCES = Path(__file__).with_name("jvm")
HMAC_SHA256_HEX = "kr_hmac_sha256_hex"
IPV4_NETWORK = "kr_ipv4_network"
FUNCTIONS = {HMAC_SHA256_HEX: "krreports.HmacSha256Hex", IPV4_NETWORK: "krreports.Ipv4Network"}


def _java_sources() -> list[Path]:
    return sorted(SOURCES.rglob("*.java"))


def _javac() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "javac").exists():
        return str(Path(java_home) / "bin" / "javac")
    return shutil.which("javac")


def _jar_name() -> str:
    digest = hashlib.sha256(pyspark.__version__.encode())
    for source in _java_sources():
        digest.update(source.relative_to(SOURCES).as_posix().encode() + b"\0" + source.read_bytes())
    return f"kr-reports-functions-{digest.hexdigest()[:16]}.jar"


def _compile(javac: str, jar: Path) -> None:
    """javac the sources against PySpark's jars, and zip the classes into `jar` atomically."""
    spark_jars = Path(pyspark.__file__).parent / "jars"
    with tempfile.TemporaryDirectory(dir=jar.parent) as build:
        classes = Path(build) / "classes"
        command = [javac, "--release", "17", "-nowarn", "-cp", f"{spark_jars}/*", "-d", str(classes)]
        result = subprocess.run(
            command + [str(s) for s in _java_sources()], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"javac failed on {SOURCES}:\n{result.stderr.strip()}")
        staged = Path(build) / jar.name
        with zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as archive:
            for class_file in sorted(classes.rglob("*.class")):
                archive.write(class_file, class_file.relative_to(classes).as_posix())
        os.replace(staged, jar)  # two sessions compiling at once each land a whole jar


def functions_jar(scratch: Path) -> Path | None:
    """The jar of the project's JVM functions, compiled if needed; None without a javac."""
    jar = scratch / "jvm" / _jar_name()
    if jar.exists():
        return jar
    javac = _javac()
    if javac is None:
        log.warning(
            "No javac (a JDK) found: protect uses Spark's built-in functions for HMAC and "
            "IPv4, about twice as slow. Install a JDK 17+ or set JAVA_HOME to one."
        )
        return None
    jar.parent.mkdir(parents=True, exist_ok=True)
    _compile(javac, jar)
    return jar


def register_functions(spark: SparkSession) -> None:
    """Register the JVM functions in `spark`; raises when its class path lacks the jar."""
    for name, class_name in FUNCTIONS.items():
        spark.udf.registerJavaFunction(name, class_name, StringType())


def has_function(name: str) -> bool:
    """Whether the active session can call JVM function `name`."""
    spark = SparkSession.getActiveSession()
    return spark is not None and spark.catalog.functionExists(name)
