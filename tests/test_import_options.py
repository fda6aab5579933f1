"""``accounts import --dry-run --report --skip-invalid --failed-rows``: what ops staff use to
check a file, apply its good rows, and feed the corrected rest back in."""

from __future__ import annotations

import csv

from consolidation_support import dump_tables

HEADER = "username,email,full_name,tins\n"
ROWS = [
    "amy,amy@example.org,Amy Adams,061137531\n",
    '"bad, name",b@example.org,Bad Name,\n',
    "cal,cal@example.org,Cal Cole,12345\n",
    " dee ,dee@example.org,Dee Dunn,836576879:security_admin\n",
    "amy,amy2@example.org,Amy Again,\n",
]


def write(path, rows):
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


def read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_a_dry_run_writes_nothing_and_reports_every_row(cli, backend, tmp_path):
    path = write(tmp_path / "new.csv", ROWS)
    before = dump_tables(backend)
    result = cli(
        "accounts",
        "import",
        str(path),
        "--dry-run",
        "--skip-invalid",
        "--report",
        str(tmp_path / "r.csv"),
        "-f",
        "json",
    )
    assert result.exit_code == 7, result.stderr
    assert result.json() == {"file": str(path), "would_create": 2, "invalid": 3, "dry_run": True}
    assert dump_tables(backend) == before
    assert [row[:3] for row in read(tmp_path / "r.csv")] == [
        ["line", "username", "outcome"],
        ["2", "amy", "would_create"],
        ["3", "bad, name", "invalid"],
        ["4", "cal", "invalid"],
        ["5", "dee", "would_create"],
        ["6", "amy", "invalid"],
    ]
    assert read(tmp_path / "r.csv")[5][3] == "username 'amy' repeats line 2"


def test_a_bad_row_without_skip_invalid_writes_nothing_even_in_a_dry_run(cli, backend, tmp_path):
    path = write(tmp_path / "new.csv", ROWS)
    for extra in ([], ["--dry-run"]):
        result = cli("accounts", "import", str(path), *extra)
        assert result.exit_code == 5
        assert result.stderr.startswith(f"portalctl: {path}: 3 invalid rows, nothing was written")
    assert backend.scalar("SELECT COUNT(*) FROM accounts") == 0


def test_skipped_rows_go_to_the_failed_rows_file_and_fixed_they_import_exactly_the_rest(
    cli, backend, tmp_path
):
    path = write(tmp_path / "new.csv", ROWS)
    failed = tmp_path / "failed.csv"
    result = cli(
        "accounts",
        "import",
        str(path),
        "--skip-invalid",
        "--failed-rows",
        str(failed),
        "-f",
        "json",
    )
    assert result.exit_code == 7
    assert result.json()["accounts_created"] == 2 and result.json()["invalid"] == 3
    assert result.stderr.splitlines()[-1] == "portalctl: 3 row(s) not imported"
    assert failed.read_text(encoding="utf-8") == (
        HEADER
        + '"bad, name",b@example.org,Bad Name,\n'
        + "cal,cal@example.org,Cal Cole,12345\n"
        + "amy,amy2@example.org,Amy Again,\n"
    )
    fixed = failed.read_text().replace('"bad, name"', "bad.name").replace("12345", "061137531")
    fixed = fixed.replace("amy,amy2", "amy2,amy2")
    (tmp_path / "fixed.csv").write_text(fixed)
    again = cli("accounts", "import", str(tmp_path / "fixed.csv"), "-f", "json")
    assert again.exit_code == 0, again.stderr
    assert again.json()["accounts_created"] == 3
    usernames = [r["username"] for r in backend.rows("SELECT username FROM accounts ORDER BY 1")]
    assert usernames == ["amy", "amy2", "bad.name", "cal", "dee"]


def test_an_output_path_that_cannot_be_written_is_refused_before_anything(cli, backend, tmp_path):
    path = write(tmp_path / "new.csv", ROWS[:1])
    for option in ("--report", "--failed-rows"):
        result = cli("accounts", "import", str(path), option, str(tmp_path / "no" / "r.csv"))
        assert result.exit_code == 5 and "no such directory" in result.stderr
    assert backend.scalar("SELECT COUNT(*) FROM accounts") == 0


def test_a_file_refused_whole_puts_every_row_in_the_failed_rows_file(cli, backend, tmp_path):
    path = write(tmp_path / "new.csv", ROWS)
    failed = tmp_path / "failed.csv"
    result = cli("accounts", "import", str(path), "--failed-rows", str(failed))
    assert result.exit_code == 5
    assert failed.read_text(encoding="utf-8") == HEADER + "".join(ROWS)
