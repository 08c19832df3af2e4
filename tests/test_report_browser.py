"""report.html as a partner sees it: rendered by headless Chromium, not only parsed.

Chromium is Debian's package (`make test` installs it where it can, see
scripts/ensure_chromium.sh); without it these tests are skipped, saying why
(under CI=true that skip is a failure, tests/strict_ci.py).
The page's Content-Security-Policy blocks every load and script, so any
console message from Chromium means the page asked for something it may
not have: the tests require none.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

CHROMIUM = os.environ.get("KR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")

VALUE_BLUE = (0x1F, 0x5F, 0xA8)  # report_page's .val fill: a released value's point
WIDTH, HEIGHT = 1280, 3000


def _render(page: Path, workdir: Path) -> tuple[Image.Image, list[str]]:
    """A screenshot of `page`, and the console messages Chromium logged while loading it."""
    shot = workdir / f"{page.parent.parent.name}.png"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={workdir / 'profile'}", "--enable-logging=stderr", "--v=0",
        f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}", page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return Image.open(shot).convert("RGB"), console


def _blobs_of(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 12) -> int:
    """Separate patches of `colour` on the page (the legend's marker is one of them)."""
    near = (np.abs(np.asarray(image, dtype=int) - colour) <= tolerance).all(axis=2)
    return ndimage.label(near, structure=np.ones((3, 3)))[1]


def test_the_console_check_sees_what_the_policy_blocks(tmp_path):
    # The control: a page that loads an image and runs a script under the same policy.
    page = tmp_path / "control" / "x" / "report.html"
    page.parent.mkdir(parents=True)
    page.write_text(
        "<!doctype html><meta http-equiv=\"Content-Security-Policy\" "
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        "<img src=\"https://example.invalid/x.png\"><script>console.log(1)</script>"
    )
    _, console = _render(page, tmp_path)
    assert len(console) == 2 and all("Content Security Policy" in line for line in console)


def test_every_delivered_report_page_renders_with_its_charts_and_asks_for_nothing(daily_run, tmp_path):
    pages = sorted(daily_run["out"].glob("deliveries/*/*/*/report.html"))
    assert len(pages) == len(daily_run["summary"]["reports"]) > 0
    for page in pages:
        image, console = _render(page, tmp_path)
        assert console == [], (page.parent.parent.name, console)
        assert image.size == (WIDTH, HEIGHT)
        drawn = (np.asarray(image) != 255).any(axis=2).mean()
        assert drawn > 0.02, page.parent.parent.name  # text, tables, panels
        manifest = json.loads((page.parent / "manifest.json").read_text())
        released = manifest["cells_by_status"].get("released", 0)
        points = _blobs_of(image, VALUE_BLUE) - 1  # but the legend's
        assert (points > 0) == (released > 0), (page.parent.parent.name, released, points)
