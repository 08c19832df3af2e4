"""What every configuration file shares: frozen models, plain names, and YAML validated
into them with errors that name the file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from core.errors import KrReportsError
from core.names import check_identifier


class ConfigError(KrReportsError, ValueError):
    """A configuration file is missing or does not match its model."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Names used in paths, release ids and key-derivation contexts.
REPORT_NAME = r"^[a-z0-9][a-z0-9_-]*$"
PARTNER_ID = r"^[a-z0-9][a-z0-9_-]*$"
Purpose = Annotated[str, AfterValidator(lambda name: check_identifier(name, "purpose"))]


def repeated_values(values) -> list[str]:
    values = list(values)
    return sorted({str(v) for v in values if values.count(v) > 1})


def load_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def validated(model: type[Frozen], path: Path, context: dict | None = None):
    try:
        return model.model_validate(load_yaml(path), context=context)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
