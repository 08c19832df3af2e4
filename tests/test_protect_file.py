"""`kr-reports protect` on the real files in ../shared/data, and on damaged copies of them.

The leak check here is independent of the project's detectors: it pulls the
direct identifiers out of the input with plain Python and looks for them in
everything the command wrote and logged.
"""

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.keys import KEY_ENV, release_key
from kr_reports.cli import main
from transforms.protect import _hmac_pads

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not available")

IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
REAL_FILES = {
    "zeek_conn": SHARED / "zeek_sample" / "conn.log",
    "zeek_dns": SHARED / "zeek_sample" / "dns.log",
    "zeek_http": SHARED / "zeek_sample" / "http.log",
    "binetflow": SHARED / "netflow_ctu" / "2013-10-21_capture-1.binetflow",
    "combined_log": SHARED / "apache_logs" / "apache_logs",
    "telco_customers": SHARED / "telco_churn" / "Telco-Customer-Churn.csv",
}


def _identifiers(fmt: str, path: Path) -> set[str]:
    """Direct identifiers of the input, found without the project's code."""
    text = path.read_text(errors="replace")
    if fmt == "telco_customers":
        return {line.split(",")[0] for line in text.splitlines()[1:] if line}
    return {ip for ip in IPV4.findall(text) if not ip.endswith(".0")}


def _written_text(out: Path) -> str:
    parts = []
    for path in sorted(out.rglob("*")):
        if path.suffix == ".parquet":
            parts.append(pd.read_parquet(path).to_csv())
        elif path.is_file() and not path.name.startswith((".", "_")):
            parts.append(path.read_text())
    return "\n".join(parts)


