from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlmodel import select

from mailer.models import Subscriber, Subscription, Suppression, utcnow
from mailer.subscribers.subscriptions import (
    AlreadyConfirmed,
    Profile,
    StaleConfirmation,
    active_topics,
    confirm,
    erase,
    hash_address,
    is_suppressed,
    personal_data,
    purge_pending,
    recipients,
    request_subscription,
    suppress,
    unsubscribe,
    update_preferences,
)
from tests.conftest import add_subscriber

PROFILE = Profile("Anouk Jansen", "Veilig Thuis", "limburg", "netwerk", ("updates", "verdiepingen"))


def test_hash_is_stable_and_ignores_case_and_space():
    assert hash_address(" Anouk@Example.org ") == hash_address("anouk@example.org")
    assert hash_address("anouk@example.org") != hash_address("anouk@example.com")
    # Salted: a list of plain SHA-256 digests of known addresses does not find the person.
    assert hash_address("anouk@example.org") != hashlib.sha256(b"anouk@example.org").hexdigest()


def test_double_opt_in_activates_the_chosen_topics(session):
    subscriber, nonce = request_subscription(session, "Anouk@Example.org", PROFILE, "web")
    assert subscriber.status == "pending" and subscriber.email == "anouk@example.org"
    assert active_topics(session, subscriber.id) == []
    confirm(session, subscriber.id, nonce)
    assert subscriber.status == "active"
    assert active_topics(session, subscriber.id) == ["updates", "verdiepingen"]
    row = session.exec(select(Subscription).where(Subscription.topic == "updates")).one()
    assert row.consent_at is not None and "double opt-in" in row.consent_source


def test_a_confirmation_cannot_be_replayed(session):
    subscriber, nonce = request_subscription(session, "a@example.org", PROFILE, "web")
    confirm(session, subscriber.id, nonce)
    with pytest.raises(AlreadyConfirmed):
        confirm(session, subscriber.id, nonce)


def test_a_confirmation_applies_only_the_sign_up_it_was_sent_for(session):
    subscriber_id = add_subscriber(session, "a@example.org", name="Echte Naam")
    person = session.get(Subscriber, subscriber_id)
    person.confirm_sent_at = None  # the first mail is long ago
    first = request_subscription(session, "a@example.org", PROFILE, "web")
    person.confirm_sent_at = None
    stranger = Profile("Iemand Anders", "", "noord-holland", "werkveld", ("verdiepingen",))
    request_subscription(session, "a@example.org", stranger, "web")
    with pytest.raises(StaleConfirmation):
        confirm(session, subscriber_id, first.nonce)
    assert session.get(Subscriber, subscriber_id).name == "Echte Naam"
    assert active_topics(session, subscriber_id) == ["updates"]


def test_unconfirmed_sign_ups_are_purged_after_their_time(session):
    kept = add_subscriber(session, "kept@example.org")
    request_subscription(session, "new@example.org", PROFILE, "web")
    old, _ = request_subscription(session, "old@example.org", PROFILE, "web")
    old.confirm_sent_at = utcnow() - dt.timedelta(days=8)
    session.get(Subscriber, kept).confirm_sent_at = None
    assert request_subscription(session, "kept@example.org", PROFILE, "web") is not None
    session.get(Subscriber, kept).confirm_sent_at = utcnow() - dt.timedelta(days=8)
    session.flush()
    assert purge_pending(session, dt.timedelta(days=7)) == 2
    emails = {s.email: s for s in session.exec(select(Subscriber))}
    assert set(emails) == {"kept@example.org", "new@example.org"}
    assert emails["kept@example.org"].pending_request is None
    assert emails["kept@example.org"].status == "active"
    assert emails["new@example.org"].pending_request is not None


def test_repeated_requests_do_not_send_repeated_mails(session):
    assert request_subscription(session, "a@example.org", PROFILE, "web") is not None
    assert request_subscription(session, "a@example.org", PROFILE, "web") is None


