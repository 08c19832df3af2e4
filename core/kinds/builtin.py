"""The metric kinds a report spec may name, one class each.

Sensitivities follow from the contribution bounds: a subscriber touches at most G cells
with at most R rows each (core.noise_plan multiplies by G), every value clamped to its metric's
bounds. Counts and histograms count rows (R per cell, in one bin each); distinct
subscribers count 1; sums, means and variances add fixed-point integers clamped to the
integer bounds; a quantile tree adds every row to one node per level.

Post-processing reads only noisy values, so it is free: counts are clamped at 0, a mean
is mid + S / (2 scale C) from its noisy centred sum S and count C, a variance Q/C - (S/C)^2
over 4 scale^2, both clamped to what their bounds allow; quantiles are placed in each
cell's consistent noisy tree (core.quantile_tree) and made monotone.
"""

from __future__ import annotations

import itertools
import math
from html import escape

import numpy as np
import pandas as pd
from scipy.stats import norm

from core.kinds.base import (
    ROWS,
    UNITS,
    Aggregate,
    BoundingLoss,
    CellOutputs,
    Encoding,
    MetricKind,
    Output,
    RowInput,
    Z,
    bucket_matrix,
    clamped_output,
    count_output,
    fixed_point_bounds,
    register,
    squares_column,
)
from core.mechanisms import CONFIDENCE
from core.quantile_tree import (
    TREE_BRANCHING,
    TREE_HEIGHT,
    TREE_LEAVES,
    NoisyTree,
    quantile_rank_sd,
)


@register
class Count(MetricKind):
    """Rows per cell."""

    name = "count"
    parts = ("value",)
    meaning = "records"
    additive = is_count = zero_when_empty = True
    bounding_loss = BoundingLoss.ROWS
    unit_name = "rows"

    def sensitivity(self, part, max_rows):
        return max_rows, max_rows

    def input_column(self, part):
        return ROWS

    def release(self, plan, parts, merged, placed):
        return {self.metric.name: count_output(parts[self.metric.name, "value"], plan.part("value"), merged)}

    def exact(self, rows, keys, unit, plan):
        return rows.groupby(keys).size().to_frame(self.metric.name)

    def cell_error_sd(self, plan, rows_per_cell):
        return plan.part("value").sd, self.unit_name


@register
class DistinctSubscribers(Count):
    """Distinct subscribers per cell: one bounded row each, so a subscriber changes it by 1."""

    name = "count_distinct_subscribers"
    meaning = "distinct subscribers"
    counts_subscribers = True
    bounding_loss = BoundingLoss.CELLS
    unit_name = "subscribers"

    def sensitivity(self, part, max_rows):
        return 1, 1

    def input_column(self, part):
        return UNITS

    def exact(self, rows, keys, unit, plan):
        return rows.groupby(keys)[unit].nunique().to_frame(self.metric.name)


class FixedPointKind(MetricKind):
    """A kind that adds the column's values as fixed-point integers (not registered itself)."""

    reads_column = bounded = fixed_point = True

    def _grouped(self, rows, keys):
        return self.clamped(rows).groupby([rows[k] for k in keys])


@register
class Sum(FixedPointKind):
    """A fixed-point sum of the clamped values."""

    name = "sum"
    parts = ("value",)
    meaning = "sum of {column}"
    additive = zero_when_empty = True
    bounding_loss = BoundingLoss.VALUES
    row_input = RowInput(Encoding.FIXED_POINT, Aggregate.SUM)

    def sensitivity(self, part, max_rows):
        low, high = fixed_point_bounds(self.metric)
        per_row = max(abs(low), abs(high))
        return max_rows * per_row, max_rows * per_row

    def integer_outputs(self):
        return self.metric.precision <= 0

    def release(self, plan, parts, merged, placed):
        m = self.metric
        floor = 0.0 if m.lower >= 0 else None  # sums of non-negative values are clamped at 0
        return {m.name: count_output(parts[m.name, "value"], plan.part("value"), merged,
                                     divisor=m.scale, floor=floor)}

    def noise_unit(self):
        return self.metric.scale

    def expected_error(self, plan):
        return f"    error per cell: the noise above, in units of {self.metric.column}"

    def exact(self, rows, keys, unit, plan):
        return self._grouped(rows, keys).agg("sum").to_frame(self.metric.name)

    def cell_error_sd(self, plan, rows_per_cell):
        return plan.part("value").sd / self.metric.scale, self.metric.column


