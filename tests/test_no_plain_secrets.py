"""Every credential flow once, then a search of every column of every table and of everything
the commands printed: no plain password, security answer, PIN or code may be anywhere."""

from credentials_support import CODE_LINE, body_of, code_in, every_stored_text
from smtp_server import ScriptedHandler, SmtpServer, free_port

USER = "johnsmith@gmail.com"
SECRETS = {
    "password": "Blue-Heron-Lake-42",
    "new password": "Harbour-Lights-77",
    "answer": "Maiden Name Smithson",
    "pin": "48213907",
    "imported password": "Imported-Secret-2026",
    "imported answer": "Imported Rexford",
    "registered password": "Registered-Secret-88",
    "registered answer": "Registered Fidoesque",
}


def test_no_plain_secret_in_any_table_or_output(cli, backend, tmp_path):
    outputs = []

    def run(*args, input=None, env=None, expect=0):
        result = cli(*args, input=input, env=env)
        assert result.exit_code == expect, (args, result.stderr)
        outputs.append(result.stdout + result.stderr)
        return result

    with SmtpServer(ScriptedHandler()) as server:
        smtp = {"PORTALCTL_SMTP_URL": server.url}
        run(
            "accounts",
            "create",
            "-u",
            USER,
            "-e",
            USER,
            "-n",
            "John Smith",
            "--security-question",
            "Maiden name?",
            "--answer-stdin",
            "--password-stdin",
            input=f"{SECRETS['answer']}\n{SECRETS['password']}\n",
        )
        run("accounts", "set-security", USER, "--pin-stdin", input=SECRETS["pin"] + "\n")
        run("accounts", "verify", USER, "--answer-stdin", input=SECRETS["answer"] + "\n")
        run("accounts", "verify", USER, "--pin-stdin", input=SECRETS["pin"] + "\n")
        run("accounts", "verify", USER, "--password-stdin", input=SECRETS["password"] + "\n")
        run("accounts", "verify", USER, "--password-stdin", input="Wrong-Password-00\n", expect=4)
        run("accounts", "email-code", USER, "--email", USER, env=smtp)
        run("accounts", "email-code", USER, "--email", USER, env=smtp)  # Request New Code
        run("accounts", "confirm-email", USER, "--code", code_in(server.handler.received[-1]))
        run("accounts", "email-code", USER, "--email", USER, env=smtp)  # left active
        run("accounts", "reset-password", USER, env=smtp)
        reset_code = code_in(server.handler.received[-1])
        run(
            "accounts",
            "set-password",
            USER,
            "--reset-code",
            reset_code,
            "--password-stdin",
            input=SECRETS["new password"] + "\n",
        )
        run("accounts", "send-username", "--email", USER, env=smtp)
        down = {"PORTALCTL_SMTP_URL": f"smtp://127.0.0.1:{free_port()}"}
        run("accounts", "reset-password", USER, env=down, expect=8)  # queued, encrypted
        path = tmp_path / "import.csv"
        path.write_text(
            "username,email,full_name,security_question,security_answer,password\n"
            f"amy,amy@example.org,Amy,Pet?,{SECRETS['imported answer']},"
            f"{SECRETS['imported password']}\n"
        )
        run("accounts", "import", str(path))
        issued = cli(
            "codes",
            "issue",
            "--tin",
            "061137531",
            "--admin-name",
            "Maria",
            "--admin-email",
            "maria@example.org",
            "--no-email",
            "-f",
            "json",
        )  # the one output that shows a code, once, by design: not searched
        run(
            "accounts",
            "register",
            "--tin",
            "061137531",
            "--code-stdin",
            "-u",
            "mgarcia",
            "-e",
            "maria@example.org",
            "-n",
            "Maria",
            "--security-question",
            "Pet?",
            "--answer-stdin",
            "--password-stdin",
            input=f"{issued.json()['code']}\n{SECRETS['registered answer']}\n"
            f"{SECRETS['registered password']}\n",
        )
        run("audit", "--limit", "1000", "-f", "json")
        run("mail", "list", "-f", "json")
        for email_id in range(1, 7):
            run("mail", "show", str(email_id), "-f", "json")
    codes = {
        f"emailed code {index}": CODE_LINE.search(body_of(message)).group(1)
        for index, message in enumerate(server.handler.received)
        if CODE_LINE.search(body_of(message))
    }
    codes["registration code"] = issued.json()["code"]
    assert len(codes) == 5  # three email codes, one reset code, one registration code
    stored = every_stored_text(backend)
    printed = "\n".join(outputs)
    for name, secret in {**SECRETS, **codes}.items():
        for form in {secret, secret.lower(), " ".join(secret.casefold().split())}:
            assert form not in stored, f"the {name} is stored in plain text"
            assert form not in printed, f"the {name} was printed"
