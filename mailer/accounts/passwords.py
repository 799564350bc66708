"""Passwords: argon2id hashes, and a refusal of passwords that are short or common.

"Common" is judged by zxcvbn, which knows the leaked-password lists and English words, told
also of words Dutch passwords are made of (seasons, clubs, cities, our own organisations) and
of the person's own name: a password they would guess first scores low.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MIN_SCORE = 3  # zxcvbn's 0..4; 3: "safely unguessable: moderate protection from offline attacks"
DUTCH = (
    "wachtwoord", "welkom", "geheim", "inloggen", "hallo", "hoi", "doei", "liefde", "schat",
    "lente", "zomer", "herfst", "winter", "maandag", "dinsdag", "woensdag", "donderdag",
    "vrijdag", "zaterdag", "zondag", "januari", "februari", "maart", "april", "mei", "juni",
    "juli", "augustus", "september", "oktober", "november", "december", "voetbal", "ajax",
    "feyenoord", "psv", "oranje", "nederland", "holland", "amsterdam", "rotterdam", "utrecht",
    "denhaag", "eindhoven", "groningen", "maastricht", "limburg", "brabant", "friesland",
    "konijn", "poes", "hond", "kat", "paard", "bloem", "fiets", "kaas", "koffie", "appel",
    "sinterklaas", "kerstmis", "vakantie", "familie", "kinderen", "mama", "papa", "oma", "opa",
    "veilig", "thuis", "veiligthuis", "politie", "justitie", "reclassering", "kinderbescherming",
    "openbaarministerie", "veiligheid", "voorop", "veiligheidvoorop", "zorgstraf", "mailer",
    "nieuwsbrief", "stalking", "geweld", "huiselijk",
)
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the name is no account, so a missing name takes as long as a wrong password.
_DUMMY = _hasher.hash("no account has this password")


def weakness(password: str, name: str = "") -> str:
    """Why `password` may not be used, or "" when it is fine."""
    if len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters (this one has {len(password)})"
    if password.strip() != password:
        return "a password must not start or end with a space"
    from zxcvbn import zxcvbn  # its word lists take a moment to load: only here

    found = zxcvbn(password[:100], user_inputs=[*DUTCH, name, *name.split()])
    if found["score"] >= MIN_SCORE:
        return ""
    feedback = found["feedback"]
    why = feedback.get("warning") or "it is easy to guess"
    hint = " ".join(feedback.get("suggestions") or ["Use three or four unrelated words."])
    return f"this password is too common or too easy to guess: {why.rstrip('.')}. {hint}"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password_hash: str, password: str) -> bool:
    """Whether `password` matches; with no hash (no account, or none set yet) always False, after
    the same work."""
    try:
        return _hasher.verify(password_hash or _DUMMY, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