@register
class Mean(FixedPointKind):
    """A noisy count and a noisy sum of doubled, centred fixed-point values 2 v - (low + high)."""

    name = "mean"
    parts = ("count", "sum")
    meaning = "mean of {column}"
    row_input = RowInput(Encoding.CENTRED_FIXED_POINT, Aggregate.SUM)

    def sensitivity(self, part, max_rows):
        if part == "count":
            return max_rows, max_rows
        low, high = fixed_point_bounds(self.metric)
        per_row = {"sum": high - low, "sum_sq": (high - low) ** 2}[part]  # centred values: +-(high - low)
        return max_rows * per_row, max_rows * per_row

    def input_column(self, part):
        return ROWS if part == "count" else self.metric.name

    def release(self, plan, parts, merged, placed):
        m = self.metric
        count_noise, sum_noise = plan.part("count"), plan.part("sum")
        count = np.maximum(parts[m.name, "count"].astype("float64"), 1.0)
        total = parts[m.name, "sum"].astype("float64")
        low_fp, high_fp = fixed_point_bounds(m)
        half_range = 2 * m.scale
        value = (low_fp + high_fp) / half_range + total / (half_range * count)
        # Delta method on mean = mid + S / (2 scale C), noise only.
        sd = np.sqrt(
            (sum_noise.sd * np.sqrt(merged) / (half_range * count)) ** 2
            + (total / (half_range * count**2) * count_noise.sd * np.sqrt(merged)) ** 2
        )
        return {m.name: clamped_output(value, sd, m.lower, m.upper)}

    def expected_error(self, plan):
        sum_sd = plan.part("sum").sd / (2 * self.metric.scale)
        return (f"    error per cell of n rows: about {sum_sd:,.4g} / n on the mean (delta method); "
                "small cells are clamped to the bounds")

    def exact(self, rows, keys, unit, plan):
        return self._grouped(rows, keys).agg("mean").to_frame(self.metric.name)

    def cell_error_sd(self, plan, rows_per_cell):
        return plan.part("sum").sd / (2 * self.metric.scale * rows_per_cell), self.metric.column


@register
class Variance(Mean):
    """A mean's parts and a noisy sum of the squared centred values."""

    name = "variance"
    parts = ("count", "sum", "sum_sq")
    meaning = "variance of {column}"
    row_input = RowInput(Encoding.CENTRED_FIXED_POINT, Aggregate.SUM_AND_SQUARES)

    def input_column(self, part):
        return squares_column(self.metric.name) if part == "sum_sq" else super().input_column(part)

    def release(self, plan, parts, merged, placed):
        m = self.metric
        c = np.maximum(parts[m.name, "count"].astype("float64"), 1.0)
        s = parts[m.name, "sum"].astype("float64")
        q = parts[m.name, "sum_sq"].astype("float64")
        four_scale_sq = 4 * m.scale**2
        value = (q / c - (s / c) ** 2) / four_scale_sq
        root = np.sqrt(merged)
        sd = np.sqrt(
            (plan.part("sum_sq").sd * root / c) ** 2
            + (2 * s / c**2 * plan.part("sum").sd * root) ** 2
            + ((-q / c**2 + 2 * s**2 / c**3) * plan.part("count").sd * root) ** 2
        ) / four_scale_sq
        return {m.name: clamped_output(value, sd, 0.0, ((m.upper - m.lower) / 2) ** 2)}

    def exact(self, rows, keys, unit, plan):
        return self._grouped(rows, keys).agg(lambda s: s.var(ddof=0)).to_frame(self.metric.name)

    def cell_error_sd(self, plan, rows_per_cell):
        m = self.metric
        return plan.part("sum_sq").sd / (4 * m.scale**2 * rows_per_cell), f"{m.column}^2"


def quantile_column(name: str, q: float) -> str:
    return f"{name}_p{round(q * 100, 4):g}".replace(".", "_")


def insufficient_column(metric_name: str) -> str:
    """A quantiles metric's flag: True where the cell had too few (noisy) rows to place them."""
    return f"{metric_name}_insufficient"