def _protect(fmt, path, out, capsys, *extra):
    code = main(["protect", "--format", fmt, "--input", str(path), "--out", str(out),
                 "--quarantine", str(out.parent / f"{out.name}-quarantine"), "--demo", *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("fmt", sorted(REAL_FILES))
def test_real_files_are_protected_counted_and_leak_nothing(fmt, tmp_path, spark, capsys, caplog):
    path = REAL_FILES[fmt]
    out = tmp_path / "out"
    code, printed = _protect(fmt, path, out, capsys, "--release", "r1")
    assert code == 0, printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_in"] == summary["rows_kept"] + summary["rows_quarantined"]
    assert summary["rows_kept"] > 0
    assert sum(summary["quarantined_by_reason"].values()) == summary["rows_quarantined"]
    assert summary["validation"]["success"] is True
    identifiers = _identifiers(fmt, path)
    assert identifiers
    written = _written_text(out)
    logged = printed + caplog.text
    assert [v for v in identifiers if v in written] == []
    assert [v for v in identifiers if v in logged] == []


def test_pseudonyms_do_not_join_across_releases(tmp_path, spark, capsys):
    path = REAL_FILES["zeek_conn"]
    pseudonyms = []
    for release in ("2026-11-01", "2026-11-02"):
        out = tmp_path / release
        assert _protect("zeek_conn", path, out, capsys, "--release", release)[0] == 0
        frame = pd.read_parquet(out / "protected")
        pseudonyms.append(set(frame["subscriber"]))
        # Within one release one client is one pseudonym.
        clients = {line.split("\t")[2] for line in path.read_text().splitlines()
                   if line and not line.startswith("#")}
        assert len(pseudonyms[-1]) <= len(clients)
    assert pseudonyms[0] and not pseudonyms[0] & pseudonyms[1]


def test_a_truncated_file_quarantines_the_cut_line(tmp_path, spark, capsys):
    original = REAL_FILES["binetflow"].read_bytes()
    cut = tmp_path / "cut.binetflow"
    cut.write_bytes(original[: len(original) // 2])  # almost surely mid-line
    out = tmp_path / "out"
    code, printed = _protect("binetflow", cut, out, capsys)
    assert code == 0, printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_quarantined"] >= 1
    assert summary["rows_in"] == summary["rows_kept"] + summary["rows_quarantined"]


def test_garbage_lines_are_quarantined_with_a_reason(tmp_path, spark, capsys):
    lines = REAL_FILES["zeek_dns"].read_text().splitlines(keepends=True)
    header = [x for x in lines if x.startswith("#")]
    body = [x for x in lines if not x.startswith("#")]
    damaged = tmp_path / "dns.log"
    damaged.write_text("".join(header[:-1] + body[:10] + ["this is not a zeek record\n"]
                               + body[10:] + header[-1:]))
    out = tmp_path / "out"
    code, printed = _protect("zeek_dns", damaged, out, capsys)
    assert code == 0, printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_in"] == len(body) + 1
    assert any(r.startswith("malformed") for r in summary["quarantined_by_reason"])


def test_a_file_without_its_header_is_a_clear_error(tmp_path, spark, capsys):
    body = [x for x in REAL_FILES["zeek_conn"].read_text().splitlines(keepends=True)
            if not x.startswith("#")]
    headless = tmp_path / "conn.log"
    headless.write_text("".join(body))
    code, printed = _protect("zeek_conn", headless, tmp_path / "out", capsys)
    assert code == 2
    assert str(headless) in printed and "#fields" in printed


def test_no_key_outside_demo_mode_is_a_clear_error(tmp_path, spark, capsys, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    code = main(["protect", "--format", "zeek_conn", "--input", str(REAL_FILES["zeek_conn"]),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert KEY_ENV in capsys.readouterr().err


KEY_HEX = hashlib.sha256(b"kr-reports leak test").hexdigest()  # 32 bytes without a pattern
PURPOSE, RELEASE = "aggregate_reports", "r9"  # protect's default purpose, and the release below


def _secrets() -> dict[str, bytes]:
    """The master key, the per-release key derived from it (what Spark receives, JVM route),
    and that key's HMAC pads (what Spark receives on its built-in route): any one gives the key."""
    derived = release_key(bytes.fromhex(KEY_HEX), PURPOSE, RELEASE)
    ipad, opad = _hmac_pads(derived)
    return {"master key": bytes.fromhex(KEY_HEX), "derived key": derived,
            "derived key's inner pad": bytes(ipad), "derived key's outer pad": bytes(opad)}


def _renderings(secret: bytes) -> dict[str, str]:
    """How bytes show up as text: hex (either case), hex bytes apart as Spark shows a binary
    value (`[AB CD ...]`), base64, and Python's bytes repr."""
    return {"hex": secret.hex(), "spaced hex": " ".join(f"{b:02x}" for b in secret),
            "base64": base64.b64encode(secret).decode(), "repr": repr(secret)[2:-1]}


def _leaked_secrets(text: str) -> list[str]:
    """Which secret, in which rendering, `text` holds (the names only, never the values)."""
    lowered = text.lower()
    found = []
    for name, secret in _secrets().items():
        for kind, shown in _renderings(secret).items():
            haystack = lowered if kind.endswith("hex") else text
            if shown in haystack:
                found.append(f"{name} ({kind})")
    return found


def test_the_leak_check_finds_each_key_in_each_rendering():
    for name, secret in _secrets().items():
        for kind, shown in _renderings(secret).items():
            assert _leaked_secrets(f"log line: {shown.upper() if 'hex' in kind else shown}\n") == [
                f"{name} ({kind})"], (name, kind)
    assert _leaked_secrets(KEY_HEX[:-2] + "zz") == []


def test_key_and_pseudonyms_never_reach_the_logs(tmp_path, spark, capfd, caplog, monkeypatch):
    # capfd: what Python and native code of this process write to its stdout and stderr
    monkeypatch.setenv(KEY_ENV, KEY_HEX)
    out, quarantine = tmp_path / "out", tmp_path / "q"
    with caplog.at_level("DEBUG"):
        code = main(["protect", "--format", "zeek_http", "--input", str(REAL_FILES["zeek_http"]),
                     "--out", str(out), "--quarantine", str(quarantine), "--release", RELEASE])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    logged = captured.out + captured.err + caplog.text
    pseudonyms = set(pd.read_parquet(out / "protected")["subscriber"])
    assert pseudonyms
    assert _leaked_secrets(logged) == []
    assert _leaked_secrets(_written_text(out) + _written_text(quarantine)) == []
    assert [p for p in pseudonyms if p in logged] == []
    assert [v for v in _identifiers("zeek_http", REAL_FILES["zeek_http"]) if v in logged] == []


def test_nothing_the_spark_jvm_prints_holds_a_key(tmp_path):
    # The session's Spark JVM was started before this test and writes to its own stderr, which
    # no in-process capture (capfd included) sees. So protect runs as an operator runs it, in a
    # process of its own with Spark's logging at INFO, and everything it printed is read.
    out = tmp_path / "out"
    env = {**os.environ, KEY_ENV: KEY_HEX, "KR_SPARK_LOG_LEVEL": "INFO"}
    command = [sys.executable, "-m", "kr_reports.cli", "protect", "--format", "zeek_http",
               "--input", str(REAL_FILES["zeek_http"]), "--out", str(out),
               "--quarantine", str(tmp_path / "q"), "--release", RELEASE]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r" INFO [A-Za-z]+: ", done.stderr), "the JVM's log lines were not captured"
    assert _leaked_secrets(done.stdout + done.stderr) == []
    assert (out / "summary.json").is_file()
