"""`kr-reports kanon` end to end on ARX's Adult table and hierarchies, good and bad input."""

import json
import shutil

import pandas as pd
import pytest
from conftest import SHARED_DATA

from kr_reports.cli import main

ADULT = SHARED_DATA / "adult"
QIS = "age,sex,race,marital-status,education,native-country"


def _run(args, capsys) -> tuple[int, str, str]:
    code = main(["kanon", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _read_output(out) -> pd.DataFrame:
    return pd.concat(pd.read_csv(p, sep=";", dtype=str) for p in (out / "anonymized").glob("*.csv"))


def test_adult_k5_with_suppression_is_verified_and_reported(tmp_path, capsys):
    out = tmp_path / "k5"
    code, printed, _ = _run(["--input", str(ADULT / "adult.csv"), "--qi", QIS, "--hierarchies", str(ADULT),
                             "--k", "5", "--suppression-limit", "0.04", "--out", str(out),
                             "--quarantine", str(tmp_path / "q")], capsys)
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report == json.loads(printed)
    assert report["rows_in"] == report["rows_used"] == 30162 and report["rows_quarantined"] == 0
    assert set(report["transformation"]) == set(QIS.split(","))
    assert report["suppressed_records"] <= 0.04 * 30162
    assert report["verification"]["k"] >= 5
    assert {"loss", "entropy", "discernibility", "aecs", "ncp"} <= set(report["information_loss"])
    assert report["risk"]["prosecutor"]["highest"] <= 1 / 5
    table = _read_output(out)
    assert len(table) == 30162
    released = table[table["age"] != "*"]
    assert released.groupby(QIS.split(",")).size().min() >= 5  # counted here with plain pandas
    text = (out / "report.json").read_text()
    for value in ("Never-married", "United-States", "Bachelors"):
        assert value not in text  # numbers and column names only


def test_l_diversity_on_salary_class(tmp_path, capsys):
    out = tmp_path / "l2"
    code, _, _ = _run(["--input", str(ADULT / "adult.csv"), "--qi", QIS, "--hierarchies", str(ADULT),
                       "--k", "10", "--l", "2", "--sensitive", "salary-class", "--suppression-limit", "0.04",
                       "--metric", "discernibility", "--out", str(out)], capsys)
    assert code == 0
    verification = json.loads((out / "report.json").read_text())["verification"]
    assert verification["k"] >= 10 and verification["l_distinct"] >= 2


def test_values_outside_their_hierarchy_are_quarantined_with_a_reason(tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(ADULT, data)
    lines = (ADULT / "adult.csv").read_text().splitlines()
    lines[1] = lines[1].replace("Male;39;", "Male;999;", 1)
    lines[2] = lines[2].replace("White", "Martian", 1)
    (data / "adult.csv").write_text("\n".join(lines) + "\n")
    out, quarantine = tmp_path / "out", tmp_path / "q"
    code, _, _ = _run(["--input", str(data / "adult.csv"), "--qi", QIS, "--hierarchies", str(data),
                       "--k", "5", "--suppression-limit", "0.04", "--out", str(out),
                       "--quarantine", str(quarantine)], capsys)
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["rows_quarantined"] == 2
    assert report["quarantined_by_reason"] == {"age: value not in its hierarchy": 1,
                                               "race: value not in its hierarchy": 1}
    assert report["rows_in"] == report["rows_used"] + report["rows_quarantined"]
    assert len(_read_output(out)) == report["rows_used"]
    assert len(pd.concat(pd.read_csv(p, sep=";") for p in quarantine.glob("*.csv"))) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--qi", "age,shoe-size"], "no column 'shoe-size'"),
        (["--qi", "age", "--l", "2"], "need --sensitive"),
        (["--qi", "age,salary-class", "--hierarchies", "/nonexistent"], "expected one file"),
        (["--qi", "age", "--k", "40000"], "no generalization of age satisfies"),
    ],
)
def test_bad_requests_stop_with_one_clear_line(tmp_path, capsys, args, message):
    base = {"--input": str(ADULT / "adult.csv"), "--hierarchies": str(ADULT), "--k": "5",
            "--out": str(tmp_path / "out")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    code, _, err = _run([x for pair in base.items() for x in pair], capsys)
    assert code == 2 and message in err
    assert not (tmp_path / "out").exists()


def test_mondrian_along_the_hierarchies_is_verified(tmp_path, capsys):
    out = tmp_path / "mondrian"
    code, _, _ = _run(["--input", str(ADULT / "adult.csv"), "--qi", QIS, "--hierarchies", str(ADULT),
                       "--k", "10", "--algorithm", "mondrian", "--out", str(out)], capsys)
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["algorithm"] == "mondrian" and report["verification"]["k"] >= 10
    assert report["smallest_class"] >= 10 and 0 < report["information_loss"]["ncp"] < 1
    assert len(_read_output(out)) == 30162


def test_a_mondrian_refusal_is_one_line(tmp_path, capsys):
    out = tmp_path / "mondrian"
    code, _, err = _run(["--input", str(ADULT / "adult.csv"), "--qi", "age", "--hierarchies", str(ADULT),
                         "--k", "40000", "--algorithm", "mondrian", "--out", str(out)], capsys)
    assert code == 2
    (line,) = err.splitlines()  # no traceback
    assert line.startswith("kr-reports kanon: error: ") and "fewer than k = 40000" in line
    assert not out.exists()
