"""``portalctl flow consolidate`` (seed 000) driven without a terminal: each answer one line of
stdin, the email code read out of the message a real SMTP server has just received, as the
caller reads it out; on both backends."""

import json

import pytest
from credentials_support import PASSWORD, code_in
from flow_support import (
    ANSWER,
    EXISTING,
    OLD,
    PIN,
    TIN_OLD,
    TIN_SHARED,
    emailed_code,
    flow_records,
    flow_runner,
    last_json,
    seed_000,
)
from smtp_server import ScriptedHandler, SmtpServer

PAGES = [
    "Account Lookup\nWe need to look up your information before you begin. Enter your "
    "username, and any Tax ID number associated with your account.",
    "Account Verification\nPlease enter the answer to your security question or your pin "
    "below to verify your account.",
    "What's your maiden name? *: ",
    "Email Address Verification\nPlease enter your own email address and not a shared one.",
    "Security Code Verification\nWe've sent a code to your email address johnsmith@gmail.com.",
    "Verify Username and Password\nEnter username and password for your existing account.",
    "'jsmith_old' will be merged into 'johnsmith@gmail.com': Tax IDs *****6781 (user), "
    "*****6879 (user) move to it.",
    "Merge 'jsmith_old' into 'johnsmith@gmail.com'? (yes/no): ",
    "Thank You\n'jsmith_old' is merged into 'johnsmith@gmail.com'",
]


@pytest.fixture
def flow_cli(backend, monkeypatch):
    return flow_runner(backend, monkeypatch)


@pytest.fixture
def server():
    with SmtpServer(ScriptedHandler()) as running:
        yield running


@pytest.fixture
def consolidate(cli, flow_cli, server):
    """``consolidate(answers, *options)``: the flow against the seed's two accounts, its email
    over the SMTP server."""
    seed_000(cli)

    def run(answers, *options, env=None):
        return flow_cli(
            "flow",
            "consolidate",
            "-f",
            "json",
            *options,
            answers=answers,
            env={"PORTALCTL_SMTP_URL": server.url, **(env or {})},
        )

    return run


def every_answer(backend, server):
    """The answers of the whole flow, in the order it asks."""
    return [OLD, TIN_SHARED, ANSWER, EXISTING, EXISTING, emailed_code(backend, server)] + [
        EXISTING,
        PASSWORD,
        "yes",
    ]


def state(backend):
    """What a merge changes: statuses, merged_into, links."""
    return {
        "accounts": backend.rows(
            "SELECT username, status, merged_into FROM accounts ORDER BY username"
        ),
        "links": backend.rows(
            "SELECT a.username, l.tin, l.role FROM account_tins l "
            "JOIN accounts a ON a.id = l.account_id ORDER BY a.username, l.tin"
        ),
    }


def test_seed_000_end_to_end_merges_in_the_guides_order_and_words(consolidate, backend, server):
    result = consolidate(every_answer(backend, server))
    assert result.exit_code == 0, result.stderr
    record = last_json(result.stdout)
    assert record == {
        "flow_id": record["flow_id"],
        "flow": "consolidate",
        "outcome": "merged",
        "secondary": OLD,
        "primary": EXISTING,
        "tin": "*****6879",
        "links_moved": [
            {"tin": "*****6781", "role": "user"},
            {"tin": "*****6879", "role": "user"},
        ],
    }
    assert result.stderr.startswith(
        "Provider Portal - Existing User - Consolidating Existing Accounts\n"
        f"Flow {record['flow_id']} (`portalctl audit --flow {record['flow_id']}`"
    )
    positions = [result.stderr.find(page) for page in PAGES]
    assert -1 not in positions and positions == sorted(positions), positions
    [message] = server.handler.received
    assert server.handler.envelopes[0][1] == [EXISTING]
    assert code_in(message) not in result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr and ANSWER not in result.stderr
    assert backend.rows("SELECT status, email FROM accounts WHERE username = :u", u=OLD) == [
        {"status": "merged", "email": EXISTING}
    ]
    assert state(backend)["links"] == [
        {"username": EXISTING, "tin": TIN_OLD, "role": "user"},
        {"username": EXISTING, "tin": TIN_SHARED, "role": "security_admin"},
    ]


