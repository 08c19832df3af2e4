"""KR Online privacy-safe aggregate reporting.

The public API is the release front door and what it takes:

    from kr_reports import Aggregation, Releaser
    releaser = Releaser.open(data_dir="data", config_dir="config")
    release = releaser.release(df, aggregation, period=day)
    release.record   # a ReleaseRecord: what was spent, on which ledger entry

Every error of the project's own is a KrReportsError (each keeps its builtin
base too: a ConfigError is a ValueError).

Names are loaded on first use: `import core.config` stays free of Spark.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Aggregation": "core.config",
    "Delivery": "core.config",
    "ReportSpec": "core.config",
    "Ledger": "core.ledger",
    "BudgetExceeded": "core.ledger",
    "ChargeMismatch": "core.ledger",
    "ReleaseStore": "core.store",
    "ReleaseRecord": "core.release_record",
    "KrReportsError": "core.errors",
    "Release": "stages.releaser",
    "ReleaseRefused": "stages.releaser",
    "Releaser": "stages.releaser",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kr_reports' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
