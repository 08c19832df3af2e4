"""Skips fail under CI=true and stay skips elsewhere (tests/strict_ci.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SAMPLE = '''
import pytest

absent = pytest.mark.skipif(True, reason="../shared/data is not available")

def test_runs():
    assert True

@absent
def test_marked_skip():
    pass

def test_skip_in_body():
    pytest.skip("no chromium")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
'''


def _run_sample(tmp_path: Path, ci: str | None) -> str:
    (tmp_path / "conftest.py").write_text(
        "from strict_ci import pytest_make_collect_report, pytest_runtest_makereport  # noqa\n"
    )
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(TESTS)
    if ci is not None:
        env["CI"] = ci
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    return done.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_every_skip_fails_with_its_reason(tmp_path, ci):
    out = _run_sample(tmp_path, ci)
    assert "1 passed" in out and "1 xfailed" in out, out
    assert "skipped" not in out.splitlines()[-1], out
    assert "skipped under CI=true" in out and "../shared/data is not available" in out
    assert "no chromium" in out
    # a skip from a skipif mark fails at setup (an error), one from the body fails the call
    assert "1 failed" in out and "1 error" in out, out


@pytest.mark.parametrize("ci", [None, "false", ""])
def test_elsewhere_skips_stay_skips(tmp_path, ci):
    out = _run_sample(tmp_path, ci)
    assert "1 passed, 2 skipped, 1 xfailed" in out, out


# ---- scripts/ensure_chromium.sh (make test runs it before the tests) -------------------------

SCRIPT = TESTS.parent / "scripts" / "ensure_chromium.sh"
BASH = "/bin/bash"


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)


def _ensure_chromium(tmp_path: Path, uid: int, apt: str | None, ci: str | None = None):
    """The script on a PATH of fakes: `id -u` says `uid`; `apt-get` runs `apt` (absent if None;
    `{bin}` is the fakes' folder)."""
    fakes = tmp_path / "bin"
    fakes.mkdir()
    _tool(fakes, "id", f"echo {uid}")
    if apt is not None:
        _tool(fakes, "apt-get", apt.format(bin=fakes))
    env = {"PATH": str(fakes), "HOME": str(tmp_path)}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([BASH, str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_root_with_apt_that_cannot_install_chromium_fails(tmp_path):
    done = _ensure_chromium(tmp_path, uid=0, apt="exit 100")
    assert done.returncode == 1
    assert "ERROR: chromium could not be installed" in done.stderr


def test_root_with_apt_that_claims_success_without_chromium_fails(tmp_path):
    done = _ensure_chromium(tmp_path, uid=0, apt="exit 0")
    assert done.returncode == 1


def test_root_with_apt_installs_chromium(tmp_path):
    installs = '[ "$1" = install ] && echo "#!/bin/bash" > {bin}/chromium && /bin/chmod +x {bin}/chromium'
    done = _ensure_chromium(tmp_path, uid=0, apt=installs)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "bin" / "chromium").is_file()


def test_ci_without_a_way_to_install_chromium_fails(tmp_path):
    done = _ensure_chromium(tmp_path, uid=1000, apt=None, ci="true")
    assert done.returncode == 1
    assert "CI=true" in done.stderr and "KR_CHROMIUM" in done.stderr


def test_a_developer_machine_without_chromium_gets_a_note(tmp_path):
    done = _ensure_chromium(tmp_path, uid=1000, apt=None)
    assert done.returncode == 0
    assert done.stderr.startswith("NOTE: no chromium")
