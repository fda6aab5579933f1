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
STAGE = "consolidation_stage"

# outcome: NULL while undecided, then would_merge | already_merged | invalid | refused (and
# merged once applied); code: the exit code a problem maps to for `consolidate one` (3, 4, 5).
_STAGE_COLUMNS = [
    ("line", "INTEGER PRIMARY KEY"), ("primary_name", "VARCHAR(254)"),
    ("secondary_name", "VARCHAR(254)"), ("primary_key", "VARCHAR(254)"),
    ("secondary_key", "VARCHAR(254)"), ("tin", "CHAR(9)"), ("graph", "INTEGER"),
    ("final_key", "VARCHAR(254)"), ("outcome", "VARCHAR(16)"), ("code", "INTEGER"),
    ("detail", "VARCHAR(500)"), ("primary_id", "BIGINT"), ("primary_status", "VARCHAR(16)"),
    ("secondary_id", "BIGINT"), ("secondary_merged_into", "BIGINT"), ("seq", "INTEGER"),
]
_LOADED = ["line", "primary_name", "secondary_name", "primary_key", "secondary_key", "tin",
           "graph", "final_key", "outcome", "code", "detail"]
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
    """A temporary staging table; ``keep_after_commit`` for runs that apply in many transactions."""
    columns = ", ".join(f"{name} {sql_type}" for name, sql_type in _STAGE_COLUMNS)
    if connection.dialect.name == "postgresql":
        on_commit = "PRESERVE ROWS" if keep_after_commit else "DROP"
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS pg_temp.{STAGE}")
        connection.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {STAGE} ({columns}) ON COMMIT {on_commit}")
    else:
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{STAGE}")
        connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {STAGE} ({columns})")


def drop_stage(connection: Connection) -> None:
    schema = "pg_temp" if connection.dialect.name == "postgresql" else "temp"
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {schema}.{STAGE}")


def stage_file(connection: Connection, path: str | Path) -> str:
    """Stream a consolidation CSV into the stage (row-level checks done on the way); its name."""
    stream, source = open_csv_text(path)
    with stream:
        records = read_csv(stream, source, required=REQUIRED, optional=OPTIONAL)
        load_rows(connection, STAGE, _LOADED, _stage_rows(records))
    return source


def stage_pairs(connection: Connection, pairs: Iterable[tuple[str, str, str | None]]) -> None:
    """Stage merges given directly as (primary, secondary, tin) (``consolidate one``)."""
    records = (CsvRecord(line, {"primary_username": p, "secondary_username": s, "tin": t or ""})
               for line, (p, s, t) in enumerate(pairs, start=1))
    load_rows(connection, STAGE, _LOADED, _stage_rows(records))


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
    ex(f"CREATE INDEX {STAGE}_secondary ON {STAGE} (secondary_key)")
    ex(f"CREATE INDEX {STAGE}_final ON {STAGE} (final_key)")
    _mark_repeated_secondaries(connection)
    _resolve_chains(connection)
    _check_rules(connection)
    _propagate_chain_problems(connection)
    ex(f"UPDATE {STAGE} SET outcome = 'would_merge' WHERE outcome IS NULL")
    _number_merges(connection)
    return read_plan(connection, source=source)


def read_plan(connection: Connection, *, source: str) -> ConsolidationPlan:
    counts = dict(connection.exec_driver_sql(
        f"SELECT outcome, COUNT(*) FROM {STAGE} GROUP BY outcome").all())
    problems = [f"{source}:{line}: {outcome}: {detail}" for line, outcome, detail in
                connection.exec_driver_sql(
                    f"SELECT line, outcome, detail FROM {STAGE} "
                    f"WHERE outcome IN ('invalid', 'refused') ORDER BY line LIMIT 20").all()]
    return ConsolidationPlan(source, sum(counts.values()), counts, problems)


def _mark_repeated_secondaries(connection: Connection) -> None:
    connection.exec_driver_sql(f"""
        UPDATE {STAGE} SET outcome = 'invalid', code = 5, graph = 0,
               detail = 'secondary ' || {STAGE}.secondary_name || ' already appears on line '
                        || d.first_line
        FROM (SELECT secondary_key, MIN(line) AS first_line
              FROM {STAGE} WHERE graph = 1 GROUP BY secondary_key HAVING COUNT(*) > 1) d
        WHERE {STAGE}.graph = 1 AND {STAGE}.secondary_key = d.secondary_key
          AND {STAGE}.line > d.first_line""")


def _resolve_chains(connection: Connection) -> None:
    """Pointer jumping: each pass doubles how far a row has followed its chain (B into A, C into
    B: C ends at A), so log2(rows) passes settle every chain; a row still pointing at a secondary
    after that is on, or leads into, a cycle."""
    rows = connection.exec_driver_sql(f"SELECT COUNT(*) FROM {STAGE}").scalar_one()
    for _ in range(max(rows, 1).bit_length() + 2):
        changed = connection.exec_driver_sql(f"""
            UPDATE {STAGE} SET final_key = p.final_key
            FROM {STAGE} p
            WHERE p.graph = 1 AND {STAGE}.graph = 1 AND p.secondary_key = {STAGE}.final_key
              AND p.final_key <> {STAGE}.final_key""").rowcount
        if not changed:
            break
    connection.exec_driver_sql(f"""
        UPDATE {STAGE} SET outcome = 'invalid', code = 5,
               detail = 'the chain of merges from this line runs in a cycle'
        WHERE graph = 1 AND final_key IN (SELECT secondary_key FROM {STAGE} WHERE graph = 1)""")


def _check_rules(connection: Connection) -> None:
    """The rules of SPEC section 1 against the database, first failing rule wins."""
    ex = connection.exec_driver_sql
    ex(f"""UPDATE {STAGE} SET primary_id = a.id, primary_status = a.status
           FROM accounts a WHERE lower(a.username) = {STAGE}.final_key
             AND {STAGE}.outcome IS NULL""")
    ex(f"""UPDATE {STAGE} SET secondary_id = a.id, secondary_merged_into = a.merged_into
           FROM accounts a WHERE lower(a.username) = {STAGE}.secondary_key
             AND {STAGE}.outcome IS NULL""")
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


def _number_merges(connection: Connection) -> None:
    """Number the merges grouped by final primary, so a chunk never splits one primary's rows."""
    connection.exec_driver_sql(f"""
        UPDATE {STAGE} SET seq = r.rn
        FROM (SELECT line, ROW_NUMBER() OVER (ORDER BY primary_id, line) AS rn
              FROM {STAGE} WHERE outcome = 'would_merge') r
        WHERE {STAGE}.line = r.line""")
    connection.exec_driver_sql(f"CREATE INDEX {STAGE}_seq ON {STAGE} (seq)")
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"ANALYZE {STAGE}")


def stage_report_rows(connection: Connection) -> Iterator[tuple]:
    """(line, primary_username, secondary_username, outcome, detail) in line order, streamed."""
    result = connection.exec_driver_sql(
        f"SELECT line, primary_name, secondary_name, outcome, detail FROM {STAGE} ORDER BY line",
        execution_options={"stream_results": True, "yield_per": 5000})
    yield from result
