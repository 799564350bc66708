from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlmodel import select

from mailer.models import Subscriber, Subscription, Suppression
from mailer.subscribers import staging
from mailer.subscribers.lists import ListImportError, export_list, import_list
from mailer.subscribers.subscriptions import (
    active_topics,
    erase,
    find_by_email,
    hash_address,
    unsubscribe,
)
from mailer.taxonomy import REGIONS
from tests.conftest import add_subscriber

LISTS = Path(__file__).resolve().parent.parent / "lists"
HEADER = "email,name,organisation,region,audience\n"


def people(session):
    return {p.email: p for p in session.exec(select(Subscriber))}


def test_every_region_ships_an_example_list_that_imports(session):
    for region in REGIONS:
        report = import_list(session, LISTS / f"{region}.csv")
        assert report.added == report.rows > 0 and not report.rejected
    assert all(p.email.endswith("@example.org") for p in people(session).values())
    public_ids = {p.public_id for p in people(session).values()}  # filled in by the database
    assert len(public_ids) == len(people(session)) and all(len(i) == 32 for i in public_ids)


def test_import_fills_empty_cells_from_options_and_accepts_names(session, write_csv):
    path = write_csv(HEADER + "A@Example.org,Anouk,VT,,\nb@example.org,Bram,OM,Noord-Holland,"
                     "Netwerk Straf/Zorg\n")
    report = import_list(session, path, region="limburg", audience="werkveld",
                         topic="verdiepingen")
    assert report.added == 2
    found = people(session)
    assert (found["a@example.org"].region, found["a@example.org"].audience) == ("limburg",
                                                                                "werkveld")
    assert (found["b@example.org"].region, found["b@example.org"].audience) == ("noord-holland",
                                                                                "netwerk")
    assert active_topics(session, found["a@example.org"].id) == ["verdiepingen"]


def test_semicolon_files_and_excel_bom_are_read(session, write_csv):
    path = write_csv("\ufeffemail;name;organisation;region;audience\na@example.org;A;;limburg;"
                     "netwerk\n")
    assert import_list(session, path).added == 1


BAD_ROWS = {
    "not-an-address,A,,limburg,netwerk": "not a valid email address",
    '"a@example.org\r\nBcc: x@evil.org",A,,limburg,netwerk': "not a valid email address",
    '"x@example.org, y@example.org",A,,limburg,netwerk': "not a valid email address",
    '"c@example.org","Naam\r\nBcc: x@evil.org",,limburg,netwerk': "line break",
    "d@example.org,A,,atlantis,netwerk": "unknown region 'atlantis'",
    "e@example.org,A,,limburg,iedereen": "unknown audience 'iedereen'",
    "f@example.org,A,,,netwerk": "no region",
    f"g@example.org,{'N' * 201},,limburg,netwerk": "longer than 200",
    f"{'h' * 250}@example.org,A,,limburg,netwerk": "longer than 254",
    "i@example.org,A,,limburg,netwerk,extra": "more fields",
}


def test_every_bad_row_is_reported_by_line_and_nothing_is_imported(session, write_csv):
    rows = ["ok@example.org,Ok,,limburg,netwerk", *BAD_ROWS, "OK@example.org,Dup,,limburg,netwerk"]
    path = write_csv(HEADER + "\n".join(rows) + "\n")
    with pytest.raises(ListImportError) as caught:
        import_list(session, path)
    rejected = caught.value.report.rejected
    starts, line = [], 2
    for row in rows:
        starts.append(line)
        line += row.count("\n") + 1
    assert len(rejected) == len(BAD_ROWS) + 1
    for message, start, reason in zip(rejected, starts[1:], BAD_ROWS.values(), strict=False):
        assert message.startswith(f"line {start}: ") and reason in message, message
    assert rejected[-1] == f"line {starts[-1]}: duplicate of line 2 (ok@example.org)"
    assert people(session) == {}


def test_skip_invalid_imports_the_rest(session, write_csv):
    path = write_csv(HEADER + "ok@example.org,Ok,,limburg,netwerk\nbad,,,limburg,netwerk\n")
    report = import_list(session, path, skip_invalid=True)
    assert report.added == 1 and report.rejected == [
        "line 3: not a valid email address: 'bad' (An email address must have an @-sign)"]
    assert list(people(session)) == ["ok@example.org"]


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("naam,regio\nA,limburg\n", "no 'email' column"),
    ("email,regio\na@example.org,limburg\n", r"unknown column\(s\) 'regio'"),
])
def test_a_bad_header_is_refused(session, write_csv, text, message):
    with pytest.raises(ListImportError, match=message):
        import_list(session, write_csv(text))


