def test_find_on_fresh_db(cli):
    result = cli("accounts", "find", "--name", "x")
    assert result.exit_code == 0, result.stderr
