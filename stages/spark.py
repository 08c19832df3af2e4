"""The one place a SparkSession is built.

`local[*]` by default; KR_SPARK_MASTER (any master URL), KR_SPARK_SHUFFLE_PARTITIONS
and KR_SPARK_DRIVER_MEMORY point the same code at a cluster. Spark's scratch
files and warehouse go under KR_SPARK_LOCAL_DIR (default: kr-reports-spark-<uid>
in the system temp folder), never into the working tree. That folder holds
shuffles and spills of raw rows and the jar of code that runs beside the
pseudonymization key: it is created 0700, and one that exists is used only when
it is this user's and closed to others (core.private). Every file Spark
writes is private too (Hadoop's umask 077; the JVM inherits the process's).
The project's JVM functions (stages.jvm) ride along in spark.jars, checked
against their SHA-256 just before the session starts, and are registered in
every session; KR_JVM_FUNCTIONS=off leaves them out (protect then uses Spark's
built-ins). Any other Spark setting (the executors' size, the event log) comes from
spark-defaults.conf in SPARK_CONF_DIR, Spark's own mechanism; the settings made
here win over that file's (README, "Running on a cluster").
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

from py4j.protocol import Py4JError, Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

from core.private import private_dir, use_private_umask
from stages import jvm

log = logging.getLogger(__name__)

DEFAULTS = {
    "KR_SPARK_MASTER": "local[*]",
    "KR_SPARK_SHUFFLE_PARTITIONS": "8",
    "KR_SPARK_DRIVER_MEMORY": "4g",
}


def _setting(name: str, overrides: dict[str, str]) -> str:
    return overrides.get(name) or os.environ.get(name) or DEFAULTS[name]


def spark_local_dir() -> Path:
    default = Path(tempfile.gettempdir()) / f"kr-reports-spark-{os.getuid()}"
    return Path(os.environ.get("KR_SPARK_LOCAL_DIR") or default)


LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")


def _driver_java_options(scratch: Path) -> list[str]:
    return [
        f"-Dderby.system.home={scratch / 'derby'}",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()}",
        # Wide generated projections (the generator, ingest's rule checks) exceed the
        # JIT's 8 kB method limit and would otherwise run interpreted.
        "-XX:-DontCompileHugeMethods",
    ]


def get_spark(app_name: str = "kr-reports", **overrides: str) -> SparkSession:
    """Return the process's SparkSession, creating it on first use."""
    # Workers must run the same interpreter as the driver (the project venv).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    use_private_umask()  # before the JVM starts: it inherits the umask
    scratch = private_dir(spark_local_dir(), "Spark's scratch folder (KR_SPARK_LOCAL_DIR)")
    builder = (
        SparkSession.builder.appName(app_name)
        .master(_setting("KR_SPARK_MASTER", overrides))
        .config("spark.driver.memory", _setting("KR_SPARK_DRIVER_MEMORY", overrides))
        .config("spark.sql.shuffle.partitions", _setting("KR_SPARK_SHUFFLE_PARTITIONS", overrides))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.local.dir", str(scratch / "local"))
        .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
        .config("spark.driver.extraJavaOptions", " ".join(_driver_java_options(scratch)))
        .config("spark.ui.enabled", os.environ.get("KR_SPARK_UI", "false"))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.adaptive.enabled", "true")
        # Hadoop's file system applies its own umask (default 022) to what Spark writes.
        .config("spark.hadoop.fs.permissions.umask-mode", "077")
    )
    use_jvm_functions = os.environ.get("KR_JVM_FUNCTIONS", "on").lower() not in ("off", "0", "false")
    functions_jar = jvm.functions_jar(scratch) if use_jvm_functions else None
    if functions_jar is not None:
        builder = builder.config("spark.jars", str(functions_jar.path))
        functions_jar.verify()  # the bytes pinned are the bytes the session loads
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("KR_SPARK_LOG_LEVEL", "ERROR"))
    if functions_jar is not None:
        _register_jvm_functions(spark)
    return spark


def _register_jvm_functions(spark: SparkSession) -> None:
    try:
        jvm.register_functions(spark)
    except Exception as error:  # a session made elsewhere, without the jar: built-ins serve
        log.warning("The project's JVM functions are not on this session's class path (%s): "
                    "protect uses Spark's built-in functions.", type(error).__name__)


def error_condition(exc: BaseException) -> str | None:
    """Spark's error condition of a failure (a fixed name such as FAILED_READ_FILE.NO_HINT), from
    Python or along the JVM's causes; never its message, which may quote the data."""
    if isinstance(exc, PySparkException):
        return exc.getCondition()
    java = exc.java_exception if isinstance(exc, Py4JJavaError) else None
    while java is not None:  # the first Spark error condition along the JVM's causes
        try:
            condition = java.getCondition()
        except Py4JError:  # not a SparkThrowable
            condition = None
        if condition:
            return condition
        java = java.getCause()
    return None
