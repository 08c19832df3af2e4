"""The project's JVM functions: compiled once per source, and optional."""

import logging
import zipfile

import pytest

from kr_reports import jvm


def test_the_functions_jar_is_compiled_once_and_then_reused(tmp_path, monkeypatch):
    jar = jvm.functions_jar(tmp_path)
    assert jar is not None and jar.parent == tmp_path / "jvm"
    with zipfile.ZipFile(jar) as archive:
        names = set(archive.namelist())
    assert {f"{c.replace('.', '/')}.class" for c in jvm.FUNCTIONS.values()} <= names

    def no_second_compile(*args):
        raise AssertionError("compiled again")

    monkeypatch.setattr(jvm, "_compile", no_second_compile)
    assert jvm.functions_jar(tmp_path) == jar


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
    with caplog.at_level(logging.WARNING, logger="kr_reports.jvm"):
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
    assert all(jvm.has_function(name) for name in jvm.FUNCTIONS)
