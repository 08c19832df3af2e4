"""The privacy policy as code: categories, treatments and the classification of every column.

config/policy.yaml is validated into frozen models. Resolving a source
against the policy fails on any column the policy does not classify, so a new
column in a feed can never slip through the protect stage unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from core.config import Aggregation, ConfigError, Frozen, validated
from core.report_columns import ADDON_PREFIX, ADDONS, DERIVED_REPORT_COLUMNS
from core.schemas import SourceSpec

Treatment = Literal["drop", "pseudonymize", "generalize", "keep"]


class UnclassifiedColumn(ConfigError):
    """A source column that the policy does not classify."""


class PolicyRefusal(ConfigError):
    """A request the policy forbids; the message cites the clause."""


class Category(Frozen):
    treatment: Treatment
    forbidden: bool = False
    clause: str | None = None


class ColumnRule(Frozen):
    category: str
    generalizer: str | None = None
    output: str | None = None


class Policy(Frozen):
    clauses: dict[str, str] = Field(min_length=1)
    categories: dict[str, Category] = Field(min_length=1)
    sources: dict[str, dict[str, ColumnRule]]

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        for name, category in self.categories.items():
            if category.forbidden and category.treatment != "drop":
                raise ValueError(f"forbidden category '{name}' must have treatment drop")
            if category.clause and category.clause not in self.clauses:
                raise ValueError(f"category '{name}' cites unknown clause '{category.clause}'")
        for source, columns in self.sources.items():
            for column, rule in columns.items():
                _check_rule(f"{source}.{column}", rule, self.categories)
        return self

    def resolve(self, source: SourceSpec) -> tuple[ResolvedRule, ...]:
        """The treatment of every column of `source`, in schema order."""
        rules = self.sources.get(source.name, {})
        unclassified = [c for c in source.column_names if c not in rules]
        if unclassified:
            raise UnclassifiedColumn(
                f"policy: column(s) {', '.join(unclassified)} of source '{source.name}' are not "
                f"classified into a policy category; add them to config/policy.yaml"
            )
        return tuple(self._resolved(column, rules[column]) for column in source.column_names)

    def _resolved(self, column: str, rule: ColumnRule) -> ResolvedRule:
        category = self.categories[rule.category]
        treatment = category.treatment
        if treatment == "generalize" and rule.generalizer == "suppress":
            treatment = "drop"
        return ResolvedRule(
            column=column,
            category=rule.category,
            treatment=treatment,
            generalizer=rule.generalizer if treatment == "generalize" else None,
            output=rule.output or column,
        )

    def check_report(
        self, spec: Aggregation, source: SourceSpec, profile: SourceSpec | None = None
    ) -> None:
        """Refuse an aggregation that reads or groups by a column of a forbidden or dropped category.

        Event sources also offer the event's hour and the subscriber's profile
        attributes (`profile`): those are checked against the profile's rules.
        A column a report input derives (see `derived_origin`) is checked as
        the column it comes from.
        """
        used = [(f"metric '{m.name}'", m.column) for m in spec.metrics if m.column is not None]
        used += [(f"group key '{k.column}'", k.column) for k in spec.group_by]
        for what, column in used:
            origins = derived_origin(column)
            rules = [self._rule_for(c, s) for c in origins or (column,) for s in (source, profile) if s]
            rule = next((r for r in rules if r is not None), None)
            if rule is None:
                raise ConfigError(
                    f"report '{spec.name}': {what} reads unknown column '{column}' of source '{source.name}'"
                )
            self._refuse_if_not_shared(spec, column, rule)

    def _rule_for(self, column: str, source: SourceSpec) -> ResolvedRule | None:
        rules = self.resolve(source)
        return next((r for r in rules if r.column == column), None) or next(
            (r for r in rules if r.output == column), None
        )

    def _refuse_if_not_shared(self, spec: Aggregation, column: str, rule: ResolvedRule) -> None:
        category = self.categories[rule.category]
        if category.forbidden:
            clause = self.clauses[category.clause] if category.clause else "the privacy policy"
            raise PolicyRefusal(
                f"report '{spec.name}' asks for '{column}' ({rule.category}), which "
                f"never passes the protect stage: {clause}"
            )
        if rule.treatment == "drop":
            raise PolicyRefusal(
                f"report '{spec.name}' asks for '{column}' ({rule.category}), which "
                f"the policy drops at the protect stage"
            )


def derived_origin(column: str) -> tuple[str, ...] | None:
    """The protected columns a derived report column (core.report_columns) may come from; None when
    not derived: the policy judges a derived column as its origin."""
    if column.startswith(ADDON_PREFIX):
        return (ADDONS,)
    return DERIVED_REPORT_COLUMNS.get(column)


@dataclass(frozen=True)
class ResolvedRule:
    column: str
    category: str
    treatment: str  # drop | pseudonymize | generalize | keep
    generalizer: str | None
    output: str


def _check_rule(where: str, rule: ColumnRule, categories: dict[str, Category]) -> None:
    if rule.category not in categories:
        raise ValueError(f"{where}: unknown category '{rule.category}'")
    treatment = categories[rule.category].treatment
    if treatment == "generalize" and rule.generalizer is None:
        raise ValueError(f"{where}: category '{rule.category}' is generalized; name a generalizer")
    if treatment != "generalize" and rule.generalizer is not None:
        raise ValueError(f"{where}: category '{rule.category}' is '{treatment}', not generalized")


def load_policy(config_dir: Path) -> Policy:
    return validated(Policy, config_dir / "policy.yaml")
