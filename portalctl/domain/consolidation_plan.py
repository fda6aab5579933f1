"""The consolidation planner: stage a file of merges, resolve chains to their final primary, and
classify every row against the rules of SPEC section 1 with a fixed number of set-based
statements (plus one per chain level), so a 1,000,000-row file plans in memory-bounded SQL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Connection

from portalctl.core.csvio import CsvRecord, open_csv_text, read_csv
from portalctl.core.errors import InvalidInput
from portalctl.core.staging import load_rows
from portalctl.core.tin import Tin

REQUIRED = ("primary_username", "secondary_username")
OPTIONAL = ("tin", "note")
RAW = "consolidation_input"
STAGE = "consolidation_stage"

# The file as read (RAW), then the planned rows (STAGE): outcome stays NULL for a merge still to
# apply (shown as would_merge, or merged once applied), else already_merged | invalid | refused;
# code: the exit code a problem maps to for `consolidate one` (3, 4, 5).
_RAW_COLUMNS = [
    ("line", "INTEGER"), ("primary_name", "VARCHAR(254)"), ("secondary_name", "VARCHAR(254)"),
    ("primary_key", "VARCHAR(254)"), ("secondary_key", "VARCHAR(254)"), ("tin", "CHAR(9)"),
    ("graph", "INTEGER"), ("final_key", "VARCHAR(254)"), ("outcome", "VARCHAR(16)"),
    ("code", "INTEGER"), ("detail", "VARCHAR(500)"),
]
_LOADED = [name for name, _ in _RAW_COLUMNS]
PROBLEMS = ("invalid", "refused")


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
    columns = ", ".join(f"{name} {sql_type}" for name, sql_type in _RAW_COLUMNS)
    drop_stage(connection)
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {RAW} ({columns}){_on_commit(connection, keep_after_commit)}")
    connection.info["consolidation_keep"] = keep_after_commit


def _on_commit(connection: Connection, keep: bool) -> str:
    if connection.dialect.name != "postgresql":
        return ""
    return " ON COMMIT PRESERVE ROWS" if keep else " ON COMMIT DROP"


def drop_stage(connection: Connection) -> None:
    schema = "pg_temp" if connection.dialect.name == "postgresql" else "temp"
    for table in (RAW, STAGE):
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {schema}.{table}")


def stage_file(connection: Connection, path: str | Path) -> str:
    """Stream a consolidation CSV into the stage (row-level checks done on the way); its name."""
    stream, source = open_csv_text(path)
    with stream:
        records = read_csv(stream, source, required=REQUIRED, optional=OPTIONAL)
        load_rows(connection, RAW, _LOADED, _stage_rows(records))
    return source


def stage_pairs(connection: Connection, pairs: Iterable[tuple[str, str, str | None]]) -> None:
    """Stage merges given directly as (primary, secondary, tin) (``consolidate one``)."""
    records = (CsvRecord(line, {"primary_username": p, "secondary_username": s, "tin": t or ""})
               for line, (p, s, t) in enumerate(pairs, start=1))
    load_rows(connection, RAW, _LOADED, _stage_rows(records))


def _stage_rows(records: Iterable[CsvRecord]) -> Iterator[tuple]:
    for record in records:
        values = record.values
        primary = values.get("primary_username", "")
        secondary = values.get("secondary_username", "")
        tin, outcome, code, detail = None, None, None, None
        if record.problem:
            outcome, code, detail = "invalid", 5, record.problem
        elif not primary or not secondary:
            outcome, code, detail = "invalid", 5, "primary_username and secondary_username " \
                                                  "are required"
        elif primary.lower() == secondary.lower():
            outcome, code, detail = "refused", 4, "an account cannot be merged into itself"
        if outcome is None and values.get("tin"):
            try:
                tin = Tin.parse(values["tin"]).reveal()
            except InvalidInput as error:
                outcome, code, detail = "invalid", 5, error.message
        yield (record.line, primary[:254], secondary[:254], primary.lower()[:254],
               secondary.lower()[:254], tin, 1 if outcome is None else 0,
               primary.lower()[:254], outcome, code, detail)


def plan_staged(connection: Connection, *, source: str) -> ConsolidationPlan:
    """Classify every staged row; afterwards each row's outcome is final for a dry run."""
    ex = connection.exec_driver_sql
    ex(f"CREATE INDEX {RAW}_secondary ON {RAW} (secondary_key)")
    _mark_repeated_secondaries(connection)
    _resolve_chains(connection)
    _build_stage(connection)
    _check_rules(connection)
    _propagate_chain_problems(connection)
    if connection.dialect.name == "postgresql":
        ex(f"ANALYZE {STAGE}")
    return read_plan(connection, source=source)


def read_plan(connection: Connection, *, source: str, applied: bool = False
              ) -> ConsolidationPlan:
    """Counts by outcome (merges still pending count as would_merge, or merged once
    ``applied``) and the first problems."""
    pending = "merged" if applied else "would_merge"
    counts = dict(connection.exec_driver_sql(
        f"SELECT COALESCE(outcome, '{pending}'), COUNT(*) FROM {STAGE} "
        f"GROUP BY COALESCE(outcome, '{pending}')").all())
    problems = [f"{source}:{line}: {outcome}: {detail}" for line, outcome, detail in
                connection.exec_driver_sql(
                    f"SELECT line, outcome, detail FROM {STAGE} "
                    f"WHERE outcome IN ('invalid', 'refused') ORDER BY line LIMIT 20").all()]
    return ConsolidationPlan(source, sum(counts.values()), counts, problems)


