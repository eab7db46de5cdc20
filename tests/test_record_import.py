"""A client's record goes out as FHIR and comes back in (issue 14, acceptance 1): every
answer of every signed note arrives exactly, checked against the seal it was signed
with; a changed file or a client already here is refused and nothing is written."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from kaptools import notes
from kaptools.cli import upgrade_database
from kaptools.exports.record import client_bundle
from kaptools.exports.record_import import RecordNotImportable, import_record
from kaptools.extensions import db
from kaptools.models import AuditEvent, Client, Note, NoteState, User
from kaptools.notes import canonical_json
from tests import factories
from tests.conftest import close_app, demo_source_app, make_app
from tests.test_fhir import NAMES, TEMPLATES, write_note


def run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def record_of(client: Client) -> Counter:
    """What a record holds, without this instance's ids: one entry per signed note."""
    found: Counter = Counter()
    for course in client.courses:
        sessions = {s.id: s for s in course.sessions}
        for therapy_session in course.sessions:
            follows = sessions.get(therapy_session.follows_id)
            for note in therapy_session.notes:
                if note.state == NoteState.DRAFT:
                    continue
                found[(course.title, course.format, course.intentions, str(course.starts_on),
                       therapy_session.kind, str(therapy_session.session_date),
                       therapy_session.summary, follows.kind if follows else None,
                       note.modality, note.template_version, note.state,
                       note.error_reason, canonical_json(note.answers))] += 1
    return found


def test_every_demo_record_travels_to_an_empty_instance_answer_for_answer(databases, tmp_path):
    source = demo_source_app(tmp_path)
    with source.app_context():
        # One note withdrawn, so a note entered in error travels too.
        signed = db.session.scalar(select(Note).where(Note.state == NoteState.SIGNED)
                                   .order_by(Note.id))
        notes.mark_entered_in_error(signed, signed.author, "Written in the wrong session.")
        # And a signed correction, which travels with its note.
        corrected = db.session.scalar(select(Note).where(Note.state == NoteState.SIGNED)
                                      .order_by(Note.id.desc()))
        notes.add_addendum(corrected, corrected.author, "Correction: the SUD was 3, not 4.")
        db.session.commit()
        clients = db.session.scalars(select(Client).order_by(Client.id)).all()
        expected = {c.code: record_of(c) for c in clients}
        assert sum(sum(r.values()) for r in expected.values()) > 10
    files = []
    for code in expected:
        out = tmp_path / f"{code}.fhir.json"
        with source.app_context():
            client_id = db.session.scalar(select(Client.id).where(Client.code == code))
        made = run(source, "export", "record", "--client-id", str(client_id), "--reason",
                   "Moving clinic", "-o", str(out))
        assert made.exit_code == 0, made.output
        files.append((code, out))
    close_app(source)

    target = make_app(databases.new_url(), tmp_path / "b")
    with target.app_context():
        upgrade_database()
        factories.user("noor")
    for code, out in files:
        result = run(target, "import", str(out), "--therapist", "noor",
                     "--reason", "Client moved to us")
        assert result.exit_code == 0, result.output
        assert f"Added client {code} for noor" in result.output
    with target.app_context():
        noor = db.session.scalar(select(User).where(User.username == "noor"))
        arrived = db.session.scalars(select(Client).where(Client.therapist_id == noor.id)).all()
        assert {c.code: record_of(c) for c in arrived} == expected
        imported = db.session.scalars(select(Note)).all()
        assert imported and all(notes.verify_hash(n).ok for n in imported)
        for note in imported:
            provenance, *corrections = note.addenda
            assert "Imported from a kaptools record export" in provenance.body
            assert "match it exactly" in provenance.body
        [correction] = [a for n in imported for a in n.addenda[1:]]
        assert correction.body.endswith("Correction: the SUD was 3, not 4.")
        assert "its seal verified" in correction.body
        events = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "import.record")).all()
        assert len(events) == len(files)
        assert {e.detail["reason"] for e in events} == {"Client moved to us"}
        notes_before = db.session.scalar(select(func.count(Note.id)))
    assert run(target, "audit", "verify").exit_code == 0

    # The same record again: refused, nothing written.
    code, out = files[0]
    again = run(target, "import", str(out), "--therapist", "noor", "--reason", "Twice")
    assert again.exit_code != 0
    assert f"noor already has a client {code}" in again.output
    assert "Nothing was imported" in again.output
    with target.app_context():
        assert db.session.scalar(select(func.count(Note.id))) == notes_before
    close_app(target)


