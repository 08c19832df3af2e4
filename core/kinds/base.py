"""What every metric kind answers, and the registry that maps a spec's `kind` to its class.

A kind is one class (core.kinds.builtin): the noised integer vectors ("parts") it needs,
their per-cell sensitivity, the per-row input the Spark aggregation must compute (as
data: an encoding and an aggregate, which transforms.bounding turns into columns), the
free post-processing from noisy parts to released values, and the words `explain`,
report.html and the notebooks use for it. An instance is bound to one configured metric.

Nothing outside core.kinds compares a kind's name: modules ask the kind
(tests/test_kinds.py scans for it). Adding a kind is one class registered here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from enum import Enum
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
from scipy.stats import norm

from core.errors import KrReportsError
from core.mechanisms import CONFIDENCE, IntegerNoise

if TYPE_CHECKING:
    from core.config import Metric
    from core.noise_plan import MetricPlan
    from core.quantile_tree import NoisyTree

Z = float(norm.ppf(0.5 + CONFIDENCE / 2))
# The per-cell aggregate frame (transforms.bounding writes it, core.noisy_cells reads it).
ROWS = "rows"  # bounded rows per cell (and per bucket)
UNITS = "distinct_units"  # distinct subscribers per cell
BUCKET = "bucket"  # a bucket id: a quantile tree's leaf or a histogram's bin


def squares_column(name: str) -> str:
    """The per-cell sum of squares of an input that is also squared."""
    return f"{name}__sq"


class Encoding(Enum):
    """How one row's value becomes the integer a cell aggregates (transforms.bounding)."""

    FIXED_POINT = "fixed_point"  # value x 10^precision, rounded, clamped to the integer bounds
    CENTRED_FIXED_POINT = "centred_fixed_point"  # 2 v - (low + high) of that integer v
    TREE_LEAF = "tree_leaf"  # the leaf of the quantile tree over [lower, upper]
    BIN_INDEX = "bin_index"  # the histogram bin; values outside go to the end bins


class Aggregate(Enum):
    """How a cell aggregates a row input."""

    SUM = "sum"  # summed, as a column named after the metric
    SUM_AND_SQUARES = "sum_and_squares"  # and its squares summed, as squares_column(name)
    BUCKETS = "buckets"  # rows counted per (cell, bucket)


@dataclass(frozen=True)
class RowInput:
    """What Spark computes per row for a metric, and how the cell aggregates it."""

    encoding: Encoding
    aggregate: Aggregate


class BoundingLoss(Enum):
    """What contribution bounding takes from a metric's value (kr_reports.analysis)."""

    CELLS = "cells"  # a subscriber's dropped cells: distinct counts
    ROWS = "rows"  # dropped rows: row counts
    VALUES = "values"  # dropped rows and clamped values: sums


class KindError(KrReportsError, ValueError):
    """A kind registered twice, or asked for by a name no kind has."""


KINDS: dict[str, type[MetricKind]] = {}


def register(kind: type[MetricKind]) -> type[MetricKind]:
    """Class decorator: `kind.name` becomes a valid `kind` in report specs."""
    if kind.name in KINDS:
        raise KindError(f"metric kind '{kind.name}' is registered twice")
    KINDS[kind.name] = kind
    return kind


def metric_kind(name: str) -> type[MetricKind]:
    try:
        return KINDS[name]
    except KeyError:
        raise KindError(f"unknown metric kind '{name}' (known: {', '.join(KINDS)})") from None


def kind_names(**traits) -> tuple[str, ...]:
    """Names of the registered kinds with every given class attribute, in registration order."""
    return tuple(name for name, kind in KINDS.items()
                 if all(getattr(kind, trait) == value for trait, value in traits.items()))


@dataclass
class Output:
    """One released value column: value, noise sd and interval ends (arrays over rows)."""

    value: np.ndarray
    sd: np.ndarray
    low: np.ndarray
    high: np.ndarray


@dataclass
class CellOutputs:
    """Outputs computed per cell from noise that is not additive (a quantile tree), with
    boolean flags per cell (a cell too sparse to place them)."""

    outputs: dict[str, Output]
    flags: dict[str, np.ndarray] = field(default_factory=dict)


