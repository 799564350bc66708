from __future__ import annotations

import datetime as dt

import pytest

from mailer.subscribers.tokens import (
    BadToken,
    ExpiredToken,
    make_token,
    preferences_url,
    read_token,
    unsubscribe_url,
)
from tests.fake_clock import FakeClock


def test_a_token_round_trips_for_its_purpose(plain_settings):
    token = make_token(plain_settings, 42, "unsubscribe")
    assert read_token(plain_settings, token, "unsubscribe") == 42


@pytest.mark.parametrize("other", ["confirm", "preferences"])
def test_a_token_does_not_open_another_purpose(plain_settings, other):
    token = make_token(plain_settings, 42, "unsubscribe")
    with pytest.raises(BadToken):
        read_token(plain_settings, token, other)


def test_a_token_from_another_key_is_refused(plain_settings):
    from dataclasses import replace

    token = make_token(replace(plain_settings, secret_key="someone-else"), 42, "preferences")
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
    token = make_token(plain_settings, 42, "preferences")
    with pytest.raises(BadToken):
        read_token(plain_settings, mangle(token), "preferences")


def test_confirm_tokens_expire_after_48_hours(plain_settings):
    clock = FakeClock()
    confirm = make_token(plain_settings, 7, "confirm", clock)
    unsubscribe = make_token(plain_settings, 7, "unsubscribe", clock)
    clock.advance(48 * 3600 - 1)
    assert read_token(plain_settings, confirm, "confirm", clock) == 7
    clock.advance(2)
    with pytest.raises(ExpiredToken):
        read_token(plain_settings, confirm, "confirm", clock)
    clock.advance(365 * 24 * 3600)  # a mail read a year later still unsubscribes
    assert read_token(plain_settings, unsubscribe, "unsubscribe", clock) == 7


def test_a_token_signed_by_the_real_clock_two_days_ago_has_expired(plain_settings):
    two_days_ago = FakeClock(dt.datetime.now(dt.UTC) - dt.timedelta(hours=49))
    with pytest.raises(ExpiredToken):
        read_token(plain_settings, make_token(plain_settings, 7, "confirm", two_days_ago), "confirm")


def test_urls_are_absolute_and_carry_a_token_for_their_purpose(plain_settings):
    url = unsubscribe_url(plain_settings, 5, "verdiepingen")
    assert url.startswith("http://testserver/afmelden/")
    assert url.endswith("?onderwerp=verdiepingen")
    token = url.removeprefix("http://testserver/afmelden/").removesuffix("?onderwerp=verdiepingen")
    assert read_token(plain_settings, token, "unsubscribe") == 5
    with pytest.raises(BadToken):
        read_token(plain_settings, token, "preferences")
    assert preferences_url(plain_settings, 5).startswith("http://testserver/voorkeuren/")
