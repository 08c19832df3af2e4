"""One base for the project's own errors, caught once by the CLI (core.errors)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from core.config import ConfigError
from core.disclosure import DisclosureError
from core.errors import InternalAlarm, KrReportsError
from core.kanon.models import KAnonymityError
from core.store import StoreError
from kr_reports import cli
from kr_reports.cli import files
from stages.scan import ScanError

PACKAGES = ("core", "transforms", "expectations", "synthetic", "stages", "flows", "kr_reports")


def _project_exceptions() -> list[type[BaseException]]:
    found = {}
    for name in PACKAGES:
        package = importlib.import_module(name)
        modules = [package, *(importlib.import_module(m.name)
                              for m in pkgutil.walk_packages(package.__path__, f"{name}."))]
        for module in modules:
            for _, value in inspect.getmembers(module, inspect.isclass):
                if issubclass(value, BaseException) and value.__module__.split(".")[0] in PACKAGES:
                    found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def test_every_error_of_the_project_has_the_one_base_and_keeps_its_builtin_one():
    errors = _project_exceptions()
    assert len(errors) > 30
    assert [e.__name__ for e in errors if not issubclass(e, KrReportsError)] == []
    assert issubclass(ConfigError, ValueError) and issubclass(KAnonymityError, ValueError)


def test_there_is_one_k_anonymity_error():
    named = [e for e in _project_exceptions() if e.__name__ == "KAnonymityError"]
    assert named == [KAnonymityError]


def _main_raising(error: Exception, monkeypatch, capsys) -> tuple[int, str]:
    def handler(args):
        raise error

    monkeypatch.setattr(files, "_cmd_scan", handler)  # build_parser binds it when main runs
    code = cli.main(["scan", "anything"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("error", [
    ConfigError("config/pipeline.yaml: privacy_budget.epsilon: expected a positive number"),
    KAnonymityError("the table has 12 units, fewer than k = 40"),
    ScanError("in.csv: not found"),
])
def test_an_error_for_the_user_to_fix_is_one_line_and_status_2(error, monkeypatch, capsys):
    code, err = _main_raising(error, monkeypatch, capsys)
    assert code == 2
    assert err == f"kr-reports scan: error: {error}\n"


@pytest.mark.parametrize("error", [
    DisclosureError("manifest.json would carry 1 field(s) that are neither public nor private"),
    StoreError("releases/r/2026-11-01/1: release 1 of 'r' for 2026-11-01 is already stored"),
])
def test_an_internal_alarm_keeps_its_traceback(error, monkeypatch, capsys):
    assert isinstance(error, InternalAlarm)
    with pytest.raises(type(error)):
        _main_raising(error, monkeypatch, capsys)


def test_a_foreign_error_keeps_its_traceback(monkeypatch, capsys):
    with pytest.raises(ZeroDivisionError):
        _main_raising(ZeroDivisionError("division by zero"), monkeypatch, capsys)
