"""What a driver or a traceback says is masked before it is shown."""

import pytest

from portalctl.core.redaction import redact
from portalctl.core.secrets import code_hmac, encrypt_secret, hash_secret


@pytest.mark.parametrize(
    "secret, kept",
    [
        ("061137531", "*****7531"),
        ("06-1137531", "*****7531"),
        ("061-13-7531", "*****7531"),
        (code_hmac(b"k" * 32, tin="061137531", code="12345678"), "[hmac]"),
        (hash_secret("Correct-Horse-9"), "[hash]"),
        (encrypt_secret(b"k" * 32, "12345678"), "[encrypted]"),
    ],
)
def test_secrets_in_foreign_text_are_masked(secret, kept):
    text = f"DETAIL:  Key (account_id, tin)=(5, {secret}) already exists."
    shown = redact(text)
    assert secret not in shown and kept in shown


def test_other_numbers_are_left_alone():
    assert redact("line 1234567890 of 12345678 rows") == "line 1234567890 of 12345678 rows"