def quantile_min_rows(metric) -> float:
    """Rows (as the noisy tree estimates them) a cell needs for its quantiles to be placed.

    With fewer, some quantile's 95% rank band, q n +- z rank sd, reaches past both the first
    and the last row: the noisy tree cannot tell that quantile from the cell's minimum or
    maximum, and its interval would span (nearly) the whole bounds. Decided on the noisy
    total alone, so whether a cell is published does not depend on the noise of the ranks
    its intervals are built from (their coverage holds among published cells)."""
    z = float(norm.ppf(0.5 + CONFIDENCE / 2))
    hardest = min(max(q, 1 - q) for q in metric.metric.quantiles)  # the quantile nearest 1/2
    return z * quantile_rank_sd(metric.part("tree").sd) / hardest


def is_insufficient(tree: NoisyTree, metric) -> bool:
    """Too few rows to place the quantiles: the tree's noisy total is under
    quantile_min_rows (or not positive). A function of noisy counts only."""
    total = tree.total()
    return total <= 0 or total < quantile_min_rows(metric)


@register
class Quantiles(MetricKind):
    """Quantiles read from a noisy tree over [lower, upper] whose leaves count rows."""

    name = "quantiles"
    parts = ("tree",)
    meaning = "quantile of {column}"
    reads_column = bounded = uses_quantile_scale = True
    row_input = RowInput(Encoding.TREE_LEAF, Aggregate.BUCKETS)
    lazy_parts = ("tree",)

    def check_options(self):
        m = self.metric
        if not (m.quantiles and all(0 < q < 1 for q in m.quantiles)):
            raise ValueError(f"{m.kind} metric '{m.name}' needs quantiles, each in (0, 1)")

    def outputs(self):
        return tuple(quantile_column(self.metric.name, q) for q in self.metric.quantiles)

    def flag_columns(self):
        return (insufficient_column(self.metric.name),)

    def sensitivity(self, part, max_rows):
        return max_rows * TREE_HEIGHT, max_rows * math.sqrt(TREE_HEIGHT)  # one node per level per row

    def true_part(self, part, cells, buckets, keys):
        return bucket_matrix(cells, buckets[self.metric.name], keys, TREE_LEAVES)  # rows per leaf

    def place(self, plan, trees, rows):
        """Per quantile: value and 95% interval (core.quantile_tree); NaN where insufficient."""
        m = self.metric
        k = len(m.quantiles)
        values, lows, highs = (np.full((rows, k), np.nan) for _ in range(3))
        flags = np.zeros(rows, dtype=bool)
        for row, tree in enumerate(trees["tree"]):
            flags[row] = is_insufficient(tree, plan)
            if not flags[row]:
                placed = [tree.place(q).values(m.lower, m.upper, m.quantile_scale) for q in m.quantiles]
                ends = np.array(placed)
                values[row] = np.maximum.accumulate(ends[:, 0])  # quantiles never decrease in q
                lows[row] = np.minimum(ends[:, 1], values[row])
                highs[row] = np.maximum(ends[:, 2], values[row])
        outputs = {
            name: Output(values[:, j], (highs[:, j] - lows[:, j]) / (2 * Z), lows[:, j], highs[:, j])
            for j, name in enumerate(self.outputs())
        }
        return CellOutputs(outputs, {insufficient_column(m.name): flags})

    def unplaced(self, plan, rows):
        """Noisy trees are not added up, so a remainder has no tree to place quantiles in."""
        nan = lambda: np.full(rows, np.nan)  # noqa: E731
        return CellOutputs({out: Output(nan(), nan(), nan(), nan()) for out in self.outputs()},
                      {insufficient_column(self.metric.name): np.ones(rows, dtype=bool)})

    def release(self, plan, parts, merged, placed):
        return placed.outputs

    def describe(self):
        m = self.metric
        return (f"{super().describe()}, q = {', '.join(f'{q:g}' for q in m.quantiles)}, "
                f"{m.quantile_scale} tree")

    def expected_error(self, plan):
        m = self.metric
        rank_sd = quantile_rank_sd(plan.part("tree").sd)
        width = m.upper - m.lower
        if m.quantile_scale == "log":
            span = math.log1p(width)
            leaf, node = math.expm1(span / TREE_LEAVES), math.expm1(span / TREE_BRANCHING)
            resolution = (f"resolution {leaf:.2%} of 1 + (value - lower) in nodes holding enough rows to "
                          f"read their leaves, else {node:.0%} (interpolated on the log scale)")
        else:
            resolution = (f"resolution {width / TREE_LEAVES:,.4g} in nodes holding enough rows to read "
                          f"their leaves, else {width / TREE_BRANCHING:,.4g} (interpolated)")
        leaves_sd = quantile_rank_sd(plan.part("tree").sd, leaves_read=True)
        return (f"    error per cell of n rows: rank noise sd at most {rank_sd:,.4g} rows ({leaves_sd:,.4g} "
                f"where a node's leaves are read), so about {rank_sd:,.4g} / n in quantile; {resolution}\n"
                "    95% interval: the whole nodes (or leaves) where the noisy rank test cannot exclude the "
                f"quantile; a cell of fewer than {quantile_min_rows(plan):,.0f} rows (noisy) publishes "
                f"no quantile ({insufficient_column(m.name)})")

    @classmethod
    def page_note(cls, flags, rolled_up, flagged):
        remainders = (" A remainder has no quantiles of its own (those of merged cells cannot be added "
                      "up), so it is marked the same way." if rolled_up else "")
        return (
            "A quantile (such as a median) can only be placed when its cell holds enough records for "
            f"the noise. Where it does not, no value is given: the cell shows '{flagged}' here, "
            f"is left empty in data.csv, and {', '.join(escape(f) for f in flags)} is true there."
            f"{remainders} A quantile's interval is made of whole steps of the range (1/32 of it, finer "
            "where a cell holds many records), so it can be wider than the noise alone."
        )

    def exact(self, rows, keys, unit, plan):
        grouped = self.clamped(rows).groupby([rows[k] for k in keys])
        return pd.concat({out: grouped.quantile(q) for out, q in zip(self.outputs(), self.metric.quantiles,
                                                                     strict=True)}, axis=1)

    def cell_error_sd(self, plan, rows_per_cell):
        return quantile_rank_sd(plan.part("tree").sd), "rank, rows"


