"""The consolidation rules of SPEC section 1 that depend on the database, stated once.

The planner applies them to every row of a file without locks; each chunk applies them again
under its locks, because another run may have changed the accounts since. Both build their SQL
from ``RULES`` over the column expressions of their own query (``RuleColumns``), so the two can
never disagree on a rule or its wording. The rules a row breaks on its own (a missing username,
a self-merge, a bad TIN, a repeated secondary, a cycle) are decided while the file is read and
planned, and named in the stage's ``rule`` column like these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from portalctl.core.errors import InvalidInput, NotFound, PortalError, Refused
from portalctl.core.tin import masked_tin_sql

# A refusal of these rules is "not found" (exit 3) for ``consolidate one``.
NOT_FOUND_RULES = ("no_primary", "no_secondary")


@dataclass(frozen=True)
class RuleColumns:
    """The SQL expressions a rule reads, in the query that applies it."""

    primary_id: str
    secondary_id: str
    secondary_merged_into: str
    primary_status: str
    stage: str  # the stage table's name or alias (names, keys, TIN as the file gave them)

    def via(self) -> str:
        """ " (the end of the chain from X)" when the row's primary was reached by a chain."""
        s = self.stage
        return (
            f"CASE WHEN {s}.final_key <> {s}.primary_key THEN ' (the end of the chain from ' "
            f"|| {s}.primary_name || ')' ELSE '' END"
        )


@dataclass(frozen=True)
class Rule:
    name: str
    outcome: str  # refused | already_merged
    condition: str
    detail: str


def rules(c: RuleColumns) -> list[Rule]:
    """In order: the first that holds decides the row."""
    s = c.stage
    return [
        Rule(
            "no_primary",
            "refused",
            f"{c.primary_id} IS NULL",
            f"'no account ' || {s}.final_key || {c.via()}",
        ),
        Rule(
            "no_secondary",
            "refused",
            f"{c.secondary_id} IS NULL",
            f"'no account ' || {s}.secondary_name",
        ),
        Rule(
            "already_merged",
            "already_merged",
            f"{c.secondary_merged_into} = {c.primary_id}",
            f"'already merged into ' || {s}.final_key",
        ),
        Rule(
            "merged_elsewhere",
            "refused",
            f"{c.secondary_merged_into} IS NOT NULL",
            f"'secondary ' || {s}.secondary_name || ' is already merged into another account'",
        ),
        Rule(
            "primary_not_active",
            "refused",
            f"{c.primary_status} <> 'active'",
            f"'primary ' || {s}.final_key || ' is ' || {c.primary_status} || ', not active'"
            f" || {c.via()}",
        ),
        Rule(
            "tin_not_held",
            "refused",
            f"{s}.tin IS NOT NULL AND NOT EXISTS (SELECT 1 FROM account_tins t "
            f"WHERE t.account_id = {c.secondary_id} AND t.tin = {s}.tin)",
            f"'secondary ' || {s}.secondary_name || ' does not hold TIN ' || "
            f"{masked_tin_sql(f'{s}.tin')}",
        ),
    ]


def rule_assignments(c: RuleColumns) -> str:
    """``outcome = ..., rule = ..., detail = ...`` for an UPDATE of the stage: the first rule
    that holds decides. Use with ``any_rule_holds``."""
    applicable = rules(c)

    def first_holding(value: Callable[[Rule], str]) -> str:
        whens = " ".join(f"WHEN {rule.condition} THEN {value(rule)}" for rule in applicable)
        return f"CASE {whens} END"

    outcome = first_holding(lambda rule: sql_string(rule.outcome))
    name = first_holding(lambda rule: sql_string(rule.name))
    return f"outcome = {outcome}, rule = {name}, detail = {first_holding(lambda rule: rule.detail)}"


def sql_string(text: str) -> str:
    """A string literal of SQL (the rules' names and outcomes are plain words)."""
    return "'" + text.replace("'", "''") + "'"


def any_rule_holds(c: RuleColumns) -> str:
    return "(" + " OR ".join(f"({rule.condition})" for rule in rules(c)) + ")"


def refusal_for(outcome: str, rule: str | None, detail: str) -> PortalError:
    """The error ``consolidate one`` raises for a row the rules did not let through."""
    if outcome == "invalid":
        return InvalidInput(detail)
    if rule in NOT_FOUND_RULES:
        return NotFound(detail)
    return Refused(detail)