def test_every_audit_record_of_the_flow_carries_its_id_and_audit_flow_shows_it_in_order(
    consolidate, cli, backend, server
):
    before = backend.scalar("SELECT max(id) FROM audit_log")
    flow_id = last_json(consolidate(every_answer(backend, server)).stdout)["flow_id"]
    assert (
        backend.scalar(
            "SELECT count(*) FROM audit_log WHERE id > :b AND (flow_id IS NULL OR flow_id <> :f)",
            b=before,
            f=flow_id,
        )
        == 0
    )
    trail = cli("audit", "--flow", flow_id, "-f", "json")
    assert trail.exit_code == 0, trail.stderr
    assert [(r["action"], r["target"]) for r in trail.json()] == [
        ("flow.start", f"flow:{flow_id}"),
        ("account.verify", f"account:{OLD}"),
        ("account_code.issue", f"account:{OLD}"),
        ("mail.send", "outbox"),
        ("account.confirm_email", f"account:{OLD}"),
        ("account.verify", f"account:{EXISTING}"),
        ("account.consolidate", f"account:{OLD}"),
        ("flow.end", f"flow:{flow_id}"),
    ]
    assert {r["flow_id"] for r in trail.json()} == {flow_id}
    merge = trail.json()[-2]["details"]
    assert (merge["verification"], merge["primary"], merge["secondary"]) == (
        "verified",
        EXISTING,
        OLD,
    )
    assert trail.json()[-1]["details"]["outcome"] == "merged"
    table = cli("audit", "--flow", flow_id)
    assert table.stdout.splitlines()[0].split()[-1] == "flow_id"


def test_a_wrong_answer_is_counted_told_and_asked_again(consolidate, backend, server):
    answers = every_answer(backend, server)
    answers[2:2] = ["Jones"]
    result = consolidate(answers)
    assert result.exit_code == 0, result.stderr
    assert "What's your maiden name? *: \nnot verified (1 failed attempt(s))\nWhat's your" in (
        result.stderr
    )
    flow_id = last_json(result.stdout)["flow_id"]
    verified = [
        json.loads(r["details"]) if isinstance(r["details"], str) else r["details"]
        for r in backend.rows(
            "SELECT details FROM audit_log WHERE action = 'account.verify' AND flow_id = :f "
            "ORDER BY id",
            f=flow_id,
        )
    ]
    assert [(d["method"], d["verified"]) for d in verified] == [
        ("security_answer", False),
        ("security_answer", True),
        ("password", True),
    ]


def test_a_lookup_that_finds_nothing_is_told_and_asked_again(consolidate, backend, server):
    answers = every_answer(backend, server)
    answers[0:0] = [OLD, TIN_OLD[:-1] + "0"]
    result = consolidate(answers)
    assert result.exit_code == 0, result.stderr
    assert "no active account 'jsmith_old' holding TIN *****6780\nUsername *: " in result.stderr


def test_the_lockout_ends_the_flow_with_the_verify_exit_code(consolidate, backend):
    result = consolidate(
        [OLD, TIN_SHARED, "Jones", "Brown", ANSWER],
        env={"PORTALCTL_ACCOUNT_MAX_FAILURES": "2"},
    )
    assert result.exit_code == 4
    assert result.stderr.endswith(
        "portalctl: not verified (2 failed attempt(s), account now locked)\n"
    )
    assert last_json(result.stdout)["outcome"] == "refused"
    assert backend.scalar("SELECT status FROM accounts WHERE username = :u", u=OLD) == "locked"


