"""What the analyst notebooks compute: pure functions over the files a run wrote.

The notebooks in `notebooks/` call these and hold no logic of their own.
Nothing here starts Spark or Prefect: deliveries, protected and analyst
datasets are read with pandas (pyarrow), the ledger with a read-only query.

No function returns a subscriber pseudonym. The protected zone (which holds
them) is read only to compute true per-cell values on synthetic data, and
only per-cell aggregates leave `true_values` and `bounding_kept_share`.
"""

from __future__ import annotations

from kr_reports.analysis._common import (
    CONFIG_ENV,
    DEFAULT_ROWS_PER_CELL,
    PANEL_COLUMNS,
    PUBLISHED,
    REPORT_ENV,
    ZERO_WHEN_EMPTY,
    TruthUnavailable,
)
from kr_reports.analysis.accuracy import (
    Bounding,
    ParameterGrid,
    accuracy_grid,
    best_bounds,
    bounding_kept_share,
    cell_error_sd,
    default_grid,
    load_bounding,
    metrics_epsilon,
    relative_error,
    spec_variant,
    typical_cell_values,
)
from kr_reports.analysis.analyst_zone import (
    AnalystZone,
    analyst_zone_summary,
    class_sizes,
    generalization_levels,
    hierarchy_heights,
    latest_analyst_day,
    load_analyst_zone,
    sensitive_shares,
)
from kr_reports.analysis.deliveries import (
    Delivery,
    choose_delivery,
    delivery_summary,
    find_deliveries,
    load_delivery,
    noise_table,
    released_values,
    table_values,
)
from kr_reports.analysis.ledger import (
    budget_over_time,
    latest_protected_day,
    latest_status,
    ledger_history,
    load_budgets,
    spend_by_period,
)
from kr_reports.analysis.plots import (
    metric_panels,
    plot_budget_over_time,
    plot_class_sizes,
    plot_generalization,
    plot_intervals,
    plot_kept_share,
    plot_noise_vs_epsilon,
    plot_relative_error,
    plot_sensitive_shares,
    plot_spend_by_period,
    plot_status_counts,
    plot_true_vs_released,
)
from kr_reports.analysis.runs import Settings, load_plan, project_root, settings_from_env
from kr_reports.analysis.truth import (
    Truth,
    accuracy_summary,
    compare_release,
    load_truth,
    report_inputs,
    report_rows,
    true_values,
    true_vs_released,
    with_report_keys,
)

__all__ = [
    "CONFIG_ENV", "DEFAULT_ROWS_PER_CELL", "PANEL_COLUMNS", "PUBLISHED", "REPORT_ENV",
    "ZERO_WHEN_EMPTY", "AnalystZone", "Bounding", "Delivery", "ParameterGrid", "Settings", "Truth",
    "TruthUnavailable", "accuracy_grid", "accuracy_summary", "analyst_zone_summary", "best_bounds",
    "bounding_kept_share", "budget_over_time", "cell_error_sd", "choose_delivery", "class_sizes",
    "compare_release", "default_grid", "delivery_summary", "find_deliveries",
    "generalization_levels", "hierarchy_heights", "latest_analyst_day", "latest_protected_day",
    "latest_status", "ledger_history", "load_analyst_zone", "load_bounding", "load_budgets",
    "load_delivery", "load_plan", "load_truth", "metric_panels", "metrics_epsilon", "noise_table",
    "plot_budget_over_time", "plot_class_sizes", "plot_generalization", "plot_intervals",
    "plot_kept_share", "plot_noise_vs_epsilon", "plot_relative_error", "plot_sensitive_shares",
    "plot_spend_by_period", "plot_status_counts", "plot_true_vs_released", "project_root",
    "relative_error", "released_values", "report_inputs", "report_rows", "sensitive_shares",
    "settings_from_env", "spec_variant", "spend_by_period", "table_values", "true_values",
    "true_vs_released", "typical_cell_values", "with_report_keys",
]
