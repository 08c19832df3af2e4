"""Checks of what a delivery carries, for tests: strict JSON, and every number a report page shows.

A page may show a number only when it is read from the delivery's data file
(a value, interval, noise sd, or a count of its cells), from its manifest
(public configuration and release record, itself checked against
core.disclosure), or is structural (95 in "95% interval"). Chart tick
labels are round steps within the range of the data they scale.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from html.parser import HTMLParser

import pandas as pd

from core import report_page
from core.cells import PUBLISHED, STATUS
from core.disclosure import leaf_paths
from core.noise_plan import TREE_BRANCHINGS

# "95% interval", "lies in it 95 times in 100", and the quantile tree's public shape ("1/32")
STRUCTURAL = {"95", "100", *(str(b) for b in TREE_BRANCHINGS)}
NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[-+]?\d+)?[kMGT]?")
SUFFIXES = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def strict_json(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity (which Python's json accepts by default)."""
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


class PageText(HTMLParser):
    """A page's text nodes outside <style>; each chart's y tick labels apart, by output."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.ticks: dict[str, list[str]] = {}
        self._style = False
        self._output: str | None = None
        self._tick = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "style":
            self._style = True
        if tag == "svg" and " by " in (attributes.get("aria-label") or ""):
            self._output = attributes["aria-label"].rsplit(" by ", 1)[0]
            self.ticks.setdefault(self._output, [])
        self._tick = tag == "text" and self._output is not None and attributes.get("text-anchor") == "end"

    def handle_endtag(self, tag):
        if tag == "style":
            self._style = False
        if tag == "svg":
            self._output = None
        self._tick = False

    def handle_data(self, data):
        if self._style:
            return
        if self._tick:
            self.ticks[self._output].append(data)
        else:
            self.texts.append(data)


def parse_shown(token: str) -> float:
    """The value a shown number stands for: '12.3k' is 12,300, '1,234' is 1234."""
    scale = SUFFIXES.get(token[-1], 1.0)
    return float(token.rstrip("kMGT").replace(",", "")) * scale


def _shown(value) -> set[str]:
    """Every way the page writes a number."""
    v = float(value)
    forms = {report_page._fmt(v), f"{v:g}"}
    if v.is_integer():
        forms |= {f"{int(v):,}", str(int(v))}
    return forms


def _outputs(data: pd.DataFrame) -> list[str]:
    return [c.removesuffix("_noise_sd") for c in data.columns if c.endswith("_noise_sd")]


def _published(data: pd.DataFrame) -> pd.DataFrame:
    return data[data[STATUS].isin(PUBLISHED)]


def _labels(data: pd.DataFrame, keys: list[str]) -> set[str]:
    return {report_page._label_key(v) for key in keys for v in data[key]} | {report_page.OTHER}


def _floats(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype(float)


def _finite(values: pd.Series) -> set[float]:
    return {float(v) for v in _floats(values) if math.isfinite(v)}


def _data_numbers(data: pd.DataFrame, keys: list[str]) -> set[float]:
    """Numbers read from the data file: every value, interval, sd, and counts of its cells."""
    numbers: set[float] = {float(len(data)), *map(float, data[STATUS].value_counts())}
    for column in data.columns:
        if column not in (*keys, STATUS):
            numbers |= _finite(data[column])
    published = _published(data)
    for output in _outputs(data):
        half = (_floats(data[f"{output}_ci95_high"]) - _floats(data[f"{output}_ci95_low"])) / 2
        numbers |= _finite(half)
        sd = _floats(published[f"{output}_noise_sd"])
        numbers |= _finite(pd.Series([sd.median(), half[published.index].median()]))  # "typical"
    for size in range(1, len(keys) + 1):  # "The n values ... are not drawn": distinct labels past a cap
        for subset in itertools.combinations(keys, size):
            distinct = len(data[list(subset)].astype("string").fillna(report_page.OTHER).drop_duplicates())
            numbers |= {float(distinct - cap) for cap in (report_page.MAX_POINTS, report_page.MAX_PANELS)
                        if distinct > cap}
    return numbers


def _manifest_numbers_and_names(manifest: dict) -> tuple[set[float], set[str]]:
    numbers, names = set(), set()
    for _, value in leaf_paths(manifest):
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            numbers.add(float(value))
        elif isinstance(value, str):
            names.add(value)
    return numbers, names


def _blanked(text: str, names: list[str]) -> str:
    for name in names:
        text = text.replace(name, " ")
    return text


def allowed_page_numbers(data: pd.DataFrame, manifest: dict, keys: list[str]) -> tuple[set[str], list[str]]:
    """(number texts the page may show, names to read as words), from the delivery alone."""
    numbers, names = _manifest_numbers_and_names(manifest)
    numbers |= _data_numbers(data, keys)
    labels = _labels(data, keys)
    numeric_labels = {label for label in labels if NUMBER.fullmatch(label)}
    names |= labels - numeric_labels
    names |= {label[: report_page.LABEL_CHARS - 1] + "\u2026"
              for label in labels if len(label) > report_page.LABEL_CHARS}
    names |= {str(c) for c in data.columns}
    allowed = STRUCTURAL | numeric_labels | {form for n in numbers for form in _shown(n)}
    words = sorted((n for n in names if len(n) > 1 and not NUMBER.fullmatch(n)), key=len, reverse=True)
    return allowed, words


def _tick_violations(output: str, labels: list[str], data: pd.DataFrame) -> list[str]:
    """Tick labels must be whole multiples of one round step (1, 2 or 5 x 10^n), within a step of
    the range of the output's published values and intervals (and zero)."""
    ticks = sorted({parse_shown(t) for t in labels})
    if output not in data.columns or len(ticks) < 2:
        return [f"chart of {output!r}: tick labels {labels[:8]} scale no published output"]
    published = _published(data)
    values = [v for c in (output, f"{output}_ci95_low", f"{output}_ci95_high") for v in _finite(published[c])]
    low, high = min([0.0, *values]), max([0.0, *values]) if values else 1.0  # the page's empty scale
    step = ticks[1] - ticks[0]
    tolerance = 0.005 * max(abs(t) for t in ticks)
    mantissa = step / 10 ** math.floor(math.log10(step))
    round_step = any(math.isclose(mantissa, m, rel_tol=0.01) for m in (1, 2, 5, 10))
    evenly = all(abs(b - a - step) <= tolerance for a, b in itertools.pairwise(ticks))
    on_grid = all(abs(t / step - round(t / step)) * step <= tolerance for t in ticks)
    within = ticks[0] >= low - step - tolerance and ticks[-1] <= high + step + tolerance
    if round_step and evenly and on_grid and within:
        return []
    return [f"chart of {output!r}: tick labels {sorted(set(labels))} are not round steps over its data"]


def page_violations(html: str, data: pd.DataFrame, manifest: dict, keys: list[str]) -> list[str]:
    """Every number a report page shows that neither its data file nor its manifest accounts for."""
    page = PageText()
    page.feed(html)
    page.close()
    allowed, words = allowed_page_numbers(data, manifest, keys)
    found = []
    for text in page.texts:
        for token in NUMBER.findall(_blanked(text, words)):
            if token not in allowed:
                found.append(f"{token!r} in {' '.join(text.split())[:100]!r}")
    for output, labels in page.ticks.items():
        found += _tick_violations(output, labels, data)
    return found
