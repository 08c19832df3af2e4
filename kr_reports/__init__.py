"""KR Online privacy-safe aggregate reporting.

The public API is the release front door and what it takes:

    from kr_reports import Aggregation, Releaser
    releaser = Releaser.open(data_dir="data", config_dir="config")
    release = releaser.release(df, aggregation, period=day)

Names are loaded on first use: `import kr_reports.config` stays free of Spark.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Aggregation": "kr_reports.config",
    "Delivery": "kr_reports.config",
    "ReportSpec": "kr_reports.config",
    "Ledger": "kr_reports.ledger",
    "BudgetExceeded": "kr_reports.ledger",
    "ChargeMismatch": "kr_reports.ledger",
    "ReleaseStore": "kr_reports.store",
    "Release": "kr_reports.releaser",
    "ReleaseRefused": "kr_reports.releaser",
    "Releaser": "kr_reports.releaser",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kr_reports' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
