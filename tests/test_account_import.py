"""`accounts import`: the whole file is validated first, then loaded all or nothing."""

import pytest

HEADER = "username,email,full_name,tins,status,security_question,security_answer,password\n"


def good_rows(count: int, start: int = 0) -> str:
    return "".join(
        f"user{i},user{i}@example.org,User {i},{100000000 + i % 7}:user,active,,,\n"
        for i in range(start, start + count)
    )


def counts(backend) -> tuple:
    return tuple(
        backend.scalar(f"SELECT count(*) FROM {table}")
        for table in ("accounts", "account_tins", "organisations", "audit_log")
    )


def write(tmp_path, text: str, name: str = "accounts.csv", encoding="utf-8", newline=None):
    path = tmp_path / name
    with open(path, "w", encoding=encoding, newline=newline) as handle:
        handle.write(text)
    return path


def test_import_creates_accounts_links_and_organisations(cli, backend, tmp_path):
    path = write(
        tmp_path,
        HEADER + "amy,amy@example.org,Amy Adams,061137531:security_admin;836576879,active,"
        "Pet?,Rex,Secret-Rex-2026\n" + 'bob,bob@example.org,"Brown, Bob",,locked,,,\n',
    )
    result = cli("accounts", "import", str(path), "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json() == {
        "file": str(path),
        "accounts_created": 2,
        "links_created": 2,
        "organisations_created": 2,
        "invalid": 0,
        "dry_run": False,
    }
    amy = cli("accounts", "show", "amy", "-f", "json").json()
    assert amy["tins"] == [
        {"tin": "*****7531", "role": "security_admin"},
        {"tin": "*****6879", "role": "user"},
    ]
    assert amy["has_password"] is True and amy["security_question"] == "Pet?"
    assert cli("accounts", "verify", "amy", "--answer", "rex").exit_code == 0
    bob = cli("accounts", "show", "bob", "-f", "json").json()
    assert (bob["full_name"], bob["status"]) == ("Brown, Bob", "locked")
    actions = [r["action"] for r in backend.rows("SELECT action FROM audit_log ORDER BY id")]
    assert actions.count("account.import") == 2 and "account.import_file" in actions
    assert "Secret-Rex-2026" not in str(backend.rows("SELECT * FROM accounts"))


