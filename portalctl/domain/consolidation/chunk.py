"""One chunk of a consolidation run: the merges of a range of primary ids still to apply, in
one transaction, and the SQL fragments that name them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult

from portalctl.core.schema import UTCDateTime
from portalctl.domain.consolidation.plan import STAGE

IN_CHUNK = "s.primary_id BETWEEN :lo AND :hi AND s.outcome IS NULL"
CHUNK_SECONDARIES = f"SELECT s.secondary_id FROM {STAGE} s WHERE {IN_CHUNK}"


@dataclass(frozen=True)
class Chunk:
    """The merges of primaries ``lo``..``hi`` still to apply, in the caller's transaction."""

    connection: Connection
    lo: int
    hi: int
    batch_id: int | None
    operator: str
    now: datetime
    flow_id: str | None = None  # the guided flow the merges' audit records belong to
    # Added to the merges' audit details (``consolidate one``: what the verification gate said).
    audit_details: dict[str, str] = field(default_factory=dict)

    def run(self, sql: str) -> CursorResult[Any]:
        statement = sa.text(sql)
        if ":now" in sql:
            statement = statement.bindparams(sa.bindparam("now", type_=UTCDateTime))
        params = {
            "lo": self.lo,
            "hi": self.hi,
            "now": self.now,
            "operator": self.operator,
            "batch": self.batch_id,
            "flow": self.flow_id,
            **{f"detail_{key}": value for key, value in self.audit_details.items()},
        }
        return self.connection.execute(statement, params)

    def extra_details(self) -> str:
        """The ``audit_details`` as further key/value arguments of ``json_object()``."""
        assert all(key.isidentifier() for key in self.audit_details)  # names from the code
        return "".join(f", '{key}', CAST(:detail_{key} AS TEXT)" for key in self.audit_details)

    def json_object(self) -> str:
        postgres = self.connection.dialect.name == "postgresql"
        return "jsonb_build_object" if postgres else "json_object"


def record_merges_sql(*, links_moved: str, joined: str = "") -> str:
    """The INSERT of the chunk's consolidation records; ``links_moved`` counts each
    secondary's links from what ``joined`` adds to the stage ``s``."""
    return f"""
        INSERT INTO consolidations (batch_id, line, primary_id, secondary_id, tin,
                                    links_moved, operator, merged_at)
        SELECT CAST(:batch AS BIGINT), s.line, s.primary_id, s.secondary_id, s.tin,
               {links_moved}, :operator, :now
        FROM {STAGE} s {joined}
        WHERE {IN_CHUNK}"""
