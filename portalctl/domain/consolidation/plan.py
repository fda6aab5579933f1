"""The consolidation planner: resolve the staged file's chains to their final primary and classify
every row against the rules of SPEC section 1 with a fixed number of set-based statements (plus
one per chain level, only when the file has chains), so a 1,000,000-row file plans in
memory-bounded SQL. Reading the file is ``input``'s; the rules themselves are ``rules``'s."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from portalctl.domain.consolidation.input import RAW, create_input, stage_file, stage_pairs
from portalctl.domain.consolidation.rules import RuleColumns, any_rule_holds, rule_assignments

__all__ = [
    "STAGE",
    "ConsolidationPlan",
    "create_stage",
    "drop_stage",
    "plan_staged",
    "stage_file",
    "stage_pairs",
    "stage_report_rows",
]

STAGE = "consolidation_stage"


@dataclass
class ConsolidationPlan:
    """What a file would do: counts by outcome, and the first problems with their lines."""

    source: str
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)

    @property
    def bad_rows(self) -> int:
        return self.count("invalid") + self.count("refused")


def create_stage(connection: Connection, *, keep_after_commit: bool) -> None:
    """The temporary input table; ``keep_after_commit`` for runs that apply in many
    transactions (the planned-rows table made from it follows the same rule)."""
    drop_stage(connection)
    create_input(connection, _on_commit(connection, keep_after_commit))
    connection.info["consolidation_keep"] = keep_after_commit


def _on_commit(connection: Connection, keep: bool) -> str:
    if connection.dialect.name != "postgresql":
        return ""
    return " ON COMMIT PRESERVE ROWS" if keep else " ON COMMIT DROP"


def drop_stage(connection: Connection) -> None:
    schema = "pg_temp" if connection.dialect.name == "postgresql" else "temp"
    for table in (RAW, STAGE):
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {schema}.{table}")


def plan_staged(connection: Connection, *, source: str) -> ConsolidationPlan:
    """Classify every staged row; afterwards each row's outcome is final for a dry run."""
    ex = connection.exec_driver_sql
    ex(f"CREATE INDEX {RAW}_secondary ON {RAW} (secondary_key)")
    _mark_repeated_secondaries(connection)
    chained = _resolve_chains(connection)
    _build_stage(connection)
    _check_rules(connection)
    if chained:
        _propagate_chain_problems(connection)
    # The merges still to apply, by primary: a chunk is a range of primaries (never splitting
    # one), read through this index; rows that will not be applied leave it.
    ex(f"CREATE INDEX {STAGE}_pending ON {STAGE} (primary_id) WHERE outcome IS NULL")
    if connection.dialect.name == "postgresql":
        ex(f"ANALYZE {STAGE}")
    return read_plan(connection, source=source)


def read_plan(connection: Connection, *, source: str) -> ConsolidationPlan:
    """Counts by outcome (a merge still to apply counts as would_merge) and the first
    problems."""
    counts: dict[str, int] = dict(
        connection.exec_driver_sql(
            f"SELECT COALESCE(outcome, 'would_merge'), COUNT(*) FROM {STAGE} "
            f"GROUP BY COALESCE(outcome, 'would_merge')"
        ).all()
    )
    problems = [
        f"{source}:{line}: {outcome}: {detail}"
        for line, outcome, detail in connection.exec_driver_sql(
            f"SELECT line, outcome, detail FROM {STAGE} "
            f"WHERE outcome IN ('invalid', 'refused') ORDER BY line LIMIT 20"
        ).all()
    ]
    return ConsolidationPlan(source, sum(counts.values()), counts, problems)


def _mark_repeated_secondaries(connection: Connection) -> None:
    connection.exec_driver_sql(f"""
        UPDATE {RAW} SET outcome = 'invalid', rule = 'repeated_secondary', graph = 0,
               detail = 'secondary ' || {RAW}.secondary_name || ' already appears on line '
                        || d.first_line
        FROM (SELECT secondary_key, MIN(line) AS first_line
              FROM {RAW} WHERE graph = 1 GROUP BY secondary_key HAVING COUNT(*) > 1) d
        WHERE {RAW}.graph = 1 AND {RAW}.secondary_key = d.secondary_key
          AND {RAW}.line > d.first_line""")