@pytest.fixture
def two_therapists(app):
    with app.app_context():
        maya = factories.user("maya")
        factories.user("noor")
        ids = factories.client_with_course(maya)
        factories.screened_and_consented(ids["course"], maya)
        return ids


def exported(app, client_id: int) -> dict[str, Any]:
    with app.app_context():
        return client_bundle(db.session.get(Client, client_id))


def noor(app) -> User:
    return db.session.scalar(select(User).where(User.username == "noor"))


@pytest.mark.parametrize("template", TEMPLATES, ids=NAMES)
def test_every_kind_of_answer_reads_back_exactly(app, two_therapists, template):
    """Each shipped template's sample (every field type there is: ratings, choices,
    repeating rows and references to them, times, decimals) survives the round trip."""
    with app.app_context():
        note = write_note(two_therapists["integration"], template)
        sent = dict(note.answers)
    bundle = exported(app, two_therapists["client"])
    with app.app_context():
        report = import_record(bundle, noor(app), "Test")
        db.session.commit()
        [arrived] = [n for s in report.client.courses[0].sessions for n in s.notes
                     if n.modality == template.slug and s.kind == "integration"]
        assert arrived.answers == sent
        assert arrived.template_version == template.version
        assert arrived.state == NoteState.SIGNED and notes.verify_hash(arrived).ok


@pytest.fixture
def signed_bundle(app, two_therapists) -> dict:
    """The exported record of a client whose thought record was signed."""
    with app.app_context():
        note = db.session.get(Note, two_therapists["note"])
        notes.sign(note, note.author)
        db.session.commit()
    return exported(app, two_therapists["client"])


def test_a_changed_answer_is_caught_by_the_seal_and_nothing_is_written(app, signed_bundle):
    bundle = signed_bundle
    text = json.dumps(bundle)
    # Someone edits the thought record's situation in the file.
    response = next(e["resource"] for e in bundle["entry"]
                    if "cbt-thought-record" in e["resource"].get("questionnaire", ""))

    def change_first_text(items) -> bool:
        for item in items:
            for answer in item.get("answer", []):
                if "valueString" in answer and not item["linkId"].startswith("score-"):
                    answer["valueString"] = answer["valueString"] + " (and more)"
                    return True
            if change_first_text(item.get("item", [])):
                return True
        return False

    assert change_first_text(response["item"])
    assert json.dumps(bundle) != text
    with app.app_context():
        clients_before = db.session.scalar(select(func.count(Client.id)))
        with pytest.raises(RecordNotImportable) as refused:
            import_record(bundle, noor(app), "Test")
        assert "do not match the hash sealed" in str(refused.value)
        # Counted before any rollback: the refusal came before anything was written.
        assert not db.session.new
        assert db.session.scalar(select(func.count(Client.id))) == clients_before
        db.session.rollback()


def test_a_bundle_that_is_not_a_kaptools_record_is_refused_clearly(app, signed_bundle):
    bundle = signed_bundle
    with app.app_context():
        with pytest.raises(RecordNotImportable, match="not a FHIR Bundle"):
            import_record({"resourceType": "Patient"}, noor(app), "Test")
        broken = json.loads(json.dumps(bundle))
        broken["entry"][0]["resource"]["active"] = "perhaps"
        with pytest.raises(RecordNotImportable, match="FHIR library refuses"):
            import_record(broken, noor(app), "Test")
        foreign = json.loads(json.dumps(bundle))
        for entry in foreign["entry"]:
            if entry["resource"]["resourceType"] == "QuestionnaireResponse":
                entry["resource"]["questionnaire"] = "http://example.org/Questionnaire/x|1"
        with pytest.raises(RecordNotImportable, match="not a kaptools template"):
            import_record(foreign, noor(app), "Test")
        # Maya already has this client: her record is never merged into.
        maya = db.session.scalar(select(User).where(User.username == "maya"))
        with pytest.raises(RecordNotImportable, match="maya already has a client KT-0001"):
            import_record(bundle, maya, "Test")
