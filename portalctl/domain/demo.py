"""A small, realistic data set built from the portal guides' examples, for ``db demo``."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.errors import Refused
from portalctl.core.schema import account_tins, accounts, organisations
from portalctl.core.tin import Tin
from portalctl.domain.account_changes import create_account
from portalctl.domain.audit import record_audit
from portalctl.domain.organisations import ensure_organisation

DEMO_PASSWORD = "Portal-Demo-2021"

# Organisations from the guides (836576879 is John Smith's practice; 061137531 is Ruth Goneh's).
_ORGANISATIONS = {
    "836576879": "Smith Family Practice",
    "061137531": "Ruth Goneh MD",
    "223456781": "Farmington Valley Pediatrics",
}

# (username, email, full name, [(tin, role)], security question, answer)
_ACCOUNTS = [
    (
        "johnsmith@gmail.com",
        "johnsmith@gmail.com",
        "John Smith",
        [("836576879", "security_admin")],
        "What's your maiden name?",
        "Smith",
    ),
    (
        "jsmith_old",
        "john.smith@smithfamilypractice.example",
        "John Smith",
        [("836576879", "user"), ("223456781", "user")],
        "What's your maiden name?",
        "Smith",
    ),
    (
        "john.smith.2019",
        "johnsmith@gmail.com",
        "John Smith",
        [("223456781", "security_admin")],
        None,
        None,
    ),
    (
        "james.smith",
        "james.smith@goneh-practice.example",
        "James Smith",
        [("223456781", "user")],
        "What city were you born in?",
        "Hartford",
    ),
    (
        "ruth.goneh",
        "ruth.goneh@goneh-practice.example",
        "Ruth Goneh",
        [("061137531", "user")],
        None,
        None,
    ),
]

_FIRST = [
    "Maria",
    "David",
    "Linda",
    "Robert",
    "Patricia",
    "Michael",
    "Jennifer",
    "William",
    "Elizabeth",
    "Joseph",
    "Susan",
    "Thomas",
    "Karen",
    "Charles",
    "Nancy",
    "Daniel",
    "Priya",
    "Wei",
    "Fatima",
    "Carlos",
    "Aisha",
    "Kenji",
    "Olga",
    "Tariq",
]
_LAST = [
    "Garcia",
    "Johnson",
    "Brown",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Nguyen",
    "Patel",
    "Kowalski",
    "Okafor",
    "Haddad",
    "Smith",
    "Goneh",
]
_PRACTICES = [
    "Pediatrics",
    "Cardiology",
    "Family Medicine",
    "Orthopedics",
    "Dermatology",
    "Behavioral Health",
    "Radiology",
    "Physical Therapy",
]
_TOWNS = ["Hartford", "Farmington", "New Haven", "Stamford", "Waterbury", "Norwalk", "Bristol"]


def load_demo(
    connection: Connection,
    *,
    operator: str,
    generated: int = 200,
    seed: int = 7,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Load the guides' accounts plus ``generated`` random ones; refuses when already loaded."""
    now = now or utc_now()
    if connection.execute(
        sa.select(accounts.c.id).where(sa.func.lower(accounts.c.username) == "johnsmith@gmail.com")
    ).first():
        raise Refused("the demo data is already loaded in this database")
    for tin, name in _ORGANISATIONS.items():
        ensure_organisation(connection, Tin(tin), now=now, name=name)
    for username, email, full_name, links, question, answer in _ACCOUNTS:
        create_account(
            connection,
            operator=operator,
            username=username,
            email=email,
            full_name=full_name,
            tins=[(Tin(t), role) for t, role in links],
            password=DEMO_PASSWORD,
            security_question=question,
            security_answer=answer,
            now=now,
        )
    organisation_count = _generate(connection, generated=generated, seed=seed, now=now)
    record_audit(
        connection,
        operator=operator,
        action="db.demo",
        target="database",
        now=now,
        details={"generated_accounts": generated},
    )
    return {
        "accounts": len(_ACCOUNTS) + generated,
        "organisations": len(_ORGANISATIONS) + organisation_count,
        "password_of_guide_accounts": DEMO_PASSWORD,
    }


def _generate(connection: Connection, *, generated: int, seed: int, now: datetime) -> int:
    """Bulk-insert generated accounts, each holding one to three of a pool of organisations."""
    rng = random.Random(seed)
    pool_size = max(1, generated // 4)
    tins: list[str] = []
    while len(tins) < pool_size:
        candidate = f"{rng.randrange(10, 99)}{rng.randrange(0, 10**7):07d}"
        if candidate not in tins and candidate not in _ORGANISATIONS:
            tins.append(candidate)
    connection.execute(
        organisations.insert(),
        [
            {
                "tin": tin,
                "name": f"{rng.choice(_TOWNS)} {rng.choice(_PRACTICES)}",
                "created_at": now,
            }
            for tin in tins
        ],
    )
    rows: list[dict[str, Any]] = []
    used: set[str] = set()
    while len(rows) < generated:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        username = f"{first[0]}{last}{rng.randrange(1, 1000)}".lower()
        if username in used:
            continue
        used.add(username)
        rows.append(
            {
                "username": username,
                "email": f"{username}@example.org",
                "full_name": f"{first} {last}",
                "status": rng.choices(["active", "locked", "disabled"], weights=[90, 5, 5])[0],
                "created_at": now,
                "updated_at": now,
            }
        )
    if not rows:
        return len(tins)
    connection.execute(accounts.insert(), rows)
    ids = dict(
        connection.execute(sa.select(sa.func.lower(accounts.c.username), accounts.c.id)).all()
    )
    links = []
    for row in rows:
        for index, tin in enumerate(rng.sample(tins, k=min(len(tins), rng.randint(1, 3)))):
            links.append(
                {
                    "account_id": ids[row["username"]],
                    "tin": tin,
                    "linked_at": now,
                    "role": "security_admin" if index == 0 and rng.random() < 0.3 else "user",
                }
            )
    connection.execute(account_tins.insert(), links)
    return len(tins)