def test_a_file_that_is_not_utf8_is_refused(session, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "a@example.org,Zoë,,limburg,netwerk\n").encode("latin-1"))
    with pytest.raises(ListImportError, match="not UTF-8"):
        import_list(session, path)


def test_dry_run_reports_and_writes_nothing(session, write_csv):
    report = import_list(session, write_csv(HEADER + "a@example.org,A,,limburg,netwerk\n"),
                         dry_run=True)
    assert report.added == 1 and "would be added" in report.summary()
    assert people(session) == {}


def test_reimporting_the_same_file_changes_nothing(session):
    path = LISTS / "limburg.csv"
    import_list(session, path)
    before = {(p.email, p.updated_at, p.status) for p in people(session).values()}
    subs_before = {(s.subscriber_id, s.topic, s.consent_at)
                   for s in session.exec(select(Subscription))}
    report = import_list(session, path)
    assert (report.added, report.updated, report.unchanged) == (0, 0, 5)
    assert {(p.email, p.updated_at, p.status) for p in people(session).values()} == before
    assert {(s.subscriber_id, s.topic, s.consent_at)
            for s in session.exec(select(Subscription))} == subs_before


def test_an_import_never_resubscribes_who_left(session, write_csv):
    left = add_subscriber(session, "left@example.org")
    unsubscribe(session, left)
    one_topic = add_subscriber(session, "one@example.org", topics=("updates", "verdiepingen"))
    unsubscribe(session, one_topic, "verdiepingen")
    erased = add_subscriber(session, "erased@example.org")
    erase(session, erased)
    path = write_csv(HEADER + "LEFT@example.org,,,limburg,netwerk\n"
                     "one@example.org,,,limburg,netwerk\nerased@example.org,,,limburg,netwerk\n")
    report = import_list(session, path, topic="verdiepingen")
    assert (report.added, report.updated, report.left_alone) == (0, 0, 3)
    assert active_topics(session, left) == []
    assert active_topics(session, one_topic) == ["updates"]
    assert "erased@example.org" not in people(session)


def test_an_import_confirms_only_the_pending_topics_it_names(session, write_csv):
    # The list is the consent for its own topic: a pending web sign-up on the list becomes active
    # with that topic, a pending subscription row (the model's default status) for the list's
    # topic is activated and one for another topic is not, and a pending sign-up that is not on
    # the list is untouched.
    from mailer.subscribers.subscriptions import Profile, request_subscription

    def sign_up(email: str) -> int:
        profile = Profile("Web", "VT", "limburg", "netwerk", ("updates",))
        pending = request_subscription(session, email, profile, "web")
        assert pending is not None and pending.subscriber.id is not None
        return pending.subscriber.id

    listed, other = sign_up("listed@example.org"), sign_up("other@example.org")
    waiting = add_subscriber(session, "waiting@example.org")
    session.add_all([Subscription(subscriber_id=waiting, topic=topic)
                     for topic in ("verdiepingen", "verbeteractiviteiten")])
    session.commit()
    import_list(session, write_csv(HEADER + "listed@example.org,,,limburg,netwerk\n"
                                   "waiting@example.org,,,limburg,netwerk\n"), topic="verdiepingen")

    def statuses(person: int) -> dict[str, str]:
        rows = session.exec(select(Subscription).where(Subscription.subscriber_id == person))
        return {row.topic: row.status for row in rows}

    found = people(session)
    assert (found["listed@example.org"].status, statuses(listed)) == ("active",
                                                                      {"verdiepingen": "active"})
    assert (found["other@example.org"].status, statuses(other)) == ("pending", {})
    assert statuses(waiting) == {"updates": "active", "verdiepingen": "active",
                                 "verbeteractiviteiten": "pending"}


def test_an_import_adds_a_topic_but_keeps_what_the_person_set(session, write_csv):
    subscriber_id = add_subscriber(session, "a@example.org", "limburg", "netwerk",
                                   name="Eigen Naam")
    path = write_csv(HEADER + "a@example.org,Andere Naam,,noord-holland,werkveld\n")
    report = import_list(session, path, topic="verbeteractiviteiten")
    assert report.updated == 1
    person = find_by_email(session, "a@example.org")
    assert (person.name, person.region) == ("Eigen Naam", "limburg")
    assert active_topics(session, subscriber_id) == ["updates", "verbeteractiviteiten"]


