"""Slow salted hashes for passwords and security answers, keyed HMACs for codes, and the
encryption that protects a code while its email waits in the outbox."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import unicodedata
from functools import lru_cache

# scrypt cost (n=2**14, r=8, p=1: ~16 MiB and tens of milliseconds a hash).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_secret(plain: str) -> str:
    """``scrypt$n$r$p$salt$hash`` for a password or a normalised security answer."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        plain.encode(),
        salt=salt,
        n=_SCRYPT_N,
        r=_SCRYPT_R,
        p=_SCRYPT_P,
        maxmem=64 * 1024 * 1024,
        dklen=32,
    )
    return "$".join(
        [
            "scrypt",
            str(_SCRYPT_N),
            str(_SCRYPT_R),
            str(_SCRYPT_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        ]
    )


def verify_secret(plain: str, stored: str | None) -> bool:
    """Constant-time check of ``plain`` against a ``hash_secret`` value."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
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


def generate_code(digits: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))


@lru_cache(maxsize=4)  # one key a run: deriving it again for every email cost as much as decrypting
def _fernet(key: bytes):
    from cryptography.fernet import Fernet

    derived = hashlib.sha256(b"portalctl-outbox-secret:" + key).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_secret(key: bytes, plain: str) -> str:
    return _fernet(key).encrypt(plain.encode()).decode()


def decrypt_secret(key: bytes, token: str) -> str:
    return _fernet(key).decrypt(token.encode()).decode()