def test_request_new_code_replaces_the_first_code(consolidate, backend, server):
    first = lambda: code_in(server.handler.received[0])  # noqa: E731
    second = lambda: code_in(server.handler.received[1])  # noqa: E731
    answers = [OLD, TIN_SHARED, ANSWER, EXISTING, EXISTING, "new", first, second]
    result = consolidate(answers + [EXISTING, PASSWORD, "yes"])
    assert result.exit_code == 0, result.stderr
    assert "We've sent a new code to your email address johnsmith@gmail.com." in result.stderr
    assert "email verification code refused: replaced; request a new one\n" in result.stderr
    assert len(server.handler.received) == 2
    assert backend.rows("SELECT status FROM account_codes ORDER BY id") == [
        {"status": "replaced"},
        {"status": "used"},
    ]
    assert last_json(result.stdout)["outcome"] == "merged"


def test_back_at_the_code_corrects_the_address(consolidate, backend, server):
    typo = "johnsmith@gmial.com"
    answers = [OLD, TIN_SHARED, ANSWER, typo, typo, "back", EXISTING, EXISTING]
    answers += [emailed_code(backend, server), EXISTING, PASSWORD, "yes"]
    result = consolidate(answers)
    assert result.exit_code == 0, result.stderr
    assert [recipients for _, recipients in server.handler.envelopes] == [[typo], [EXISTING]]
    assert result.stderr.count("Email Address Verification\n") == 2
    assert backend.rows("SELECT email, status FROM account_codes ORDER BY id") == [
        {"email": typo, "status": "replaced"},
        {"email": EXISTING, "status": "used"},
    ]


def test_email_entered_twice_must_match(consolidate, backend, server):
    answers = [OLD, TIN_SHARED, ANSWER, EXISTING, "john@other.example", EXISTING, EXISTING]
    answers += [emailed_code(backend, server), EXISTING, PASSWORD, "yes"]
    result = consolidate(answers)
    assert result.exit_code == 0, result.stderr
    assert "The two email addresses differ: enter the address twice.\nEmail *: " in result.stderr


PROMPTS = ["username", "tin", "answer", "email", "verify", "code", "existing", "password", "yes"]


@pytest.mark.parametrize("at", range(len(PROMPTS)), ids=PROMPTS)
def test_cancel_at_any_prompt_changes_nothing_beyond_the_audited_checks(
    consolidate, backend, server, at
):
    before = state(backend)
    answers = every_answer(backend, server)[:at] + ["cancel"]
    result = consolidate(answers)
    assert result.exit_code == 130
    record = last_json(result.stdout)
    assert record["outcome"] == "cancelled"
    assert result.stderr.endswith(
        f"portalctl: flow {record['flow_id']} cancelled: nothing was changed beyond its "
        "audited checks\n"
    )
    assert state(backend) == before
    actions = [r["action"] for r in flow_records(backend, record["flow_id"])]
    assert actions[0] == "flow.start" and actions[-1] == "flow.end"
    assert set(actions[1:-1]) <= {
        "account.verify",
        "account_code.issue",
        "mail.send",
        "account.confirm_email",
    }


def test_ctrl_c_at_a_prompt_ends_the_flow_as_cancelled(consolidate, backend):
    def ctrl_c():
        raise KeyboardInterrupt

    before = state(backend)
    result = consolidate([OLD, TIN_SHARED, ctrl_c])
    assert result.exit_code == 130
    assert last_json(result.stdout)["outcome"] == "cancelled"
    assert "interrupted: nothing was changed beyond its audited checks" in result.stderr
    assert state(backend) == before


def test_no_at_the_confirmation_changes_nothing_and_exits_0_like_every_confirmation(
    consolidate, backend, server
):
    answers = every_answer(backend, server)
    answers[-1] = "no"
    result = consolidate(answers)
    assert result.exit_code == 0 and last_json(result.stdout)["outcome"] == "cancelled"
    assert result.stderr.endswith("cancelled: nothing was changed beyond its audited checks\n")
    assert backend.scalar("SELECT status FROM accounts WHERE username = :u", u=OLD) == "active"


