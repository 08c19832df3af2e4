"""Secrets from Prefect Secret blocks, registered as the core's secret store.

Importing any flows module registers it (flows/__init__.py), so the flows and
the `kr-reports` commands read KR_PSEUDONYM_KEY_BLOCK the same way.
"""

from __future__ import annotations

from core.keys import PseudonymKeyError


def prefect_secret(name: str) -> str:
    """The value of Prefect Secret block `name`; Prefect is imported only when one is named."""
    from prefect.blocks.system import Secret

    try:
        return str(Secret.load(name).get())
    except ValueError:
        raise PseudonymKeyError(f"Prefect Secret block '{name}' not found") from None
