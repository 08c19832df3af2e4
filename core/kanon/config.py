"""What an anonymization is asked for: the privacy requirements and the engine's configuration.

After ARX's `anonymize(data, config)`: one frozen configuration names the quasi-identifiers
with their hierarchies, the privacy models (k, optionally l-diversity or t-closeness of one
sensitive attribute), the share of records that may be suppressed, the algorithm and the
metric it minimizes. It is built once, from the command's flags or config/analyst.yaml,
and only read after; `transforms.kanon.anonymize` runs it on a DataFrame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from core.kanon import models as M
from core.kanon.hierarchy import Hierarchy
from core.kanon.metrics import METRICS

# "optimal": the full-domain lattice search (core.kanon.lattice), with suppression, for every
# privacy model; "mondrian": strict Mondrian local recoding along the hierarchies, k only.
ALGORITHMS = ("optimal", "mondrian")


@dataclass(frozen=True)
class Requirements:
    """What the output must satisfy."""

    k: int
    l: int | None = None  # noqa: E741 - the model's name for it
    l_kind: str = "distinct"  # distinct | entropy | recursive
    c: float | None = None  # recursive (c, l)
    t: float | None = None
    t_distance: str = "equal"  # equal | ordered
    sensitive: str | None = None
    suppression_limit: float = 0.0

    def models(self) -> list:
        chosen = [M.KAnonymity(self.k)]
        if self.l is not None:
            if self.l_kind == "entropy":
                chosen.append(M.EntropyLDiversity(self.l))
            elif self.l_kind == "recursive":
                chosen.append(M.RecursiveCLDiversity(self.c, self.l))
            else:
                chosen.append(M.DistinctLDiversity(self.l))
        if self.t is not None:
            model = M.OrderedDistanceTCloseness if self.t_distance == "ordered" else M.EqualDistanceTCloseness
            chosen.append(model(self.t))
        return chosen


@dataclass(frozen=True)
class AnonymizationConfig:
    """The quasi-identifiers (the keys of `hierarchies`, in order) and how to anonymize them.

    `unit` names the column of the person (the subscriber) when one person may have many
    records: k then counts distinct units, not records. `metric` is the information loss
    the optimal search minimizes (Mondrian reports NCP whatever it is).
    """

    hierarchies: Mapping[str, Hierarchy]
    requirements: Requirements
    algorithm: str = "optimal"
    metric: str = "loss"
    unit: str | None = None

    def __post_init__(self) -> None:
        if not self.hierarchies:
            raise ValueError("at least one quasi-identifier is needed")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        object.__setattr__(self, "hierarchies", MappingProxyType(dict(self.hierarchies)))

    @property
    def quasi_identifiers(self) -> tuple[str, ...]:
        return tuple(self.hierarchies)

    @property
    def k(self) -> int:
        return self.requirements.k

    @property
    def suppression_limit(self) -> float:
        return self.requirements.suppression_limit

    @property
    def sensitive(self) -> str | None:
        return self.requirements.sensitive