@register
class Histogram(MetricKind):
    """Rows per bin of the column; values outside the edges fall in the first or last bin."""

    name = "histogram"
    parts = ("bins",)
    meaning = "records with {column} in a bin"
    reads_column = is_count = zero_when_empty = True
    bounding_loss = BoundingLoss.ROWS
    row_input = RowInput(Encoding.BIN_INDEX, Aggregate.BUCKETS)

    def check_options(self):
        m = self.metric
        edges = m.bins or ()
        if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError(f"{m.kind} metric '{m.name}' needs at least 2 increasing bin edges")

    def outputs(self):
        return tuple(f"{self.metric.name}_b{i}" for i in range(len(self.metric.bins) - 1))

    def sensitivity(self, part, max_rows):
        return max_rows, max_rows  # rows: in one bin each, so the bins' L1 is R too

    def true_part(self, part, cells, buckets, keys):
        return bucket_matrix(cells, buckets[self.metric.name], keys, len(self.metric.bins) - 1)

    def release(self, plan, parts, merged, placed):
        bins = parts[self.metric.name, "bins"]
        noise = plan.part("bins")
        return {out: count_output(bins[:, i], noise, merged) for i, out in enumerate(self.outputs())}

    def describe(self):
        return f"{super().describe()}, bins {list(self.metric.bins)}"

    def output_title(self, output, index, number):
        m = self.metric
        return f"{output}: {m.column} in [{number(m.bins[index])}, {number(m.bins[index + 1])})"

    def exact(self, rows, keys, unit, plan):
        inner = np.asarray(self.metric.bins[1:-1], dtype=float)
        bins = np.searchsorted(inner, rows[self.metric.column].astype(float), side="right")
        counts = rows[keys].assign(_bin=bins).groupby([*keys, "_bin"]).size().unstack("_bin", fill_value=0)
        outputs = self.outputs()
        counts = counts.reindex(columns=range(len(outputs)), fill_value=0)
        counts.columns = list(outputs)
        return counts

    def cell_error_sd(self, plan, rows_per_cell):
        return plan.part("bins").sd, "rows"

