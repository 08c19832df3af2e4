"""The project's JVM functions: HMAC-SHA256 and IPv4 networks, compiled from kr_reports/jvm.

Spark's built-in functions can do both (transforms.protect keeps that route),
but at about twice the cost of a JVM function that parses once and keeps the
key's digest state (bench/bench_pipeline.py --protect-pieces measures both).
The jar is compiled with the JDK's javac on first use and handed to Spark
with spark.jars, so executors of a cluster get it too. Without a javac, the
session runs without the functions and protect falls back to the built-in
route, with a warning.

The jar runs beside the pseudonymization key, so only bytes this user compiled
are loaded. It is built in a private temporary folder and cached in the
private jvm/ folder of Spark's scratch (core.private) under a name that
hashes the sources and the Spark version, beside the SHA-256 of its bytes
recorded when it was built. A cached jar is read once, checked against that
SHA-256 (a mismatch is never loaded: it is compiled again), and the very bytes
checked are written to a fresh private file: that file is what Spark loads,
and stages.spark checks it again just before the session starts.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
import zipfile
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession
from pyspark.sql.types import StringType

from core.errors import KrReportsError
from core.private import private_dir
from transforms.jvm_functions import FUNCTIONS

log = logging.getLogger(__name__)

SOURCES = Path(__file__).with_name("jvm")


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


def _compile(javac: str, jar: Path) -> bytes:
    """javac the sources against PySpark's jars in a private temporary folder; the jar's bytes.

    The zip's entries are sorted and dated 1980-01-01, so one javac makes the
    same bytes every time and two processes compiling at once cache one jar.
    """
    spark_jars = Path(pyspark.__file__).parent / "jars"
    with tempfile.TemporaryDirectory(prefix=".build-", dir=jar.parent) as build:  # 0700
        classes = Path(build) / "classes"
        command = [javac, "--release", "17", "-nowarn", "-cp", f"{spark_jars}/*", "-d", str(classes)]
        result = subprocess.run(
            command + [str(s) for s in _java_sources()], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"javac failed on {SOURCES}:\n{result.stderr.strip()}")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for class_file in sorted(classes.rglob("*.class")):
                entry = zipfile.ZipInfo(class_file.relative_to(classes).as_posix(), _ZIP_EPOCH)
                entry.external_attr = 0o644 << 16
                archive.writestr(entry, class_file.read_bytes(), zipfile.ZIP_DEFLATED)
        return buffer.getvalue()


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _pin_file(jar: Path) -> Path:
    return jar.with_name(jar.name + ".sha256")


def _cache(jar: Path, payload: bytes) -> None:
    """Record the jar's SHA-256, then the jar, each written whole and renamed into place."""
    for target, content in ((_pin_file(jar), _sha256(payload).encode()), (jar, payload)):
        staged = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
        _write_new(staged, content)
        os.replace(staged, target)


def _write_new(path: Path, payload: bytes) -> None:
    """A new owner-only file: never through a link, never over an existing file."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(payload)


def _pinned_bytes(jar: Path) -> bytes | None:
    """The cached jar's bytes when they have the SHA-256 recorded at compile time, else None."""
    if not jar.is_file():
        return None
    payload, pin = jar.read_bytes(), _pin_file(jar)
    if pin.is_file() and pin.read_text().strip() == _sha256(payload):
        return payload
    log.warning("The cached JVM functions jar in %s does not have the SHA-256 recorded when it "
                "was compiled: it is not loaded, and is compiled again.", jar.parent)
    return None


@dataclass(frozen=True)
class FunctionsJar:
    """The private file Spark loads, and the SHA-256 its bytes must have."""

    path: Path
    sha256: str

    def verify(self) -> None:
        """Raises JarMismatch when the file's bytes are no longer the ones pinned."""
        if _sha256(self.path.read_bytes()) != self.sha256:
            raise JarMismatch(f"{self.path}: the JVM functions jar changed after it was checked; "
                              "it is not loaded")


class JarMismatch(KrReportsError, RuntimeError):
    """The jar about to be loaded is not the one compiled."""


_loaded: dict[Path, FunctionsJar] = {}


def _private_copy(payload: bytes, folder: Path, name: str) -> FunctionsJar:
    """The checked bytes in a fresh file of a fresh 0700 folder, removed when the process ends."""
    _remove_copies_of_ended_processes(folder)
    load = Path(tempfile.mkdtemp(prefix=f"{_LOAD_PREFIX}{os.getpid()}-", dir=folder))
    atexit.register(shutil.rmtree, load, ignore_errors=True)
    _write_new(load / name, payload)
    return FunctionsJar(load / name, _sha256(payload))


_LOAD_PREFIX = ".load-"


def _remove_copies_of_ended_processes(folder: Path) -> None:
    """Copies a killed process could not remove; a live process's copy may still be read."""
    for load in folder.glob(f"{_LOAD_PREFIX}*-*"):
        pid = load.name.removeprefix(_LOAD_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(load, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running all the same
        pass
    return True


def functions_jar(scratch: Path) -> FunctionsJar | None:
    """A private, pinned copy of the project's JVM functions jar, compiled if needed.

    None without a javac. Raises core.private.PrivateFolderError when
    `scratch` or its jvm/ folder is not private to this user: nothing in it is used.
    """
    private_dir(scratch, "Spark's scratch folder")
    cached = private_dir(scratch / "jvm", "the JVM functions' folder") / _jar_name()
    previous = _loaded.get(cached)
    if previous is not None and previous.path.is_file():
        with suppress(JarMismatch):
            previous.verify()
            return previous
    payload = _pinned_bytes(cached)
    if payload is None:
        javac = _javac()
        if javac is None:
            log.warning(
                "No javac (a JDK) found: protect uses Spark's built-in functions for HMAC and "
                "IPv4, about twice as slow. Install a JDK 17+ or set JAVA_HOME to one."
            )
            return None
        payload = _compile(javac, cached)
        _cache(cached, payload)
    _loaded[cached] = _private_copy(payload, cached.parent, cached.name)
    return _loaded[cached]


def register_functions(spark: SparkSession) -> None:
    """Register the JVM functions in `spark`; raises when its class path lacks the jar."""
    for name, class_name in FUNCTIONS.items():
        spark.udf.registerJavaFunction(name, class_name, StringType())