def count_output(noisy: np.ndarray, noise: IntegerNoise, merged: np.ndarray, divisor: float = 1.0,
                 floor: float | None = 0.0) -> Output:
    """A noisy integer (summed over `merged` cells) as a value, clamped at `floor`."""
    sd = noise.sd * np.sqrt(merged)
    exact = np.full(len(noisy), noise.ci_half_width(CONFIDENCE), dtype="float64")
    half = np.where(merged == 1, exact, np.ceil(Z * sd))
    low, high = (noisy - half) / divisor, (noisy + half) / divisor
    value = noisy / divisor
    if floor is not None:
        value, low, high = (np.maximum(a, floor) for a in (value, low, high))
    return Output(value, sd / divisor, low, high)


def clamped_output(value, sd, lower, upper) -> Output:
    clip = lambda a: np.clip(a, lower, upper)  # noqa: E731
    return Output(clip(value), sd, clip(value - Z * sd), clip(value + Z * sd))


def bucket_matrix(cells: pd.DataFrame, counts: pd.DataFrame, keys: list[str], width: int) -> np.ndarray:
    """Rows per (cell, bucket) as a dense matrix aligned with `cells`."""
    matrix = np.zeros((len(cells), width), dtype="int64")
    if counts.empty:
        return matrix
    position = cells[keys].reset_index(drop=True).reset_index().rename(columns={"index": "_row"})
    located = counts.merge(position, on=keys, how="inner")
    np.add.at(matrix, (located["_row"].to_numpy(), located[BUCKET].to_numpy()), located[ROWS].to_numpy())
    return matrix


def fixed_point_units(value: float, precision: int) -> Decimal:
    """value x 10^precision, exactly, computed on the decimal the value was written as.

    repr is the shortest decimal that reads back as the same float, i.e. what YAML read:
    0.1 at precision 1 is exactly 1, not 1.0000000000000002, and 2500 at -3 exactly 2.5.
    """
    return Decimal(repr(float(value))).scaleb(precision)


def fixed_point_bounds(metric: Metric) -> tuple[int, int]:
    """The integer bounds of a fixed-point metric, the only ones: sensitivities are computed
    from them here, and transforms.bounding clamps every rounded value to them, so no row can
    contribute more than planned. Config requires whole bounds, so the rounding only decides
    for a Metric built without validation, and Spark clamps to whatever it decides."""
    low, high = (int(fixed_point_units(bound, metric.precision).to_integral_value(ROUND_HALF_EVEN))
                 for bound in (metric.lower, metric.upper))
    return low, high