def test_bom_blank_lines_quoted_commas_and_windows_line_endings(cli, tmp_path):
    text = (
        "\ufeffUsername , EMAIL,Full_Name\r\n\r\n"
        'amy,amy@example.org,"Adams, Amy"\r\n\r\n'
        "bob,bob@example.org,Bob\r\n"
    )
    path = write(tmp_path, text, newline="")
    result = cli("accounts", "import", str(path), "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["accounts_created"] == 2
    assert cli("accounts", "show", "amy", "-f", "json").json()["full_name"] == "Adams, Amy"


def test_a_bad_tin_on_line_4000_writes_nothing(cli, backend, tmp_path):
    rows = good_rows(3998)
    path = write(tmp_path, HEADER + rows + "bad,bad@example.org,Bad,12345678,active,,,\n")
    before = counts(backend)
    result = cli("accounts", "import", str(path))
    assert result.exit_code == 5
    assert result.stderr.startswith(f"portalctl: {path}:4000: invalid TIN")
    assert counts(backend) == before


def test_duplicate_username_in_file_names_both_lines(cli, backend, tmp_path):
    path = write(tmp_path, HEADER + good_rows(2) + "USER1,x@example.org,X,,,,,\n")
    result = cli("accounts", "import", str(path))
    assert result.exit_code == 5
    assert f"{path}:4: username 'USER1' repeats line 3" in result.stderr
    assert counts(backend)[0] == 0


def test_username_already_in_database_is_refused(cli, backend, tmp_path):
    cli("accounts", "create", "-u", "user0", "-e", "u@example.org", "-n", "U")
    before = counts(backend)
    path = write(tmp_path, HEADER + good_rows(2))
    result = cli("accounts", "import", str(path))
    assert result.exit_code == 5 and f"{path}:2: username 'user0' is already taken" in result.stderr
    assert counts(backend) == before


@pytest.mark.parametrize(
    "header, message",
    [
        ("username,email\n", "missing column 'full_name'"),
        ("username,email,full_name,shoe_size\n", "unknown column 'shoe_size'"),
    ],
)
def test_header_problems_name_the_column(cli, backend, tmp_path, header, message):
    path = write(tmp_path, header + "a,b,c,d\n")
    result = cli("accounts", "import", str(path))
    assert result.exit_code == 5 and f"{path}:1: {message}" in result.stderr
    assert counts(backend) == (0, 0, 0, 0)


def test_many_bad_rows_are_all_counted_and_listed(cli, tmp_path):
    bad = "".join(f"u{i},not-an-email,U,,,,,\n" for i in range(25))
    result = cli("accounts", "import", str(write(tmp_path, HEADER + bad)))
    assert result.exit_code == 5
    assert "25 invalid rows, nothing was written" in result.stderr
    assert "... and 5 more" in result.stderr


def test_missing_file_and_invalid_utf8(cli, tmp_path):
    missing = cli("accounts", "import", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 5 and "no such file" in missing.stderr
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"username,email,full_name\nj\xf6rg,j@example.org,J\xf6rg\n")
    bad = cli("accounts", "import", str(path))
    assert bad.exit_code == 5 and f"{path}:2: not valid UTF-8" in bad.stderr


def test_role_status_and_question_rules(cli, tmp_path):
    cases = {
        "a1x,a1@example.org,A,061137531:owner,,,,\n": "invalid role 'owner'",
        "a2x,a2@example.org,A,,merged,,,\n": "invalid status 'merged'",
        "a3x,a3@example.org,A,,,Pet?,,\n": "go together",
        "a4x,a4@example.org,A,061137531;06-1137531,,,,\n": "listed twice",
    }
    for row, message in cases.items():
        result = cli("accounts", "import", str(write(tmp_path, HEADER + row)))
        assert result.exit_code == 5 and message in result.stderr, (row, result.stderr)


def _foreign_keys(backend) -> list[tuple]:
    """The foreign keys and indexes of the tables a bulk import loads, as the catalog defines
    them (PostgreSQL)."""
    if backend.name != "postgresql":
        return []
    return [
        tuple(row)
        for row in backend.rows(
            "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
            "WHERE conrelid IN ('account_tins'::regclass, 'audit_log'::regclass) AND contype = 'f' "
            "ORDER BY conname"
        )
    ] + [
        tuple(row)
        for row in backend.rows(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE tablename IN ('account_tins', 'audit_log') "
            "AND schemaname = current_schema() ORDER BY indexname"
        )
    ]


def test_a_big_file_checks_link_foreign_keys_once_and_restores_them(backend, tmp_path):
    """Above BULK_LINKS the links' foreign keys (and, into an empty table, the TIN index) are
    re-created after the insert (PostgreSQL); the result and the schema are as before."""
    from portalctl.domain.account_import import import_accounts_csv

    before = _foreign_keys(backend)
    # account_tins: two keys, its primary key and TIN index; audit_log: its key and 5 indexes
    assert backend.name == "sqlite" or len(before) == 10
    path = write(tmp_path, HEADER + good_rows(30))
    result = import_accounts_csv(backend.engine, path, operator="ops", bulk_links=1)
    assert (result["accounts_created"], result["links_created"]) == (30, 30)
    assert _foreign_keys(backend) == before
    pairs = backend.rows(
        "SELECT a.username, l.tin FROM account_tins l "
        "JOIN accounts a ON a.id = l.account_id ORDER BY a.username"
    )
    assert pairs[0]["username"] == "user0" and pairs[0]["tin"] == "100000000"


def test_rows_that_break_a_foreign_key_inside_the_bulk_block_roll_everything_back(backend):
    import sqlalchemy as sa

    from portalctl.core.staging import bulk_load

    before = _foreign_keys(backend)
    with pytest.raises(sa.exc.IntegrityError), backend.begin() as connection:
        with bulk_load(connection, "account_tins", rebuild_indexes=True):
            connection.execute(
                sa.text(
                    "INSERT INTO account_tins (account_id, tin, role, linked_at) "
                    "VALUES (424242, '836576879', 'user', CURRENT_TIMESTAMP)"
                )
            )
    assert backend.scalar("SELECT count(*) FROM account_tins") == 0
    assert _foreign_keys(backend) == before
