"""Registration code rules through the domain layer, on both backends."""

from datetime import UTC, datetime, timedelta

import pytest

from portalctl.core.config import Settings
from portalctl.core.errors import RecordedRefusal, Refused
from portalctl.core.secrets import code_hmac
from portalctl.core.tin import Tin
from portalctl.domain.code_checks import check_registration_code, consume_registration_code
from portalctl.domain.codes import (
    issue_registration_code,
    reissue_registration_code,
    revoke_registration_code,
)

KEY = "test-secret-key-0123456789abcdef"
TIN = Tin.parse("061137531")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings():
    return Settings({"PORTALCTL_SECRET_KEY": KEY})


def _issue(connection, settings, tin=TIN, email="james.smith@example.org", **options):
    return issue_registration_code(
        connection,
        operator="rep",
        tin=tin,
        admin_name="James Smith",
        admin_email=email,
        provider_name="Ruth Goneh",
        settings=settings,
        now=NOW,
        **options,
    )


def _check(connection, code, now=NOW, tin=TIN):
    """The check's outcome, valid or refused (a refusal's counts stay in the transaction)."""
    try:
        return check_registration_code(
            connection,
            operator="rep",
            tin=tin,
            code=code,
            settings=Settings({"PORTALCTL_SECRET_KEY": KEY}),
            now=now,
        )
    except RecordedRefusal as refusal:
        return refusal.record


def test_issued_code_is_stored_only_as_its_hmac(backend, settings):
    with backend.engine.begin() as connection:
        issued = _issue(connection, settings)
    assert len(issued["code"]) == 8 and issued["code"].isdigit()
    stored = backend.scalar("SELECT code_hmac FROM registration_codes")
    assert stored == code_hmac(KEY.encode(), tin="061137531", code=issued["code"])
    assert backend.scalar("SELECT count(*) FROM outbox WHERE kind = 'credentialing'") == 1
    assert issued["code"] not in backend.scalar("SELECT body FROM outbox")
    assert backend.scalar("SELECT action FROM audit_log") == "code.issue"


def test_valid_code_checks_and_is_consumed_once(backend, settings):
    with backend.engine.begin() as connection:
        issued = _issue(connection, settings)
        check = _check(connection, issued["code"])
        assert check.valid and check.code_id == issued["id"]
        consume_registration_code(connection, code_id=check.code_id, account_id=None, now=NOW)
        with pytest.raises(Refused):
            consume_registration_code(connection, code_id=check.code_id, account_id=None, now=NOW)
    assert backend.scalar("SELECT status FROM registration_codes") == "used"


def test_used_code_is_refused(backend, settings):
    with backend.engine.begin() as connection:
        issued = _issue(connection, settings)
        consume_registration_code(connection, code_id=issued["id"], account_id=None, now=NOW)
        assert _check(connection, issued["code"]).reason == "used"


def test_revoked_code_is_refused(backend, settings):
    with backend.engine.begin() as connection:
        issued = _issue(connection, settings)
        revoke_registration_code(
            connection, operator="rep", code_id=issued["id"], reason="wrong address", now=NOW
        )
        check = _check(connection, issued["code"])
    assert not check.valid and check.reason == "revoked"


def test_expired_code_is_refused(backend, settings):
    with backend.engine.begin() as connection:
        issued = _issue(connection, settings, ttl_days=14)
        assert _check(connection, issued["code"], now=NOW + timedelta(days=13)).valid
        check = _check(connection, issued["code"], now=NOW + timedelta(days=14, seconds=1))
    assert not check.valid and check.reason == "expired"


def test_code_is_bound_to_its_tin(backend, settings):
    with backend.engine.begin() as connection:
        issued = _issue(connection, settings)
        _issue(connection, settings, tin=Tin.parse("836576879"))
        check = _check(connection, issued["code"], tin=Tin.parse("836576879"))
    assert check.reason == "wrong"


def test_five_wrong_codes_lock_the_tins_codes(backend, settings):
    with backend.engine.begin() as connection:
        first = _issue(connection, settings)
        second = _issue(connection, settings, email="office@example.org")
        wrong = "00000000" if first["code"] != "00000000" else "11111111"
        results = [_check(connection, wrong) for _ in range(5)]
        assert [r.locked for r in results] == [False] * 4 + [True]
        assert results[-1].failed_attempts == 5
        assert _check(connection, second["code"]).reason == "locked"
    assert backend.scalar("SELECT count(*) FROM registration_codes WHERE status = 'locked'") == 2


def test_reissue_revokes_the_old_code_and_resets_the_lock(backend, settings):
    with backend.engine.begin() as connection:
        old = _issue(connection, settings)
        for _ in range(5):
            _check(connection, "99999999" if old["code"] != "99999999" else "11111111")
        new = reissue_registration_code(
            connection, operator="rep", code_id=old["id"], settings=settings, now=NOW
        )
        assert _check(connection, old["code"]).reason == "revoked"
        assert _check(connection, new["code"]).valid
    assert new["replaces_id"] == old["id"]
    assert backend.scalar("SELECT count(*) FROM outbox") == 2
