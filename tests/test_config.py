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
    assert result.json()["secret_key"].startswith("created PORTALCTL_SECRET_KEY in .env")
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
    assert again.json()["secret_key"] == "set"
    assert (isolated / ".env").read_text() == content


def test_db_init_on_postgresql_without_a_key_says_how_to_make_one(backend, cli):
    result = cli("db", "init", "-f", "json", env={"PORTALCTL_SECRET_KEY": ""})
    assert result.exit_code == 0, result.stderr
    if backend.name == "postgresql":
        assert "make one with `portalctl secret-key`" in result.json()["secret_key"]
        assert result.stderr.startswith("portalctl: PORTALCTL_SECRET_KEY is not set: make one")


def test_secret_key_prints_a_new_random_key(bare_cli):
    first, second = bare_cli("secret-key"), bare_cli("secret-key")
    assert first.exit_code == 0 and len(first.stdout.strip()) >= 43
    assert first.stdout != second.stdout


def test_secrets_can_be_read_from_files_named_by_the_file_variants(backend, bare_cli, tmp_path):
    key_file, url_file = tmp_path / "key", tmp_path / "url"
    key_file.write_text(backend.env["PORTALCTL_SECRET_KEY"] + "\n")
    url_file.write_text(backend.url + "\n")
    env = {
        "PORTALCTL_DATABASE_URL": None,
        "PORTALCTL_SECRET_KEY": None,
        "PORTALCTL_DATABASE_URL_FILE": str(url_file),
        "PORTALCTL_SECRET_KEY_FILE": str(key_file),
    }
    issued = bare_cli(
        "codes",
        "issue",
        "--tin",
        "061137531",
        "--admin-name",
        "J",
        "--admin-email",
        "j@example.org",
        "-f",
        "json",
        env=env,
    )
    assert issued.exit_code == 0, issued.stderr
    missing = bare_cli(
        "accounts",
        "find",
        "-n",
        "x",
        env={**env, "PORTALCTL_DATABASE_URL_FILE": str(tmp_path / "nope")},
    )
    assert missing.exit_code == 2
    assert missing.stderr == (
        f"portalctl: PORTALCTL_DATABASE_URL_FILE: {tmp_path / 'nope'} "
        "cannot be read (No such file or directory)\n"
    )
