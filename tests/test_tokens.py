from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace

import pytest
from itsdangerous import URLSafeTimedSerializer

from mailer.subscribers.tokens import (
    BadToken,
    ExpiredToken,
    make_token,
    preferences_url,
    read_token,
    unsubscribe_url,
)
from tests.fake_clock import FakeClock

PID = "0123456789abcdef0123456789abcdef"
NONCE = "00112233aabbccdd"


def test_a_token_round_trips_for_its_purpose(plain_settings):
    claim = read_token(plain_settings, make_token(plain_settings, PID, "unsubscribe"), "unsubscribe")
    assert (claim.public_id, claim.legacy_id, claim.nonce) == (PID, None, None)
    assert abs(claim.issued_at.timestamp() - time.time()) < 5


def test_a_confirm_token_carries_its_sign_up(plain_settings):
    claim = read_token(plain_settings, make_token(plain_settings, PID, "confirm", NONCE), "confirm")
    assert (claim.public_id, claim.nonce) == (PID, NONCE)


@pytest.mark.parametrize("other", ["confirm", "preferences"])
def test_a_token_does_not_open_another_purpose(plain_settings, other):
    token = make_token(plain_settings, PID, "unsubscribe")
    with pytest.raises(BadToken):
        read_token(plain_settings, token, other)


def test_a_token_from_another_key_is_refused(plain_settings):
    token = make_token(replace(plain_settings, secret_key="someone-else"), PID, "preferences")
    with pytest.raises(BadToken):
        read_token(plain_settings, token, "preferences")


@pytest.mark.parametrize("mangle", [
    # not the last character: its low bits are padding, so some changes decode to the same bytes
    lambda t: t[:-5] + ("A" if t[-5] != "A" else "B") + t[-4:],
    lambda t: "Mg" + t[2:],
    lambda t: t + "x",
    lambda t: "",
    lambda t: "../../etc/passwd",
])
def test_a_tampered_token_is_refused(plain_settings, mangle):
    token = make_token(plain_settings, PID, "preferences")
    with pytest.raises(BadToken):
        read_token(plain_settings, mangle(token), "preferences")


def old_style(settings, value, purpose):
    """A token as links made before public ids were: the row id, signed the same way."""
    return URLSafeTimedSerializer(settings.secret_key, salt=f"mailer.{purpose}").dumps(value)


def test_a_link_from_before_public_ids_names_a_row_id(plain_settings):
    claim = read_token(plain_settings, old_style(plain_settings, 42, "preferences"), "preferences")
    assert (claim.public_id, claim.legacy_id) == (None, 42)


@pytest.mark.parametrize("value", [42, [42, NONCE], [PID, "short"], PID, True, "x" * 32])
def test_confirm_tokens_must_name_a_sign_up(plain_settings, value):
    with pytest.raises(BadToken):
        read_token(plain_settings, old_style(plain_settings, value, "confirm"), "confirm")


@pytest.mark.parametrize("value", [True, "not-hex", "ABCDEF0123456789ABCDEF0123456789", 4.2, None])
def test_other_payloads_are_refused(plain_settings, value):
    with pytest.raises(BadToken):
        read_token(plain_settings, old_style(plain_settings, value, "preferences"), "preferences")


def test_confirm_tokens_expire_after_48_hours(plain_settings):
    clock = FakeClock()
    confirm = make_token(plain_settings, PID, "confirm", NONCE, clock)
    unsubscribe = make_token(plain_settings, PID, "unsubscribe", clock=clock)
    clock.advance(48 * 3600 - 1)
    assert read_token(plain_settings, confirm, "confirm", clock).public_id == PID
    clock.advance(2)
    with pytest.raises(ExpiredToken):
        read_token(plain_settings, confirm, "confirm", clock)
    clock.advance(365 * 24 * 3600)  # a mail read a year later still unsubscribes
    assert read_token(plain_settings, unsubscribe, "unsubscribe", clock).public_id == PID


def test_a_token_signed_by_the_real_clock_two_days_ago_has_expired(plain_settings):
    two_days_ago = FakeClock(dt.datetime.now(dt.UTC) - dt.timedelta(hours=49))
    with pytest.raises(ExpiredToken):
        read_token(plain_settings, make_token(plain_settings, PID, "confirm", NONCE, two_days_ago),
                   "confirm")


def test_urls_are_absolute_and_carry_a_token_for_their_purpose(plain_settings):
    url = unsubscribe_url(plain_settings, PID, "verdiepingen")
    assert url.startswith("http://testserver/afmelden/")
    assert url.endswith("?onderwerp=verdiepingen")
    token = url.removeprefix("http://testserver/afmelden/").removesuffix("?onderwerp=verdiepingen")
    assert read_token(plain_settings, token, "unsubscribe").public_id == PID
    with pytest.raises(BadToken):
        read_token(plain_settings, token, "preferences")
    assert preferences_url(plain_settings, PID).startswith("http://testserver/voorkeuren/")


@pytest.mark.parametrize("bad", ["", "42", PID.upper(), PID + "0"])
def test_only_public_ids_are_put_in_tokens(plain_settings, bad):
    with pytest.raises(ValueError):
        make_token(plain_settings, bad, "preferences")
