"""Settings: the environment, then .env, with command-line options winning (SPEC section 2)."""

import os

from portalctl.core.config import load_settings


def test_env_file_fills_what_the_environment_leaves_unset(isolated, monkeypatch):
    (isolated / ".env").write_text("PORTALCTL_OPERATOR=from-file\nPORTALCTL_CODE_DIGITS=9\n")
    monkeypatch.setenv("PORTALCTL_CODE_DIGITS", "10")
    settings = load_settings()
    assert settings.operator == "from-file"
    assert settings.code_digits == 10


def test_options_win_and_operator_falls_back_to_login_name(isolated, monkeypatch):
    monkeypatch.setenv("PORTALCTL_OPERATOR", "from-env")
    assert load_settings(overrides={"PORTALCTL_OPERATOR": "from-option"}).operator == "from-option"
    monkeypatch.delenv("PORTALCTL_OPERATOR")
    assert load_settings().operator  # the OS login name
    assert load_settings().database_url == "sqlite:///portal.db"


def test_cli_reads_env_file_option_and_operator_option(bare_cli, isolated):
    url = f"sqlite:///{isolated / 'other.db'}"
    (isolated / "custom.env").write_text(
        f"PORTALCTL_DATABASE_URL={url}\nPORTALCTL_OPERATOR=file-operator\n"
    )
    assert bare_cli("--env-file", "custom.env", "db", "init").exit_code == 0
    assert (isolated / "other.db").exists()
    created = bare_cli(
        "--env-file",
        "custom.env",
        "--operator",
        "cli-op",
        "accounts",
        "create",
        "-u",
        "amy",
        "-e",
        "amy@example.org",
        "-n",
        "Amy",
        env={"PORTALCTL_OPERATOR": None},
    )
    assert created.exit_code == 0, created.stderr
    audit = bare_cli("--env-file", "custom.env", "audit", "-f", "json").json()
    assert [a["operator"] for a in audit] == ["cli-op"]
    missing = bare_cli("--env-file", "nope.env", "db", "status")
    assert missing.exit_code == 2 and "nope.env" in missing.stderr


def test_db_init_on_a_new_sqlite_database_creates_a_private_secret_key(bare_cli, isolated):
    result = bare_cli(
        "--database-url",
        f"sqlite:///{isolated / 'new.db'}",
        "db",
        "init",
        "-f",
        "json",
        env={"PORTALCTL_SECRET_KEY": None},
    )
    assert result.exit_code == 0, result.stderr
    assert result.json()["secret_key_created_in"] == ".env"
    content = (isolated / ".env").read_text()
    assert content.startswith("PORTALCTL_SECRET_KEY=") and len(content.strip()) > 40
    assert oct(os.stat(isolated / ".env").st_mode & 0o777) == "0o600"
    again = bare_cli(
        "--database-url",
        f"sqlite:///{isolated / 'new.db'}",
        "db",
        "init",
        "-f",
        "json",
        env={"PORTALCTL_SECRET_KEY": None},
    )
    assert again.json()["secret_key_created_in"] is None
    assert (isolated / ".env").read_text() == content
