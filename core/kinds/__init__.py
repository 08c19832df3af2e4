"""Metric kinds: one class per kind, and the registry a report spec's `kind` is checked against.

`Metric.measure` (core.config) is the metric's kind bound to it; planning (core.noise_plan), noising
(core.noisy_cells), Spark's aggregation (transforms.bounding), `explain`, report.html and the
notebooks ask it rather than compare kind names. The shipped kinds are in
core.kinds.builtin; a new kind is one more `@register`ed MetricKind subclass there.
"""

from core.kinds import builtin
from core.kinds.base import (
    BUCKET,
    KINDS,
    ROWS,
    UNITS,
    Aggregate,
    BoundingLoss,
    CellOutputs,
    Encoding,
    KindError,
    MetricKind,
    Output,
    RowInput,
    fixed_point_bounds,
    fixed_point_units,
    kind_names,
    metric_kind,
    register,
    squares_column,
)
from core.kinds.builtin import insufficient_column, is_insufficient, quantile_column, quantile_min_rows

__all__ = [
    "BUCKET", "KINDS", "ROWS", "UNITS", "Aggregate", "BoundingLoss", "CellOutputs", "Encoding", "KindError",
    "MetricKind", "Output", "RowInput", "builtin", "fixed_point_bounds", "fixed_point_units",
    "insufficient_column", "is_insufficient", "kind_names", "metric_kind", "quantile_column",
    "quantile_min_rows", "register", "squares_column",
]
