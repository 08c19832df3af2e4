"""analyst.yaml: the analyst zone's k-anonymity settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from core.config.base import Frozen, validated


class AnalystConfig(Frozen):
    """The analyst zone's anonymity requirements and quasi-identifier hierarchies."""

    k: int = Field(ge=2)
    l: int | None = Field(default=None, ge=2)  # noqa: E741 - the model's name for it
    suppression_limit: float = Field(default=0.0, ge=0, lt=1)
    metric: Literal["loss", "entropy", "discernibility", "aecs", "ncp"] = "loss"
    hierarchies: dict[str, dict[str, tuple[str, ...]]]

    @model_validator(mode="after")
    def _same_depth(self) -> AnalystConfig:
        for column, table in self.hierarchies.items():
            if len({len(parents) for parents in table.values()}) > 1:
                raise ValueError(f"hierarchy '{column}': every value needs the same number of levels")
        return self


def load_analyst_config(config_dir: Path) -> AnalystConfig:
    return validated(AnalystConfig, config_dir / "analyst.yaml")
