"""The project's JVM functions: compiled once per source, loaded only as compiled, and optional."""

import hashlib
import logging
import os
import stat
import zipfile

import pytest

from core.private import PrivateFolderError
from stages import jvm, spark
from transforms import jvm_functions


def test_the_functions_jar_is_compiled_once_and_then_reused(tmp_path, monkeypatch):
    jar = jvm.functions_jar(tmp_path)
    assert jar is not None and jar.path.parent.parent == tmp_path / "jvm"
    with zipfile.ZipFile(jar.path) as archive:
        names = set(archive.namelist())
    assert {f"{c.replace('.', '/')}.class" for c in jvm.FUNCTIONS.values()} <= names

    def no_second_compile(*args):
        raise AssertionError("compiled again")

    monkeypatch.setattr(jvm, "_compile", no_second_compile)
    monkeypatch.setattr(jvm, "_loaded", {})  # as a new process: from the cache, not memory
    again = jvm.functions_jar(tmp_path)
    assert again.sha256 == jar.sha256 and again.path.read_bytes() == jar.path.read_bytes()


def test_a_changed_source_gets_a_new_jar(tmp_path, monkeypatch):
    before = jvm._jar_name()
    sources = tmp_path / "jvm-sources"
    sources.mkdir()
    for source in jvm._java_sources():
        target = sources / source.relative_to(jvm.SOURCES)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes() + b"\n// changed\n")
    monkeypatch.setattr(jvm, "SOURCES", sources)
    assert jvm._jar_name() != before


def test_without_a_jdk_there_is_no_jar_and_a_warning_says_why(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(jvm, "_javac", lambda: None)
    with caplog.at_level(logging.WARNING, logger="stages.jvm"):
        assert jvm.functions_jar(tmp_path) is None
    assert "No javac" in caplog.text and "built-in" in caplog.text


def test_a_source_that_does_not_compile_is_a_clear_error(tmp_path, monkeypatch):
    sources = tmp_path / "broken"
    (sources / "krreports").mkdir(parents=True)
    (sources / "krreports" / "Broken.java").write_text("package krreports; class Broken {")
    monkeypatch.setattr(jvm, "SOURCES", sources)
    with pytest.raises(RuntimeError, match=r"javac failed on .*broken"):
        jvm.functions_jar(tmp_path)
    assert not list((tmp_path / "jvm").glob("*.jar"))  # nothing half-built is left to reuse


def test_the_test_session_has_the_functions(spark):
    # CI machines have a JDK: the fast route is the one the tests and the bench run.
    assert all(jvm_functions.has_function(name) for name in jvm.FUNCTIONS)


# ---- the scratch folder and the jar are this user's alone ---------------------------------


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _plant(scratch, payload: bytes = b"PK\x03\x04 a jar with the expected name") -> None:
    """What another local user can do: the jar's name and its SHA-256 are public knowledge."""
    (scratch / "jvm").mkdir(parents=True, exist_ok=True)
    scratch.chmod(0o700)
    (scratch / "jvm").chmod(0o700)
    jar = scratch / "jvm" / jvm._jar_name()
    jar.write_bytes(payload)
    jar.with_name(jar.name + ".sha256").write_text(hashlib.sha256(payload).hexdigest())


@pytest.mark.parametrize("shared", ["scratch", "jvm"])
def test_a_jar_planted_in_a_world_writable_folder_is_never_loaded(tmp_path, shared, monkeypatch):
    scratch = tmp_path / "kr-reports-spark"
    _plant(scratch)
    (scratch if shared == "scratch" else scratch / "jvm").chmod(0o777)
    monkeypatch.setattr(jvm, "_compile", lambda *a: pytest.fail("nothing is built in a shared folder"))
    refusal = r"\(mode 0700\); it is owned by uid \d+ with mode 0777$"
    with pytest.raises(PrivateFolderError, match=refusal) as refused:
        jvm.functions_jar(scratch)
    assert str(scratch if shared == "scratch" else scratch / "jvm") in str(refused.value)
    monkeypatch.setenv("KR_SPARK_LOCAL_DIR", str(scratch))  # the session refuses it too
    with pytest.raises(PrivateFolderError, match=r"must be a folder .* owned by uid"):
        spark.get_spark("kr-reports-tests")


def test_another_users_scratch_folder_is_refused(tmp_path, monkeypatch):
    scratch = tmp_path / "kr-reports-spark"
    _plant(scratch)
    owner = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)  # the folder is now someone else's
    refusal = rf"owned by uid {owner + 1} .*; it is owned by uid {owner} "
    with pytest.raises(PrivateFolderError, match=refusal):
        jvm.functions_jar(scratch)


def test_a_link_in_place_of_the_scratch_folder_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "scratch").symlink_to(target)
    with pytest.raises(PrivateFolderError, match="it is not a plain folder"):
        jvm.functions_jar(tmp_path / "scratch")


def test_a_fresh_scratch_folder_is_private_and_per_user(tmp_path, monkeypatch):
    monkeypatch.delenv("KR_SPARK_LOCAL_DIR", raising=False)
    assert spark.spark_local_dir().name == f"kr-reports-spark-{os.getuid()}"
    scratch = tmp_path / "fresh" / "scratch"
    previous = os.umask(0o022)  # an operator's usual umask
    try:
        jar = jvm.functions_jar(scratch)
    finally:
        os.umask(previous)
    assert _mode(scratch) == 0o700 and _mode(scratch / "jvm") == 0o700
    assert _mode(jar.path.parent) == 0o700 and _mode(jar.path) == 0o600


def test_a_cached_jar_changed_after_compiling_is_not_loaded(tmp_path, monkeypatch, caplog):
    compiled = jvm.functions_jar(tmp_path)
    cached = tmp_path / "jvm" / jvm._jar_name()
    assert cached.read_bytes() == compiled.path.read_bytes()
    cached.write_bytes(b"PK\x03\x04 changed by someone with write access")
    monkeypatch.setattr(jvm, "_loaded", {})  # a later process
    with caplog.at_level(logging.WARNING, logger="stages.jvm"):
        again = jvm.functions_jar(tmp_path)
    assert "not loaded" in caplog.text and "compiled again" in caplog.text
    assert again.path.read_bytes() == compiled.path.read_bytes() == cached.read_bytes()
    assert again.path != compiled.path and again.sha256 == compiled.sha256


def test_a_jar_changed_after_its_check_is_not_handed_to_a_session(tmp_path, monkeypatch):
    jar = jvm.functions_jar(tmp_path)
    jar.path.chmod(0o600)
    jar.path.write_bytes(b"PK\x03\x04 swapped between check and load")
    monkeypatch.setenv("KR_SPARK_LOCAL_DIR", str(tmp_path))
    monkeypatch.setattr(jvm, "functions_jar", lambda scratch: jar)
    with pytest.raises(jvm.JarMismatch, match="not loaded"):
        spark.get_spark("kr-reports-tests")


def test_copies_left_by_ended_processes_are_removed_and_live_ones_kept(tmp_path, monkeypatch):
    jvm.functions_jar(tmp_path)
    folder = tmp_path / "jvm"
    ended, live = folder / ".load-4194305-x1", folder / f".load-{os.getppid()}-x2"  # past pid_max
    for load in (ended, live):
        load.mkdir(mode=0o700)
        (load / jvm._jar_name()).write_bytes(b"PK")
    monkeypatch.setattr(jvm, "_loaded", {})  # a later process
    jvm.functions_jar(tmp_path)
    assert not ended.exists() and live.exists()
