"""A client's record from a hostile file (issue 14): a SHA-256 is not a signature, so a
file whose answers were changed *and* whose hash was computed again must still be
refused when an answer does not fit the template; nothing is written."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from kaptools import notes
from kaptools.exports.record import client_bundle
from kaptools.exports.record_import import RecordNotImportable, import_record
from kaptools.extensions import db
from kaptools.fhir.terms import EXT_CONTENT_HASH, NOTE_IDS, SESSION_IDS, USER_IDS
from kaptools.models import Client, Note, User


def _identifier(resource, system):
    found = resource.get("identifier")
    found = found if isinstance(found, list) else [found]
    return next(i["value"] for i in found if i and i.get("system") == system)


def resealed(bundle: dict, change) -> dict:
    """``bundle`` with the thought record's answers changed by ``change`` and its hash
    computed again, as someone who wanted the change to pass would."""
    from kaptools.exports.record_import import _AnswerReader
    from kaptools.modality import get_registry

    bundle = json.loads(json.dumps(bundle))
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if "cbt-thought-record" not in resource.get("questionnaire", ""):
            continue
        change(resource["item"])
        slug, version = resource["questionnaire"].rsplit("/", 1)[1].split("|")
        template = get_registry().get(slug, int(version))
        try:
            answers = _AnswerReader(template).read(resource["item"])
        except ValueError:
            continue  # not even readable: no hash to forge
        encounter = by_url[resource["encounter"]["reference"]]
        digest = notes.record_hash(
            int(_identifier(resource, NOTE_IDS)), int(_identifier(encounter, SESSION_IDS)),
            int(resource["author"]["identifier"]["value"]), slug, int(version), answers)
        assert resource["author"]["identifier"]["system"] == USER_IDS
        for extension in resource["extension"]:
            if extension["url"] == EXT_CONTENT_HASH:
                extension["valueString"] = digest
    return bundle


def first_answer(items, kind):
    for item in items:
        for answer in item.get("answer", []):
            if kind in answer:
                return answer
        if found := first_answer(item.get("item", []), kind):
            return found
    return None


@pytest.fixture
def exported(app, world):
    with app.app_context():
        note = db.session.get(Note, world["note"])
        notes.sign(note, note.author)
        db.session.commit()
        return client_bundle(db.session.get(Client, world["client"]))


@pytest.mark.parametrize("change, said", [
    # A rating far outside its scale.
    (lambda items: first_answer(items, "valueCoding")["valueCoding"].update(code="999"),
     "has no option"),
    # A belief rating beyond 100 %.
    (lambda items: first_answer(items, "valueInteger").update(valueInteger=10**9),
     "do not fit the template"),
    # A text far longer than any field takes.
    (lambda items: first_answer(items, "valueString").update(valueString="x" * 2_000_000),
     "do not fit the template"),
    # A number written as text, which the FHIR library lets through.
    (lambda items: first_answer(items, "valueInteger").update(valueInteger="85"),
     "wrong type"),
    # Spaces kaptools trims: not what kaptools stored, whatever the hash says.
    (lambda items: first_answer(items, "valueString").update(valueString=" padded "),
     "not what kaptools stores"),
])
def test_a_resealed_answer_that_does_not_fit_is_refused(app, world, exported, change, said):
    with app.app_context():
        bundle = resealed(exported, change)
        tomas = db.session.scalar(select(User).where(User.username == "tomas"))
        before = db.session.scalar(select(func.count(Client.id)))
        with pytest.raises(RecordNotImportable) as refused:
            import_record(bundle, tomas, "Hostile file")
        assert said in str(refused.value)
        assert not db.session.new  # nothing written, before any rollback
        assert db.session.scalar(select(func.count(Client.id))) == before
        db.session.rollback()


def test_a_resealed_answer_that_fits_is_imported_but_says_where_it_came_from(
        app, world, exported):
    """The one thing a hash cannot catch: a plausible change with a new hash. The import
    says on the note whose seal it verified, and the audit trail who imported it."""
    def change(items):
        answer = first_answer(items, "valueString")
        answer["valueString"] = answer["valueString"] + " (edited)"

    with app.app_context():
        bundle = resealed(exported, change)
        tomas = db.session.scalar(select(User).where(User.username == "tomas"))
        report = import_record(bundle, tomas, "Moved clinic")
        db.session.commit()
        [note] = [n for c in report.client.courses for s in c.sessions for n in s.notes
                  if n.modality == "cbt-thought-record"]
        assert "(edited)" in json.dumps(note.answers)
        assert "Imported from a kaptools record export" in note.addenda[0].body


def test_a_boolean_written_as_text_is_refused(app, world):
    """The FHIR library accepts valueBoolean "false"; kaptools would have stored it as
    true (a non-empty string). A yes/no answer must be a boolean."""
    from kaptools.modality import get_registry

    with app.app_context():
        consent = get_registry().latest("informed-consent")
        from kaptools.models import TherapySession

        session = db.session.get(TherapySession, world["dosing"])
        note = notes.create_note(session, session.course.client.therapist, consent,
                                 dict(consent.sample))
        notes.sign(note, note.author)
        db.session.commit()
        bundle = json.loads(json.dumps(client_bundle(db.session.get(Client, world["client"]))))
        for entry in bundle["entry"]:
            if "informed-consent" in entry["resource"].get("questionnaire", ""):
                answer = first_answer(entry["resource"]["item"], "valueBoolean")
                assert answer is not None
                answer["valueBoolean"] = "false"
        tomas = db.session.scalar(select(User).where(User.username == "tomas"))
        with pytest.raises(RecordNotImportable, match="wrong type"):
            import_record(bundle, tomas, "Hostile file")
        assert not db.session.new
        db.session.rollback()


def test_a_session_dated_only_by_month_or_a_course_ending_first_is_refused_clearly(
        app, world, exported):
    with app.app_context():
        tomas = db.session.scalar(select(User).where(User.username == "tomas"))
        for change, said in [
            (lambda r: r["period"].update(start="2026-11"), "no readable date"),
            (lambda r: r["period"].update(end="2020-01-01"), "ends before it starts"),
            (lambda r: r["extension"][0].update(valueString="x" * 500), "longer than"),
        ]:
            bundle = json.loads(json.dumps(exported))
            kind = "Encounter" if "no readable date" in said else "EpisodeOfCare"
            change(next(e["resource"] for e in bundle["entry"]
                        if e["resource"]["resourceType"] == kind))
            with pytest.raises(RecordNotImportable, match=said):
                import_record(bundle, tomas, "Hostile file")
            assert not db.session.new
            db.session.rollback()