def test_options_give_every_answer_but_the_secrets(consolidate, backend, server):
    options = ["--username", OLD, "--tin", TIN_SHARED, "--email", EXISTING]
    options += ["--existing-username", EXISTING, "--yes"]
    result = consolidate([ANSWER, emailed_code(backend, server), PASSWORD], *options)
    assert result.exit_code == 0, result.stderr
    assert last_json(result.stdout)["outcome"] == "merged"
    for prompt in ("Username *", "Tax ID Number *", "Email *", "(yes/no)"):
        assert prompt not in result.stderr
    assert "Password *: " in result.stderr


def test_the_pin_instead_of_the_security_question(consolidate, backend, server):
    answers = every_answer(backend, server)
    answers[2] = PIN
    result = consolidate(answers, "--pin")
    assert result.exit_code == 0, result.stderr
    assert "PIN *: " in result.stderr and "maiden name" not in result.stderr
    assert (
        backend.scalar(
            "SELECT count(*) FROM verifications v JOIN accounts a ON a.id = v.account_id "
            "WHERE a.username = :u AND v.method = 'pin'",
            u=OLD,
        )
        == 1
    )


def test_out_of_answers_after_a_refusal_ends_with_that_refusal(consolidate):
    result = consolidate([OLD, TIN_SHARED, "Jones"])
    assert result.exit_code == 4
    assert result.stderr.endswith("portalctl: not verified (1 failed attempt(s))\n")
    assert last_json(result.stdout)["outcome"] == "refused"


def test_out_of_answers_at_a_prompt_is_a_usage_error(consolidate):
    result = consolidate([])
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "portalctl: no answer on standard input for 'Username' (the flow reads one line for "
        "each answer it asks for, in order)\n"
    )
    assert last_json(result.stdout)["outcome"] == "cancelled"


def test_a_lookup_given_by_options_that_finds_nothing_exits_3(consolidate):
    result = consolidate([], "--username", "ghost", "--tin", TIN_SHARED)
    assert result.exit_code == 3
    assert result.stderr.endswith("portalctl: no active account 'ghost' holding TIN *****6879\n")
    assert last_json(result.stdout)["outcome"] == "refused"


def test_the_same_account_as_existing_one_is_refused_as_a_self_merge(consolidate, backend, server):
    answers = every_answer(backend, server)
    answers[6:8] = [OLD, PASSWORD]
    result = consolidate(answers)
    assert result.exit_code == 4
    assert last_json(result.stdout)["outcome"] == "refused"
    assert backend.scalar("SELECT status FROM accounts WHERE username = :u", u=OLD) == "active"


def test_an_invalid_tin_is_asked_again_but_given_by_an_option_exits_5(consolidate, backend, server):
    answers = every_answer(backend, server)
    answers[1:1] = ["83657687"]
    result = consolidate(answers)
    assert result.exit_code == 0, result.stderr
    assert "Tax ID Number *: \ninvalid TIN" in result.stderr
    given = consolidate([OLD, OLD], "--tin", "12")
    assert given.exit_code == 5 and "\nportalctl: invalid TIN" in given.stderr
    assert given.stderr.count("Username *: ") == 1


def test_an_email_that_cannot_be_delivered_now_is_said_and_new_tries_again(cli, flow_cli, backend):
    seed_000(cli)
    with SmtpServer(ScriptedHandler(["451 4.3.0 try later"])) as server:
        answers = [OLD, TIN_SHARED, ANSWER, EXISTING, EXISTING, "new"]
        answers += [emailed_code(backend, server), EXISTING, PASSWORD, "yes"]
        result = flow_cli(
            "flow", "consolidate", answers=answers, env={"PORTALCTL_SMTP_URL": server.url}
        )
    assert result.exit_code == 0, result.stderr
    assert (
        "could not be delivered now (" in result.stderr
        and "it stays queued for `mail send`: type 'new' to try again, or 'cancel'.\n"
        "Verification Code *: "
        in result.stderr
    )
    tried_again = result.stderr.index("type 'new' to try again")
    assert tried_again < result.stderr.index("Security Code Verification\nWe've sent a code")
    assert len(server.handler.received) == 1
    assert backend.scalar("SELECT status FROM accounts WHERE username = :u", u=OLD) == "merged"