def test_a_strangers_request_changes_nothing_until_confirmed(session):
    subscriber_id = add_subscriber(session, "a@example.org", name="Echte Naam")
    stranger = Profile("Iemand Anders", "", "noord-holland", "werkveld", ("verdiepingen",))
    request_subscription(session, "a@example.org", stranger, "web")
    person = session.get(Subscriber, subscriber_id)
    assert (person.name, person.region) == ("Echte Naam", "limburg")
    assert active_topics(session, subscriber_id) == ["updates"]


def test_unsubscribe_one_topic_keeps_the_others(session):
    subscriber_id = add_subscriber(session, "a@example.org", topics=("updates", "verdiepingen"))
    unsubscribe(session, subscriber_id, "verdiepingen")
    assert active_topics(session, subscriber_id) == ["updates"]
    assert not is_suppressed(session, "a@example.org")


def test_unsubscribe_everything_suppresses_and_opt_in_lifts_it(session):
    subscriber_id = add_subscriber(session, "a@example.org")
    unsubscribe(session, subscriber_id)
    assert is_suppressed(session, "A@example.org")
    assert session.get(Subscriber, subscriber_id).status == "unsubscribed"
    assert active_topics(session, subscriber_id) == []
    session.get(Subscriber, subscriber_id).confirm_sent_at = None  # the first mail is long ago
    sign_up = request_subscription(session, "a@example.org", PROFILE, "web")
    confirm(session, subscriber_id, sign_up.nonce)
    assert not is_suppressed(session, "a@example.org")
    assert active_topics(session, subscriber_id) == ["updates", "verdiepingen"]


def test_preferences_cannot_resubscribe_someone_who_left(session):
    subscriber_id = add_subscriber(session, "a@example.org")
    unsubscribe(session, subscriber_id)
    update_preferences(session, subscriber_id, PROFILE)
    assert active_topics(session, subscriber_id) == []
    assert session.get(Subscriber, subscriber_id).name == "Anouk Jansen"


def test_preferences_switch_topics(session):
    subscriber_id = add_subscriber(session, "a@example.org", topics=("updates",))
    update_preferences(session, subscriber_id, Profile("A", "", "limburg", "netwerk",
                                                       ("verbeteractiviteiten",)))
    assert active_topics(session, subscriber_id) == ["verbeteractiviteiten"]


def test_erase_keeps_only_the_hashed_suppression(session):
    subscriber_id = add_subscriber(session, "a@example.org", topics=("updates", "verdiepingen"))
    erase(session, subscriber_id)
    assert session.exec(select(Subscriber)).all() == []
    assert session.exec(select(Subscription)).all() == []
    [row] = session.exec(select(Suppression)).all()
    assert row.reason == "erased" and row.address_hash == hash_address("a@example.org")


def test_personal_data_holds_everything(session):
    subscriber_id = add_subscriber(session, "a@example.org")
    data = personal_data(session, subscriber_id)
    assert data["email"] == "a@example.org"
    assert data["subscriptions"][0]["topic"] == "updates"
    assert data["suppression"] is None


def test_recipients_are_active_unsuppressed_and_in_segment(session):
    keep = add_subscriber(session, "keep@example.org", "limburg", "netwerk")
    add_subscriber(session, "other-region@example.org", "noord-holland", "netwerk")
    add_subscriber(session, "other-audience@example.org", "limburg", "werkveld")
    add_subscriber(session, "other-topic@example.org", topics=("verdiepingen",))
    left = add_subscriber(session, "left@example.org")
    unsubscribe(session, left)
    add_subscriber(session, "bounced@example.org")
    suppress(session, "bounced@example.org", "bounced")
    request_subscription(session, "pending@example.org", PROFILE, "web")
    found = [s.email for s in recipients(session, "updates", ["limburg"], ["netwerk"])]
    assert found == ["keep@example.org"]
    everyone = {s.email for s in recipients(session, "updates")}
    assert everyone == {"keep@example.org", "other-region@example.org",
                        "other-audience@example.org"}
    assert session.get(Subscriber, keep).status == "active"
