"""The one email address rule (``core/email_address.py``): every entry point and the outbox
use it, so what it accepts must be deliverable to exactly that one mailbox, and what it
refuses must be refused with a reason."""

import string
from email import message_from_bytes
from email.policy import SMTP
from email.policy import default as default_policy
from email.utils import getaddresses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portalctl.core.email_address import email_address_problem, parse_email_address
from portalctl.core.errors import InvalidInput
from portalctl.domain.emails import build_message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("james.smith@example.org", "james.smith@example.org"),
        ("  James.Smith@Example.ORG ", "James.Smith@example.org"),
        ("o'brien+portal@mail.example.co.uk", "o'brien+portal@mail.example.co.uk"),
        ("a@b-c.io", "a@b-c.io"),
    ],
)
def test_plain_addresses_are_accepted_with_the_domain_in_lower_case(text, expected):
    assert parse_email_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "<a@x.org>",
        "James <a@x.org>",
        "a@x.org,b@y.org",
        "a@x.org b@y.org",
        "a@x.org;b@y.org",
        "a\x07@x.org",
        "a@x.org\r\nBcc: v@y.org",
        "a\tb@x.org",
        "jos\u00e9@x.org",
        "a@b\u00fccher.de",
        '"a b"@x.org',
        "a..b@x.org",
        ".a@x.org",
        "a.@x.org",
        "a@x",
        "a@x.org.",
        "a@-x.org",
        "a@x-.org",
        "a@x.123",
        "a@[127.0.0.1]",
        "a@@x.org",
        "@x.org",
        "a@",
        "",
        "   ",
        "a" * 65 + "@x.org",
        "a@" + "b" * 64 + ".org",
        "a@" + ("b" * 60 + ".") * 5 + "org",
    ],
)
def test_anything_else_is_refused_with_a_reason(text):
    with pytest.raises(InvalidInput) as refused:
        parse_email_address(text, what="admin email")
    assert refused.value.message.startswith("invalid admin email ")
    assert "\r" not in refused.value.message and "\n" not in refused.value.message


_ATOM = st.text(
    string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=10
)
_LOCAL = st.lists(_ATOM, min_size=1, max_size=3).map(".".join)
_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_TOP = st.from_regex(r"[a-z]{2,6}", fullmatch=True)
ADDRESSES = st.builds(
    lambda local, labels, top: f"{local}@{'.'.join([*labels, top])}",
    _LOCAL,
    st.lists(_LABEL, min_size=1, max_size=3),
    _TOP,
)


@given(ADDRESSES)
def test_an_accepted_address_reaches_exactly_that_one_mailbox(address):
    assert parse_email_address(address) == address
    message = build_message(
        sender="Portal <no-reply@example.org>",
        recipient=address,
        recipient_name="A Person",
        subject="s",
        body="b",
        message_id="<1@x>",
    )
    parsed = message_from_bytes(message.as_bytes(policy=SMTP), policy=default_policy)
    assert [addr for _, addr in getaddresses([str(parsed["To"])])] == [address]


@given(st.text(max_size=40))
def test_the_rule_never_accepts_what_it_calls_a_problem(text):
    problem = email_address_problem(text.strip())
    try:
        parse_email_address(text)
    except InvalidInput:
        assert problem is not None
    else:
        assert problem is None
        assert text.strip().isascii() and text.strip().count("@") == 1