class MetricKind:
    """One kind of metric, bound to one configured metric (`self.metric`).

    Class attributes state the kind's traits; methods compute what depends on the metric.
    Defaults fit a kind released as one value per cell from one noisy part.
    """

    name: ClassVar[str]
    parts: ClassVar[tuple[str, ...]]  # the integer vectors noised for it, in drawing order
    meaning: ClassVar[str]  # report.html: what a value is ("{column}" is the metric's column)
    reads_column: ClassVar[bool] = False  # needs `column`
    bounded: ClassVar[bool] = False  # needs lower < upper
    fixed_point: ClassVar[bool] = False  # bounds are whole fixed-point units
    uses_quantile_scale: ClassVar[bool] = False
    additive: ClassVar[bool] = False  # one value that adds up over cells: shares, typical sizes
    is_count: ClassVar[bool] = False  # outputs are non-negative integer counts
    counts_subscribers: ClassVar[bool] = False  # its value can test a cell against k
    zero_when_empty: ClassVar[bool] = False  # an empty cell's true value is 0 (not undefined)
    bounding_loss: ClassVar[BoundingLoss | None] = None  # None: a ratio, which bounding biases little
    row_input: ClassVar[RowInput | None] = None  # None: counts rows or subscribers only
    # Parts noised lazily, cell by cell: core.noisy_cells gives `place` one noisy tree
    # (core.quantile_tree) per cell over the part's true buckets, drawing a node as it is read.
    lazy_parts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, metric: Metric):
        self.metric = metric

    # ---- the spec -------------------------------------------------------------------------

    def check(self) -> None:
        """Raise ValueError naming the metric where the spec does not fit the kind."""
        m = self.metric
        if self.reads_column and m.column is None:
            raise ValueError(f"{m.kind} metric '{m.name}' needs a column")
        if self.bounded:
            if m.lower is None or m.upper is None:
                raise ValueError(f"{m.kind} metric '{m.name}' needs column, lower and upper")
            if m.lower >= m.upper:
                raise ValueError(f"{m.kind} metric '{m.name}': lower bound must be below upper bound")
        if self.fixed_point:
            self._check_whole_bounds()
        self.check_options()
        if m.quantile_scale != "linear" and not self.uses_quantile_scale:
            scaled = ", ".join(kind_names(uses_quantile_scale=True))
            raise ValueError(f"metric '{m.name}': quantile_scale applies to {scaled} metrics only")
        if m.share_across is not None and not self.additive:
            additive = ", ".join(kind_names(additive=True))
            raise ValueError(f"metric '{m.name}': share_across needs one of {additive}")

    def check_options(self) -> None:
        """The kind's own options (quantiles, bins); none by default."""

    def _check_whole_bounds(self) -> None:
        m = self.metric
        for side, bound in (("lower", m.lower), ("upper", m.upper)):
            units = fixed_point_units(bound, m.precision)
            if not units.is_finite() or units != units.to_integral_value():
                raise ValueError(
                    f"{m.kind} metric '{m.name}': {side} bound {bound:g} is not a whole number of "
                    f"units at precision {m.precision} (units of {10.0 ** -m.precision:g}); "
                    "round the bound or change the precision"
                )

    # ---- the plan --------------------------------------------------------------------------

    def outputs(self) -> tuple[str, ...]:
        """Released value columns (each with _noise_sd, _ci95_low, _ci95_high)."""
        return (self.metric.name,)

    def flag_columns(self) -> tuple[str, ...]:
        """Released boolean columns beside the outputs."""
        return ()

    def sensitivity(self, part: str, max_rows: int) -> tuple[float, float]:
        """(L1, L2) of one subscriber's change to one cell's part, after bounding."""
        raise NotImplementedError

    def integer_outputs(self) -> bool:
        """Whether the outputs are whole numbers (released as nullable integers)."""
        return self.is_count

    # ---- the noise -------------------------------------------------------------------------

    def input_column(self, part: str) -> str:
        """The column of the per-cell aggregate frame that holds a part's true value."""
        return self.metric.name

    def true_part(self, part: str, cells: pd.DataFrame, buckets: dict[str, pd.DataFrame],
                  keys: list[str]):
        """A part's true integers per cell: a column, or a matrix of buckets (a row per cell)."""
        return cells[self.input_column(part)]

    def place(self, plan: MetricPlan, trees: dict[str, Iterable[NoisyTree]], rows: int) -> CellOutputs | None:
        """Outputs from the lazily noised parts' trees (one per cell, in order): not additive, so
        remainder rows get `unplaced`. None for kinds without lazy parts."""
        return None

    def unplaced(self, plan: MetricPlan, rows: int) -> CellOutputs | None:
        """What `place` gives a remainder row, which has no noise of its own to place."""
        return None

    def release(self, plan: MetricPlan, parts: dict, merged: np.ndarray,
                placed: CellOutputs | None) -> dict[str, Output]:
        """Free post-processing: the outputs from the noisy parts (summed over `merged` cells)."""
        raise NotImplementedError

    # ---- words -------------------------------------------------------------------------------

    def describe(self) -> str:
        """What the metric is, for `explain`."""
        m = self.metric
        what = m.kind if m.column is None else f"{m.kind} of {m.column}"
        if m.lower is not None:
            what += f", clamped to [{m.lower:g}, {m.upper:g}]"
        return what

    def noise_unit(self) -> float:
        """What one unit of a part's noise is in the metric's own units, for `explain`."""
        return 1

    def expected_error(self, plan: MetricPlan) -> str:
        return "    error per cell: the noise above, whatever the cell's size"

    def what(self) -> str:
        """What a value is, for report.html."""
        return self.meaning.format(column=self.metric.column)

    def output_title(self, output: str, index: int, number: Callable[[float], str]) -> str:
        """An output's chart title in report.html (`number` writes a number as the page does)."""
        return output

    @classmethod
    def page_note(cls, flags: list[str], rolled_up: bool, flagged: str) -> str | None:
        """A 'How to read this report' item about this kind's metrics: their flag columns, whether
        sparse cells are rolled up, and what the page shows where a flag is set."""
        return None

    # ---- notebooks ---------------------------------------------------------------------------

    def exact(self, rows: pd.DataFrame, keys: list[str], unit: str, plan: MetricPlan) -> pd.DataFrame:
        """True values per cell of the rows, without bounding or noise (values clamped)."""
        raise NotImplementedError

    def cell_error_sd(self, plan: MetricPlan, rows_per_cell: float) -> tuple[float, str]:
        """Noise sd of one cell's released value and its unit (for a cell of `rows_per_cell` rows)."""
        raise NotImplementedError

    def clamped(self, rows: pd.DataFrame) -> pd.Series:
        m = self.metric
        return rows[m.column].astype(float).clip(m.lower, m.upper)