def _resolve_chains(connection: Connection) -> bool:
    """Pointer jumping: each pass doubles how far a row has followed its chain (B into A, C into
    B: C ends at A), so log2(rows) passes settle every chain; a row still pointing at a secondary
    after that is on, or leads into, a cycle. False when the file has no chain at all (the first
    pass found no primary that is another row's secondary), so nothing can be a cycle either."""
    ex = connection.exec_driver_sql
    rows = ex(f"SELECT COUNT(*) FROM {RAW}").scalar_one()
    passes = 0
    for _ in range(max(rows, 1).bit_length() + 2):
        changed = ex(f"""
            UPDATE {RAW} SET final_key = p.final_key
            FROM {RAW} p
            WHERE p.graph = 1 AND {RAW}.graph = 1 AND p.secondary_key = {RAW}.final_key
              AND p.final_key <> {RAW}.final_key""").rowcount
        if not changed:
            break
        passes += 1
    if not passes:
        return False
    ex(f"""
        UPDATE {RAW} SET outcome = 'invalid', rule = 'cycle',
               detail = 'the chain of merges from this line runs in a cycle'
        WHERE graph = 1 AND final_key IN (SELECT secondary_key FROM {RAW} WHERE graph = 1)""")
    return True


def _build_stage(connection: Connection) -> None:
    """The planned rows in one pass (a new table is far cheaper than updating every row): both
    accounts as they are now. (``lower()`` on both sides lets SQLite use its expression index
    on usernames.)"""
    on_commit = _on_commit(connection, connection.info.get("consolidation_keep", False))
    connection.exec_driver_sql(f"""
        CREATE TEMPORARY TABLE {STAGE}{on_commit} AS
        SELECT r.*, p.id AS primary_id, p.status AS primary_status,
               p.username AS primary_username, s.id AS secondary_id,
               s.merged_into AS secondary_merged_into, s.username AS secondary_username
        FROM {RAW} r
        LEFT JOIN accounts p ON lower(p.username) = lower(r.final_key)
        LEFT JOIN accounts s ON lower(s.username) = lower(r.secondary_key)""")
    connection.exec_driver_sql(f"DROP TABLE {RAW}")


# The planner reads both accounts as they were when the stage was built.
PLANNED = RuleColumns(
    primary_id="primary_id",
    secondary_id=f"{STAGE}.secondary_id",
    secondary_merged_into="secondary_merged_into",
    primary_status="primary_status",
    stage=STAGE,
)


def _check_rules(connection: Connection) -> None:
    """All the rules in one pass over the planned rows."""
    connection.exec_driver_sql(
        f"UPDATE {STAGE} SET {rule_assignments(PLANNED)} "
        f"WHERE outcome IS NULL AND {any_rule_holds(PLANNED)}"
    )


def _propagate_chain_problems(connection: Connection) -> None:
    """A row whose chain passes through a row that will not be applied is not applied either:
    merging C straight into A while B stays apart is not what the file asked for."""
    connection.exec_driver_sql(f"CREATE INDEX {STAGE}_secondary ON {STAGE} (secondary_key)")
    while connection.exec_driver_sql(f"""
            UPDATE {STAGE} SET outcome = 'refused', rule = 'chain_not_applied',
                   detail = 'its chain goes through line ' || p.line || ', which is not applied'
            FROM {STAGE} p
            WHERE {STAGE}.outcome IS NULL AND p.graph = 1
              AND p.secondary_key = {STAGE}.primary_key
              AND p.outcome IN ('invalid', 'refused')""").rowcount:
        pass


def stage_report_rows(connection: Connection, *, applied: bool) -> Iterator[tuple[Any, ...]]:
    """(line, primary_username, secondary_username, outcome, detail) in line order, streamed."""
    pending = "merged" if applied else "would_merge"
    result = connection.exec_driver_sql(
        f"SELECT line, primary_name, secondary_name, COALESCE(outcome, '{pending}'), detail "
        f"FROM {STAGE} ORDER BY line",
        execution_options={"stream_results": True, "yield_per": 5000},
    )
    yield from result
