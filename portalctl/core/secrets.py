"""Slow salted hashes for passwords, security answers and PINs, keyed HMACs for codes, and the
encryption that protects a code while its email waits in the outbox."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import unicodedata
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from portalctl.core.errors import InvalidInput

if TYPE_CHECKING:
    from argon2 import PasswordHasher
    from cryptography.fernet import Fernet

# Argon2id at OWASP's minimum for it (19 MiB of memory, 2 passes, 1 lane): ~40-60 ms a hash on
# the 2-core build VM. A stored hash with other parameters still verifies (they are in it) and is
# replaced on its next successful check, so raising these upgrades hashes as callers verify.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1


@cache
def _argon2() -> PasswordHasher:
    from argon2 import PasswordHasher, Type

    return PasswordHasher(
        time_cost=ARGON2_TIME_COST,
        memory_cost=ARGON2_MEMORY_KIB,
        parallelism=ARGON2_PARALLELISM,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


def hash_secret(plain: str) -> str:
    """The Argon2id hash (``$argon2id$v=19$m=...``) of a password, a normalised security answer
    or a PIN: the only form in which any of them is stored."""
    return _argon2().hash(plain)


def verify_secret(plain: str, stored: str | None) -> bool:
    """Whether ``plain`` matches a stored hash: Argon2id, or the ``scrypt$n$r$p$salt$hash`` of
    earlier versions (see ``needs_rehash``)."""
    if not stored:
        return False
    if stored.startswith("$argon2"):
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return _argon2().verify(stored, plain)
        except (VerificationError, InvalidHashError):
            return False
    if stored.startswith("scrypt$"):
        return _verify_scrypt(plain, stored)
    return False


def needs_rehash(stored: str) -> bool:
    """A hash of an older scheme (scrypt) or of weaker Argon2 parameters than today's: the
    caller replaces it with ``hash_secret`` of the plain value it has just verified."""
    if not stored.startswith("$argon2id$"):
        return True
    from argon2.exceptions import InvalidHashError

    try:
        return _argon2().check_needs_rehash(stored)
    except InvalidHashError:
        return True


def _verify_scrypt(plain: str, stored: str) -> bool:
    """The scheme of versions before Argon2id: scrypt, its parameters and salt in the value."""
    try:
        _scheme, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            plain.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 1024 * 1024,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def normalise_answer(answer: str) -> str:
    """Security answers match ignoring case, accents' composition and extra spaces."""
    return " ".join(unicodedata.normalize("NFKC", answer).casefold().split())


def code_hmac(key: bytes, *, tin: str, code: str) -> str:
    """The only stored form of a registration code: bound to its TIN by the HMAC input."""
    return hmac.new(key, f"registration-code:{tin}:{code}".encode(), hashlib.sha256).hexdigest()


def account_code_hmac(key: bytes, *, purpose: str, account_id: int, email: str, code: str) -> str:
    """The only stored form of an email verification or password reset code: bound to its
    purpose, its account and the address it was sent to, so a code proves control of that
    address for that account and nothing else."""
    message = f"account-code:{purpose}:{account_id}:{email.lower()}:{code}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def generate_code(digits: int) -> str:
    """A uniformly random code of ``digits`` decimal digits (leading zeros kept)."""
    return str(secrets.randbelow(10**digits)).zfill(digits)


def parse_code(text: str, *, digits: int, what: str = "registration code") -> str:
    """A code as typed (spaces around ignored), or ``InvalidInput`` when it cannot be one:
    not ``digits`` ASCII digits. Such input is not counted as a failed attempt."""
    code = text.strip() if isinstance(text, str) else ""
    if len(code) != digits or not (code.isascii() and code.isdigit()):
        raise InvalidInput(f"invalid {what}: expected {digits} digits")
    return code


@lru_cache(
    maxsize=4
)  # one key a run: derived again for every email it cost as much as a decryption
def _fernet(key: bytes) -> Fernet:
    from cryptography.fernet import Fernet

    derived = hashlib.sha256(b"portalctl-outbox-secret:" + key).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_secret(key: bytes, plain: str) -> str:
    return str(_fernet(key).encrypt(plain.encode()).decode())


def decrypt_secret(key: bytes, token: str) -> str:
    return str(_fernet(key).decrypt(token.encode()).decode())
