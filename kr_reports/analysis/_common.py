"""What every part of the notebooks' helpers shares: environment names, statuses, the truth's refusal."""

from __future__ import annotations

from core.cells import PUBLISHED  # noqa: F401  (kr_reports.analysis.PUBLISHED, as notebooks read it)
from core.errors import KrReportsError
from core.kinds import kind_names

REPORT_ENV = "KR_REPORT"
CONFIG_ENV = "KR_CONFIG_DIR"
# Metrics whose empty cell is truly 0; a mean or a quantile of no rows has no value.
ZERO_WHEN_EMPTY = kind_names(zero_when_empty=True)
DEFAULT_ROWS_PER_CELL = 100.0  # the cell size errors are quoted for when the data cannot say
PANEL_COLUMNS = 4  # panels per row of a figure with one panel per metric


class TruthUnavailable(KrReportsError, LookupError):
    """The protected zone neither holds nor derives a column the report reads."""