def test_export_round_trips_through_import(session, tmp_path):
    import_list(session, LISTS / "limburg.csv")
    add_subscriber(session, "both@example.org", topics=("updates", "verdiepingen"))
    left = add_subscriber(session, "left@example.org")
    unsubscribe(session, left)
    out = io.StringIO()
    assert export_list(session, out) == 6
    text = out.getvalue()
    assert text.startswith("email,name,organisation,region,audience,topics\n")
    assert "both@example.org,Test Persoon,Veilig Thuis,limburg,netwerk,updates verdiepingen" in text
    assert "left@example.org" not in text
    path = tmp_path / "export.csv"
    path.write_text(text, encoding="utf-8")
    report = import_list(session, path)
    assert report.unchanged == 6 and report.added == 0


FORMULAS = {"=sum@example.org": ("=1+1", "@SUM(A1)"), "+31@example.org": ("+31 6 1234", "-2"),
            "plain@example.org": ("'quoted", "''=twice"), "-x@example.org": ("Anouk", "O'Neil")}


def test_export_defuses_formulas_and_import_gives_them_back(session, tmp_path):
    for email, (name, organisation) in FORMULAS.items():
        subscriber_id = add_subscriber(session, email, name=name)
        session.get(Subscriber, subscriber_id).organisation = organisation
    session.flush()
    out = io.StringIO()
    export_list(session, out)
    cells = [cell for line in out.getvalue().splitlines()[1:] for cell in line.split(",")]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert "'=1+1" in cells and "'@SUM(A1)" in cells and "'-2" in cells and "'+31@example.org" in cells
    assert "''quoted" in cells and "O'Neil" in cells
    for email in FORMULAS:
        erase(session, find_by_email(session, email).id)
    for suppression in session.exec(select(Suppression)):
        session.delete(suppression)
    path = tmp_path / "export.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    assert import_list(session, path).added == len(FORMULAS)
    found = people(session)
    assert {e: (found[e].name, found[e].organisation) for e in FORMULAS} == FORMULAS


def test_a_topics_column_subscribes_each_row_to_its_topics(session, write_csv):
    path = write_csv("email,region,audience,topics\none@example.org,limburg,netwerk,verdiepingen\n"
                     "two@example.org,limburg,netwerk,\"updates, verbeteractiviteiten\"\n"
                     "three@example.org,limburg,netwerk,\n")
    assert import_list(session, path, topic="verdiepingen").added == 3
    found = people(session)
    assert active_topics(session, found["one@example.org"].id) == ["verdiepingen"]
    assert sorted(active_topics(session, found["two@example.org"].id)) == [
        "updates", "verbeteractiviteiten"]
    assert active_topics(session, found["three@example.org"].id) == ["verdiepingen"]


def test_new_people_beside_existing_ones_and_skipped_lines_get_their_own_topics(session, write_csv):
    add_subscriber(session, "old@example.org", topics=("updates",))
    add_subscriber(session, "older@example.org", topics=("verdiepingen",))
    path = write_csv("email,region,audience,topics\n"
                     "bad,limburg,netwerk,updates\n"
                     "one@example.org,limburg,netwerk,verdiepingen\n"
                     "old@example.org,limburg,netwerk,verbeteractiviteiten\n"
                     "one@example.org,limburg,netwerk,updates\n"
                     "two@example.org,limburg,netwerk,\"updates verbeteractiviteiten\"\n")
    report = import_list(session, path, skip_invalid=True)
    assert (report.added, report.updated, len(report.rejected)) == (2, 1, 2)
    found = people(session)
    assert len({p.id for p in found.values()}) == 4
    topics = {email: sorted(active_topics(session, p.id)) for email, p in found.items()}  # type: ignore[arg-type]
    assert topics == {"old@example.org": ["updates", "verbeteractiviteiten"],
                      "older@example.org": ["verdiepingen"],
                      "one@example.org": ["verdiepingen"],
                      "two@example.org": ["updates", "verbeteractiviteiten"]}


def test_a_duplicate_far_from_its_first_line_is_found(session, write_csv):
    rows = [f"p{n}@example.org,,,limburg,netwerk" for n in range(12_000)]
    rows.append("P7@example.org,,,limburg,netwerk")  # in another batch than line 9
    path = write_csv(HEADER + "\n".join(rows) + "\n")
    with pytest.raises(ListImportError) as caught:
        import_list(session, path)
    assert caught.value.report.rejected == ["line 12002: duplicate of line 9 (p7@example.org)"]
    assert people(session) == {}
    report = import_list(session, path, skip_invalid=True)
    assert report.added == 12_000 and len(people(session)) == 12_000