def _mark_repeated_secondaries(connection: Connection) -> None:
    connection.exec_driver_sql(f"""
        UPDATE {RAW} SET outcome = 'invalid', code = 5, graph = 0,
               detail = 'secondary ' || {RAW}.secondary_name || ' already appears on line '
                        || d.first_line
        FROM (SELECT secondary_key, MIN(line) AS first_line
              FROM {RAW} WHERE graph = 1 GROUP BY secondary_key HAVING COUNT(*) > 1) d
        WHERE {RAW}.graph = 1 AND {RAW}.secondary_key = d.secondary_key
          AND {RAW}.line > d.first_line""")


def _resolve_chains(connection: Connection) -> None:
    """Pointer jumping: each pass doubles how far a row has followed its chain (B into A, C into
    B: C ends at A), so log2(rows) passes settle every chain; a row still pointing at a secondary
    after that is on, or leads into, a cycle."""
    rows = connection.exec_driver_sql(f"SELECT COUNT(*) FROM {RAW}").scalar_one()
    for _ in range(max(rows, 1).bit_length() + 2):
        changed = connection.exec_driver_sql(f"""
            UPDATE {RAW} SET final_key = p.final_key
            FROM {RAW} p
            WHERE p.graph = 1 AND {RAW}.graph = 1 AND p.secondary_key = {RAW}.final_key
              AND p.final_key <> {RAW}.final_key""").rowcount
        if not changed:
            break
    connection.exec_driver_sql(f"""
        UPDATE {RAW} SET outcome = 'invalid', code = 5,
               detail = 'the chain of merges from this line runs in a cycle'
        WHERE graph = 1 AND final_key IN (SELECT secondary_key FROM {RAW} WHERE graph = 1)""")


def _build_stage(connection: Connection) -> None:
    """The planned rows in one pass (a new table is far cheaper than updating every row): both
    accounts as they are now, numbered by final primary so a chunk never splits one primary.
    (``lower()`` on both sides lets SQLite use its expression index on usernames.)"""
    on_commit = _on_commit(connection, connection.info.get("consolidation_keep", False))
    connection.exec_driver_sql(f"""
        CREATE TEMPORARY TABLE {STAGE}{on_commit} AS
        SELECT r.*, p.id AS primary_id, p.status AS primary_status,
               p.username AS primary_username, s.id AS secondary_id,
               s.merged_into AS secondary_merged_into, s.username AS secondary_username,
               ROW_NUMBER() OVER (ORDER BY p.id, r.line) AS seq
        FROM {RAW} r
        LEFT JOIN accounts p ON lower(p.username) = lower(r.final_key)
        LEFT JOIN accounts s ON lower(s.username) = lower(r.secondary_key)""")
    connection.exec_driver_sql(f"DROP TABLE {RAW}")
    connection.exec_driver_sql(f"CREATE INDEX {STAGE}_seq ON {STAGE} (seq)")
    connection.exec_driver_sql(f"CREATE INDEX {STAGE}_primary ON {STAGE} (primary_id)")
    connection.exec_driver_sql(f"CREATE INDEX {STAGE}_secondary ON {STAGE} (secondary_key)")


def _check_rules(connection: Connection) -> None:
    """The rules of SPEC section 1 against the database, first failing rule wins."""
    ex = connection.exec_driver_sql
    via = ("CASE WHEN final_key <> primary_key THEN ' (the end of the chain from '"
           " || primary_name || ')' ELSE '' END")
    for condition, outcome, code, detail in [
        ("primary_id IS NULL", "refused", 3, f"'no account ' || final_key || {via}"),
        ("secondary_id IS NULL", "refused", 3, "'no account ' || secondary_name"),
        ("secondary_merged_into = primary_id", "already_merged", 0,
         "'already merged into ' || final_key"),
        ("secondary_merged_into IS NOT NULL", "refused", 4,
         "'secondary ' || secondary_name || ' is already merged into another account'"),
        ("primary_status <> 'active'", "refused", 4,
         f"'primary ' || final_key || ' is ' || primary_status || ', not active' || {via}"),
        (f"tin IS NOT NULL AND NOT EXISTS (SELECT 1 FROM account_tins t WHERE "
         f"t.account_id = {STAGE}.secondary_id AND t.tin = {STAGE}.tin)", "refused", 4,
         "'secondary ' || secondary_name || ' does not hold TIN *****' || substr(tin, 6, 4)"),
    ]:
        ex(f"UPDATE {STAGE} SET outcome = '{outcome}', code = {code}, detail = {detail} "
           f"WHERE outcome IS NULL AND {condition}")


def _propagate_chain_problems(connection: Connection) -> None:
    """A row whose chain passes through a row that will not be applied is not applied either:
    merging C straight into A while B stays apart is not what the file asked for."""
    while connection.exec_driver_sql(f"""
            UPDATE {STAGE} SET outcome = 'refused', code = 4,
                   detail = 'its chain goes through line ' || p.line || ', which is not applied'
            FROM {STAGE} p
            WHERE {STAGE}.outcome IS NULL AND p.graph = 1
              AND p.secondary_key = {STAGE}.primary_key
              AND p.outcome IN ('invalid', 'refused')""").rowcount:
        pass


def stage_report_rows(connection: Connection, *, applied: bool) -> Iterator[tuple]:
    """(line, primary_username, secondary_username, outcome, detail) in line order, streamed."""
    pending = "merged" if applied else "would_merge"
    result = connection.exec_driver_sql(
        f"SELECT line, primary_name, secondary_name, COALESCE(outcome, '{pending}'), detail "
        f"FROM {STAGE} ORDER BY line",
        execution_options={"stream_results": True, "yield_per": 5000})
    yield from result
