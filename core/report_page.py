"""The partner's human-readable report: one self-contained HTML page.

Pure: a release DataFrame and its metadata in, an HTML string out. Nothing is
fetched from anywhere (no scripts, fonts or stylesheets; a Content Security
Policy forbids them), the charts are inline SVG drawn here, and every piece
of text passes through `html.escape`.

Each metric output gets a small-multiples chart: the group key with most
values runs along the x axis, with one panel per value of the other keys (if
any), all panels on one y scale. Every released value is a dot with its 95%
interval as a vertical line; withheld cells are grey rings on the floor, and
cells with too few records to place a quantile are dashed red rings there
("insufficient data", flagged in the release's `<metric>_insufficient`). A
report of ~400 cells is 17 panels of 24 points; beyond MAX_PANELS panels or
MAX_POINTS points per panel the largest are drawn and the page says how many
are left out (every cell is in data.csv). Hovering a point shows its exact
value and interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import pandas as pd

from core.cells import (
    MERGED,
    PUBLISHED,
    RELEASED,
    REMAINDER,
    STATUS,
    SUPPRESSED,
    ci95_high_column,
    ci95_low_column,
    noise_sd_column,
)
from core.config import ReportSpec
from core.kinds import MetricKind
from core.release_record import ReleaseRecord

MAX_PANELS = 36
MAX_POINTS = 48
WIDTH = 960
COLUMNS = 4
LABEL_CHARS = 10  # x labels longer than this are cut (the tooltip has the whole value)
CHAR_WIDTH = 6.2  # px per character of the 11px label font, a little generous
OTHER = "other"  # label of the rolled-up key in a remainder row
CSP = "default-src 'none'; style-src 'unsafe-inline'"

STATUS_MEANING = {
    RELEASED: "published as noised",
    SUPPRESSED: "withheld: fewer than k subscribers (noisy count)",
    MERGED: "withheld and added into its remainder row",
    REMAINDER: "the sum of the merged cells next to it",
}
LEGEND = (
    '<p class="legend"><svg width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">'
    '<line class="ci" x1="7" y1="1" x2="7" y2="13"/><circle class="val" cx="7" cy="7" r="3"/></svg> '
    "a published value and its 95% interval; "
    '<svg width="14" height="14" viewBox="0 0 14 14" aria-hidden="true"><g class="rem">'
    '<line class="ci" x1="7" y1="1" x2="7" y2="13"/><circle class="val" cx="7" cy="7" r="3"/></g></svg> '
    f"a remainder (sparse cells merged, at '{OTHER}'); "
    '<svg width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">'
    '<circle class="held" cx="7" cy="7" r="3"/></svg> '
    "a withheld cell (on the floor of its panel). Hover over a point for its exact value.</p>"
)
INSUFFICIENT = "insufficient data"
INSUFFICIENT_LEGEND = (
    '<p class="legend"><svg width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">'
    '<g class="insufficient"><circle class="held" cx="7" cy="7" r="3"/></g></svg> '
    f"{INSUFFICIENT}: too few records in the cell to place the quantile, so no value is given.</p>"
)
STYLE = """
body{font:15px/1.45 system-ui,sans-serif;color:#1d2430;margin:2rem auto;max-width:1000px;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ccd}
h3{font-size:1rem;margin:1.4rem 0 .3rem}.meta{color:#556}.note{background:#f4f6fa;padding:.6rem 1rem}
table{border-collapse:collapse}td,th{padding:.2rem .7rem;border-bottom:1px solid #dde;text-align:left}
td.n{text-align:right}figure{margin:0}figcaption{color:#556;font-size:.9rem}
svg{display:block;max-width:100%;height:auto}.legend svg{display:inline;vertical-align:middle}
svg text{font:11px system-ui,sans-serif;fill:#445}
.ci{stroke:#8fb2dc;stroke-width:2}.val{fill:#1f5fa8}.rem .ci{stroke:#e0b27c}.rem .val{fill:#b45f06}
.held{fill:none;stroke:#999}.insufficient .held{stroke:#c0392b;stroke-dasharray:2 1.5}
.axis{stroke:#aab}.grid{stroke:#eef}
"""


@dataclass(frozen=True)
class MetricInfo:
    name: str
    kind: str
    column: str | None
    lower: float | None
    upper: float | None
    bins: tuple[float, ...] | None
    outputs: tuple[str, ...]
    epsilon: float | None  # None under zCDP: a metric's cost is its rho
    rho: float | None
    measure: MetricKind  # the metric's kind: what a value is, its flags and notes


@dataclass(frozen=True)
class PageInfo:
    """What the page says about a release besides its cells."""

    report: str
    partner: str
    purpose: str
    period: str
    release_id: str
    group_keys: tuple[str, ...]
    private_keys: tuple[str, ...]
    accounting: str
    epsilon: float
    delta: float
    max_groups: int
    max_rows: int
    min_subscribers: int | None
    sparse_cells: str
    roll_up: str | None
    metrics: tuple[MetricInfo, ...]


def page_info(spec: ReportSpec, release: ReleaseRecord) -> PageInfo:
    """The page's metadata from a report spec and its stored release record."""
    aggregation, delivery = spec.aggregation, spec.delivery
    metrics = tuple(
        MetricInfo(m.name, m.kind, m.column, m.lower, m.upper, m.bins,
                   release.metric(m.name).outputs, _number(release.metric(m.name).epsilon),
                   _number(release.metric(m.name).rho), m.measure)
        for m in aggregation.metrics
    )
    return PageInfo(
        report=spec.name, partner=delivery.partner, purpose=delivery.purpose, period=release.period,
        release_id=release.release_id, group_keys=aggregation.group_columns,
        private_keys=aggregation.private_keys,
        accounting=aggregation.accounting, epsilon=float(release.epsilon), delta=float(release.delta),
        max_groups=aggregation.contribution.max_groups_per_subscriber,
        max_rows=aggregation.contribution.max_rows_per_group,
        min_subscribers=aggregation.min_subscribers, sparse_cells=aggregation.sparse_cells,
        roll_up=aggregation.roll_up,
        metrics=metrics,
    )


def _number(value) -> float | None:
    """A recorded budget as a float; None when it is not stated (a zCDP metric's epsilon)."""
    return float(value) if _finite(value) else None


def render_report(data: pd.DataFrame, page: PageInfo) -> str:
    """The whole page as one HTML string."""
    layout = choose_layout(data, page)
    body = [
        f"<h1>{escape(page.report)}</h1>",
        f'<p class="meta">Partner {escape(page.partner)} &middot; purpose {escape(page.purpose)} '
        f"&middot; period {escape(page.period)} &middot; release {escape(page.release_id)}</p>",
        _notes(page),
        _status_table(data),
        LEGEND,
        INSUFFICIENT_LEGEND if _has_flags(page) else "",
        *(_metric_section(data, metric, layout) for metric in page.metrics),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{escape(page.report)} &middot; {escape(page.period)}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


# ---- what the numbers mean ---------------------------------------------------------------


def _notes(page: PageInfo) -> str:
    items = [
        f"Every number has random noise added on purpose (differential privacy: epsilon "
        f"{page.epsilon:g}, delta {page.delta:g} for the whole report, {escape(page.accounting)} "
        "accounting). The noise hides whether any one subscriber is in the data at all; it also "
        "means that small numbers are unreliable and that two cells can swap order by chance.",
        "The vertical line through each value is its 95% interval: the value before noise lies in "
        "it 95 times in 100. It covers the noise only, not the limits below.",
        f"Each subscriber counts in at most {page.max_groups} cells and with at most {page.max_rows} "
        "records per cell, and measured values are clamped to fixed bounds before they are added "
        "up, so sums and averages can understate the heaviest users.",
    ]
    if set(page.group_keys) - set(page.private_keys):
        items.append("Empty cells are reported too, as noise around zero; counts below zero show as zero.")
    if page.min_subscribers is not None:
        items.append(_sparse_note(page))
    items += _kind_notes(page)
    if page.private_keys:
        keys = ", ".join(escape(k) for k in page.private_keys)
        items.append(
            f"Values of {keys} come from the data and appear only when enough subscribers share them; "
            "a value that is missing here may still occur in the data."
        )
    listed = "".join(f"<li>{item}</li>" for item in items)
    return f'<section class="note"><h2>How to read this report</h2><ul>{listed}</ul></section>'


def _has_flags(page: PageInfo) -> bool:
    return any(m.measure.flag_columns() for m in page.metrics)


def _kind_notes(page: PageInfo) -> list[str]:
    """Each kind's own note about its metrics (quantiles: where they could not be placed)."""
    kinds = {type(m.measure): None for m in page.metrics}  # in the metrics' order, once each
    flags = {kind: [f for m in page.metrics if type(m.measure) is kind for f in m.measure.flag_columns()]
             for kind in kinds}
    notes = [kind.page_note(flags[kind], page.sparse_cells == "roll_up", INSUFFICIENT) for kind in kinds]
    return [note for note in notes if note is not None]


def _sparse_note(page: PageInfo) -> str:
    k = page.min_subscribers
    if page.sparse_cells == "roll_up":
        parents = " and ".join(key for key in page.group_keys if key != page.roll_up) or "report"
        return (
            f"A cell with fewer than {k} subscribers (by its noisy count) is not shown on its own: "
            f"it is merged with the other sparse {escape(str(page.roll_up))} cells of the same "
            f"{escape(parents)} into one '{OTHER}' point (a remainder, with {escape(str(page.roll_up))} "
            f"left empty in data.csv), so totals still add up. A remainder still under {k} is withheld "
            "too. Withheld cells are grey rings."
        )
    return (
        f"A cell with fewer than {k} subscribers (by its noisy count) is withheld: its values are "
        "left empty in data.csv and shown as grey rings here."
    )


def _status_table(data: pd.DataFrame) -> str:
    counts = data[STATUS].value_counts()
    rows = "".join(
        f"<tr><td>{escape(str(status))}</td><td class=\"n\">{int(n):,}</td>"
        f"<td>{escape(STATUS_MEANING.get(str(status), ''))}</td></tr>"
        for status, n in counts.items()
    )
    return (f"<h2>Cells</h2><table><tr><th>status</th><th>cells</th><th>meaning</th></tr>{rows}"
            f"</table><p>All {len(data):,} rows, with every value, noise sd and interval, are in data.csv "
            "and data.parquet.</p>")


def _metric_section(data: pd.DataFrame, metric: MetricInfo, layout: Layout) -> str:
    what = metric.measure.what()
    bounds = "" if metric.lower is None else f"; clamped to [{_fmt(metric.lower)}, {_fmt(metric.upper)}]"
    budget = f"epsilon {metric.epsilon:g}" if metric.epsilon is not None else f"rho {metric.rho:g}"
    charts = "".join(
        _figure(data, metric, output, index, layout) for index, output in enumerate(metric.outputs)
    )
    return (
        f'<section class="metric" id="metric-{escape(metric.name)}"><h2>{escape(metric.name)}</h2>'
        f"<p>{escape(what)}{escape(bounds)}; {budget}.</p>{charts}</section>"
    )


def _output_title(metric: MetricInfo, output: str, index: int) -> str:
    return metric.measure.output_title(output, index, _fmt)


def _figure(data: pd.DataFrame, metric: MetricInfo, output: str, index: int, layout: Layout) -> str:
    released = data[data[STATUS].isin(PUBLISHED)]
    sd = released[noise_sd_column(output)].median()
    half = ((released[ci95_high_column(output)] - released[ci95_low_column(output)]) / 2).median()
    caption = (f"Typical noise sd {_fmt(sd)}; a typical 95% interval is the value \u00b1 {_fmt(half)}."
               if math.isfinite(sd) else "No value of this output was published.")
    flag = next(iter(metric.measure.flag_columns()), None)
    cells = data[data[STATUS] == RELEASED]  # remainders never have quantiles: not counted
    if flag is not None and (count := int(_insufficient(cells, flag).sum())):
        caption += f" {count:,} cell{'s' if count > 1 else ''} had {INSUFFICIENT} to place it."
    chart = (chart_svg(data, output, layout, flag) if layout.panels
             else "<p>This release has no cells to draw.</p>")
    return (
        f"<figure><h3>{escape(_output_title(metric, output, index))}</h3>"
        f"{chart}"
        f"<figcaption>{escape(layout.description)} {escape(caption)} {escape(layout.omitted)}"
        "</figcaption></figure>"
    )


def _insufficient(rows: pd.DataFrame, flag: str | None) -> pd.Series:
    """Whether each row is flagged as too sparse to place its quantiles (never, for other metrics)."""
    if flag is None or flag not in rows:
        return pd.Series(False, index=rows.index)
    return rows[flag].astype("boolean").fillna(False).astype(bool)


# ---- layout: which key is panels, which is the x axis, what is left out -------------------


@dataclass(frozen=True)
class Layout:
    x_key: str
    panel_keys: tuple[str, ...]  # empty: one panel
    xs: tuple[str, ...]  # x labels drawn, in data order
    panels: tuple[str, ...]  # panel labels drawn, in data order ("" for the one panel)
    description: str
    omitted: str


def choose_layout(data: pd.DataFrame, page: PageInfo) -> Layout:
    """The key with most values along x, one panel per value of the others; capped by the first output."""
    keys = list(page.group_keys)
    x_key = max(reversed(keys), key=lambda k: data[k].nunique(dropna=True))
    panel_keys = tuple(k for k in keys if k != x_key)
    weight = data[page.metrics[0].outputs[0]].abs().fillna(0.0)
    xs, dropped_x = _largest(x_labels(data, x_key), weight, MAX_POINTS)
    panels, dropped_panels = _largest(panel_labels(data, panel_keys), weight, MAX_PANELS)
    description = (f"One panel per {' and '.join(panel_keys)}, {x_key} along the x axis, all on one scale."
                   if panel_keys else f"{x_key} along the x axis.")
    left_out = ((f"{' and '.join(panel_keys)} panels", dropped_panels), (f"{x_key} values", dropped_x))
    omitted = " ".join(
        f"The {n:,} {what} with the smallest totals are not drawn (every cell is in data.csv)."
        for what, n in left_out if n
    )
    return Layout(x_key, panel_keys, xs, panels, description, omitted)


def x_labels(data: pd.DataFrame, x_key: str) -> pd.Series:
    return data[x_key].map(_label_key)


def panel_labels(data: pd.DataFrame, panel_keys: tuple[str, ...]) -> pd.Series:
    """Each row's panel title: the value of the one panel key, or 'key value, key value'."""
    if not panel_keys:
        return pd.Series("", index=data.index)
    if len(panel_keys) == 1:
        return data[panel_keys[0]].map(_label_key)
    named = [key + " " + data[key].map(_label_key) for key in panel_keys]
    return pd.concat(named, axis=1).agg(", ".join, axis=1)


def _largest(labels: pd.Series, weight: pd.Series, limit: int) -> tuple[tuple[str, ...], int]:
    """Up to `limit` labels (the heaviest), in data order; and how many were left out."""
    values = list(dict.fromkeys(labels))
    if len(values) <= limit:
        return tuple(values), 0
    totals = weight.groupby(labels, sort=False).sum()
    kept = set(totals.sort_values(ascending=False, kind="stable").index[:limit])
    return tuple(v for v in values if v in kept), len(values) - limit


def _label_key(value) -> str:
    """A key value as text: a remainder's empty key is 'other', 5.0 is '5'."""
    if value is None or pd.isna(value):  # NaN, or pandas' NA in string columns
        return OTHER
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ---- the chart ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One panel's box in the SVG and the shared y scale."""

    left: float
    top: float
    width: float
    height: float
    low: float
    high: float

    def y(self, value: float) -> float:
        return self.top + self.height * (1 - (value - self.low) / (self.high - self.low))

    def x(self, position: int, count: int) -> float:
        return self.left + self.width * (position + 0.5) / count


def chart_svg(data: pd.DataFrame, output: str, layout: Layout, insufficient: str | None = None) -> str:
    """Small multiples of one output: dots, 95% intervals, withheld cells as rings; `insufficient`
    names the flag column of cells too sparse to place a quantile (dashed rings)."""
    xs, panels = x_labels(data, layout.x_key), panel_labels(data, layout.panel_keys)
    drawn = xs.isin(layout.xs) & panels.isin(layout.panels)
    columns = min(COLUMNS, len(layout.panels))
    panel_width, panel_height = WIDTH / columns, (170 if len(layout.panels) > 1 else 300)
    low, high, ticks = _scale(data.loc[drawn], output)
    parts = []
    for index, panel in enumerate(layout.panels):
        left, top = (index % columns) * panel_width, (index // columns) * panel_height
        frame = Frame(left + 46, top + 22, panel_width - 56, panel_height - 50, low, high)
        in_panel = drawn & (panels == panel)
        rows = data.loc[in_panel].assign(_insufficient=_insufficient(data.loc[in_panel], insufficient))
        parts.append(_panel(rows, xs.loc[in_panel], output, layout, panel, frame, ticks))
    height = math.ceil(len(layout.panels) / columns) * panel_height
    return (
        f'<svg viewBox="0 0 {WIDTH} {height:.0f}" width="{WIDTH}" height="{height:.0f}" role="img" '
        f'aria-label="{escape(output)} by {escape(layout.x_key)}">' + "".join(parts) + "</svg>"
    )


def _panel(rows: pd.DataFrame, xs: pd.Series, output: str, layout: Layout, panel: str, frame: Frame,
           ticks: list[float]) -> str:
    position = {x: i for i, x in enumerate(layout.xs)}
    parts = [_axes(frame, ticks, layout, panel)]
    for (_, row), x_label in zip(rows.iterrows(), xs, strict=True):
        x = frame.x(position[x_label], len(layout.xs))
        where = f"{panel}, " if panel else ""
        parts.append(_point(row, output, x, frame, f"{where}{layout.x_key} {x_label}"))
    return "<g>" + "".join(parts) + "</g>"


def _axes(frame: Frame, ticks: list[float], layout: Layout, panel: str) -> str:
    right, bottom = frame.left + frame.width, frame.top + frame.height
    parts = [_text(frame.left, frame.top - 8, panel)]
    for tick in ticks:
        y = frame.y(tick)
        parts.append(_line("grid", frame.left, y, right, y)
                     + _text(frame.left - 4, y + 4, _fmt(tick), anchor="end"))
    parts.append(_line("axis", frame.left, bottom, right, bottom))
    shorts = [x if len(x) <= LABEL_CHARS else x[: LABEL_CHARS - 1] + "\u2026" for x in layout.xs]
    label_width = max(len(x) for x in shorts) * CHAR_WIDTH + 6
    every = max(1, math.ceil(label_width / (frame.width / len(layout.xs))))  # labels never overlap
    for i in range(0, len(layout.xs), every):
        parts.append(_text(frame.x(i, len(layout.xs)), bottom + 14, shorts[i], anchor="middle"))
    return "".join(parts)


def _line(css: str, x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line class="{css}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>'


def _text(x: float, y: float, text: str, anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(text)}</text>'


def _point(row: pd.Series, output: str, x: float, frame: Frame, where: str) -> str:
    status = str(row[STATUS])
    value, low, high = (row[output], row[ci95_low_column(output)], row[ci95_high_column(output)])
    if status in PUBLISHED and row["_insufficient"]:
        tip = f"{where}: {INSUFFICIENT}, {status}"
        return (f'<g class="insufficient"><title>{escape(tip)}</title><circle class="held" cx="{x:.1f}" '
                f'cy="{frame.top + frame.height - 3:.1f}" r="2.5"/></g>')
    if status not in PUBLISHED or not _finite(value):
        tip = f"{where}: {status}, no value published"
        return (f'<g><title>{escape(tip)}</title><circle class="held" cx="{x:.1f}" '
                f'cy="{frame.top + frame.height - 3:.1f}" r="2.5"/></g>')
    tip = f"{where}: {_fmt(value)} (95% interval {_fmt(low)} to {_fmt(high)}), {status}"
    interval = _line("ci", x, frame.y(low), x, frame.y(high)) if _finite(low) and _finite(high) else ""
    css = ' class="rem"' if status == REMAINDER else ""
    return (f"<g{css}><title>{escape(tip)}</title>{interval}"
            f'<circle class="val" cx="{x:.1f}" cy="{frame.y(value):.1f}" r="2.8"/></g>')


def _scale(rows: pd.DataFrame, output: str) -> tuple[float, float, list[float]]:
    """A y range holding every drawn value and interval (and zero), with round ticks."""
    published = rows[rows[STATUS].isin(PUBLISHED)]
    values = pd.concat([published[c] for c in (output, ci95_low_column(output), ci95_high_column(output))])
    finite = values[values.map(_finite)]
    low = min(0.0, float(finite.min())) if len(finite) else 0.0
    high = max(0.0, float(finite.max())) if len(finite) else 1.0
    return nice_ticks(low, high)


def nice_ticks(low: float, high: float, most: int = 6) -> tuple[float, float, list[float]]:
    """A y range from `low` up to a round tick over `high`, and ticks of the finest round step
    (1, 2 or 5 x 10^n) giving at most `most` intervals; a small dip below zero adds no empty tick."""
    if high <= low:
        high = low + 1.0
    magnitude = 10.0 ** math.floor(math.log10((high - low) / most))
    for step in (m * magnitude for m in (1, 2, 5, 10, 20)):
        first, last = math.ceil(low / step), math.ceil(high / step)
        if last - first <= most:
            break
    ticks = [k * step for k in range(first, last + 1)]
    return min(low, ticks[0]), ticks[-1], ticks


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _fmt(value) -> str:
    """A short number: 0.123 / 1,234 / 12.3k / 4.56M; a dash when missing."""
    if not _finite(value):
        return "\u2013"
    value = float(value)
    for threshold, divisor, suffix in ((1e12, 1e12, "T"), (1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / divisor:.3g}{suffix}"
    if value.is_integer() or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"