def test_an_error_late_in_a_long_file_still_changes_nothing(session, tmp_path):
    """The rows are read in a thread of their own; its error reaches the caller after earlier
    batches were staged, and nothing is imported."""
    rows = "".join(f"p{n}@example.org,,,limburg,netwerk\n" for n in range(12_000))
    path = tmp_path / "late.csv"
    path.write_bytes((HEADER + rows + "z@example.org,Zoë,,limburg,netwerk\n").encode("latin-1"))
    with pytest.raises(ListImportError, match="not UTF-8"):
        import_list(session, path)
    assert people(session) == {}


def test_an_import_that_rebuilds_indexes_leaves_them_as_they_were(session, write_csv, monkeypatch):
    """A list that at least doubles the table has its random-key indexes built again at the end
    (SQLite); afterwards they are the same indexes and find every new person."""
    monkeypatch.setattr(staging, "REBUILD_FROM", 10)
    add_subscriber(session, "old@example.org")
    before = inspect(session.connection()).get_indexes("subscriber")
    path = write_csv(HEADER + "".join(f"p{n}@example.org,,,limburg,netwerk\n" for n in range(40)))
    assert import_list(session, path).added == 40
    assert inspect(session.connection()).get_indexes("subscriber") == before
    new = people(session)["p7@example.org"]
    assert session.exec(select(Subscriber).where(
        Subscriber.address_hash == hash_address("p7@example.org"))).one().id == new.id
    assert session.exec(select(Subscriber).where(Subscriber.public_id == new.public_id)).one() == new
    assert len({p.public_id for p in people(session).values()}) == 41


def test_a_failing_import_that_dropped_indexes_leaves_them(session, write_csv, monkeypatch):
    """The batches before a duplicate far down the file were written, with two indexes dropped;
    the failure takes the writes back and the indexes stay."""
    monkeypatch.setattr(staging, "REBUILD_FROM", 10)
    add_subscriber(session, "old@example.org")
    before = inspect(session.connection()).get_indexes("subscriber")
    rows = "".join(f"p{n}@example.org,,,limburg,netwerk\n" for n in range(12_000))
    path = write_csv(HEADER + rows + "p7@example.org,,,limburg,netwerk\n")
    with pytest.raises(ListImportError, match="line 12002: duplicate of line 9"):
        import_list(session, path)
    assert inspect(session.connection()).get_indexes("subscriber") == before
    assert list(people(session)) == ["old@example.org"]


def test_people_far_down_a_long_list_get_the_same_outcome_as_in_a_short_one(session, write_csv):
    """Batches are written one by one: existing, departed and erased people in later batches,
    and a duplicate of a person an earlier batch added, come out as they would alone."""
    kept = add_subscriber(session, "kept@example.org", topics=("updates",))
    gains = add_subscriber(session, "gains@example.org", topics=("verdiepingen",))
    left = add_subscriber(session, "left@example.org")
    unsubscribe(session, left)
    erase(session, add_subscriber(session, "erased@example.org"))
    rows = [f"p{n}@example.org,,,limburg,netwerk" for n in range(9_000)]
    rows[4_500] = "kept@example.org,,,limburg,netwerk"  # second batch
    rows[8_100] = "gains@example.org,,,limburg,netwerk"  # third batch
    rows[8_200] = "left@example.org,,,limburg,netwerk"
    rows[8_300] = "erased@example.org,,,limburg,netwerk"
    rows[8_400] = "p5@example.org,,,limburg,netwerk"  # added by the first batch
    path = write_csv(HEADER + "\n".join(rows) + "\n")
    dry = import_list(session, path, dry_run=True, skip_invalid=True)
    report = import_list(session, path, skip_invalid=True)
    assert report.rejected == ["line 8402: duplicate of line 7 (p5@example.org)"]
    assert (report.added, report.updated, report.unchanged, report.left_alone) == (8_995, 1, 1, 2)
    assert (dry.added, dry.updated, dry.unchanged, dry.left_alone) == (8_995, 1, 1, 2)
    assert active_topics(session, kept) == ["updates"]
    assert sorted(active_topics(session, gains)) == ["updates", "verdiepingen"]
    assert active_topics(session, left) == []
    found = people(session)
    assert "erased@example.org" not in found and len(found) == 8_995 + 3
    assert active_topics(session, found["p8999@example.org"].id) == ["updates"]


def test_the_interpreter_switch_interval_is_put_back(session, write_csv):
    """The import shortens it while its reader thread runs; after it, failed or not, it is as it was."""
    before = sys.getswitchinterval()
    import_list(session, write_csv(HEADER + "a@example.org,,,limburg,netwerk\n"))
    with pytest.raises(ListImportError):
        import_list(session, write_csv(HEADER + "bad,,,limburg,netwerk\n"))
    assert sys.getswitchinterval() == before
