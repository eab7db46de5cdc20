"""A client's record leaves as one FHIR R4 Bundle: checked by the FHIR library, signed
notes only, no private notes and no name, every export audited with its reason."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from kaptools import notes
from kaptools.extensions import db
from kaptools.models import AuditEvent, Client, Note
from kaptools.timeutil import today
from tests import factories
from tests.conftest import signed_in


@pytest.fixture
def record(app):
    """Maya's client with a signed note (private process notes kept apart) and a draft;
    Ruth supervises Maya; Sam is another therapist."""
    from datetime import timedelta

    from kaptools.modality import get_registry

    with app.app_context():
        maya = factories.user("maya")
        ruth = factories.user("ruth", role="supervisor")
        factories.user("sam")
        factories.supervise(ruth, maya, starts=today() - timedelta(days=30))
        ids = factories.client_with_course(maya)
        db.session.get(Client, ids["client"]).display_name = "Jordan Avery"
        signed = db.session.get(Note, ids["note"])
        notes.sign(signed, maya)
        gad = get_registry().latest("gad-7")
        draft = notes.create_note(signed.session, maya, gad, dict(gad.sample))
        db.session.commit()
        return {**ids, "draft": draft.id}


def download(app, who: str, client_id: int, reason: str = "The client asked for a copy."):
    browser = signed_in(app, who)
    browser.get(f"/clients/{client_id}/export")
    return browser.post(f"/clients/{client_id}/export", {"reason": reason})


def test_the_record_is_a_valid_bundle_of_signed_notes(app, record):
    answer = download(app, "maya", record["client"])
    assert answer.status_code == 200 and answer.mimetype == "application/fhir+json"
    assert "attachment" in answer.headers["Content-Disposition"]
    bundle = json.loads(answer.get_data(as_text=True))
    Bundle.model_validate(bundle)  # the FHIR library accepts it
    kinds = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
    assert kinds == {"Patient": 1, "EpisodeOfCare": 1, "Encounter": 2,
                     "QuestionnaireResponse": 1, "Provenance": 1, "Questionnaire": 1}
    [response] = [e["resource"] for e in bundle["entry"]
                  if e["resource"]["resourceType"] == "QuestionnaireResponse"]
    assert response["status"] == "completed"
    assert response["questionnaire"].endswith("/cbt-thought-record|1")
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert response["subject"]["reference"] in urls
    assert response["encounter"]["reference"] in urls
    [provenance] = [e["resource"] for e in bundle["entry"]
                    if e["resource"]["resourceType"] == "Provenance"]
    assert provenance["target"][0]["reference"] in urls
    with app.app_context():
        note = db.session.get(Note, record["note"])
        assert note.content_hash in provenance["entity"][0]["what"]["display"]
        private = note.session and notes.private_answers(note, note.author)
    text = json.dumps(bundle, ensure_ascii=False)
    # Pseudonymous: the code, never the name; no private process notes; no draft.
    assert "KT-0001" in text and "Jordan Avery" not in text
    assert private and all(str(v) not in text for v in private.values())
    assert "gad-7" not in text


def test_every_export_is_audited_with_its_reason(app, record):
    download(app, "maya", record["client"], reason="Moving to the regional clinic's system.")
    with app.app_context():
        [event] = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "export.record")).all()
        assert event.username == "maya" and event.client_code == "KT-0001"
        assert event.detail["reason"] == "Moving to the regional clinic's system."
        assert event.detail["resources"]["QuestionnaireResponse"] == 1


def test_a_reason_is_required_and_nothing_leaves_without_one(app, record):
    answer = download(app, "maya", record["client"], reason="   ")
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    assert "Say why the record is exported" in page
    with app.app_context():
        assert db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "export.record")) is None


def test_only_the_clients_therapist_exports(app, record):
    assert download(app, "ruth", record["client"]).status_code == 403
    assert download(app, "sam", record["client"]).status_code == 404


def test_the_command_line_writes_the_same_bundle_and_audits_it(app, record, tmp_path):
    out = tmp_path / "record.json"
    result = app.test_cli_runner().invoke(args=[
        "export", "record", "--client-id", str(record["client"]), "--reason",
        "Client's request by letter", "-o", str(out)])
    assert result.exit_code == 0, result.output
    Bundle.model_validate(json.loads(out.read_text()))
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "export.record"))
        assert event.username == "cli" and event.detail["reason"] == "Client's request by letter"
    refused = app.test_cli_runner().invoke(args=[
        "export", "record", "--client-id", "999999", "--reason", "x", "-o", str(out)])
    assert refused.exit_code != 0 and "no client with id 999999" in refused.output


def test_every_demo_record_and_note_exports_and_validates(app):
    """Issue 14: every demo note's QuestionnaireResponse, and every demo client's Bundle,
    pass the FHIR library."""
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

    from kaptools.demo import load_demo
    from kaptools.exports.record import client_bundle
    from kaptools.fhir import questionnaire_response

    with app.app_context():
        load_demo()
        every_note = db.session.scalars(select(Note)).all()
        assert len(every_note) > 20
        for note in every_note:
            QuestionnaireResponse.model_validate(questionnaire_response(note))
        exported = 0
        for client in db.session.scalars(select(Client)):
            bundle = client_bundle(client)
            Bundle.model_validate(bundle)
            exported += sum(e["resource"]["resourceType"] == "QuestionnaireResponse"
                            for e in bundle["entry"])
        assert exported == sum(n.state != "draft" for n in every_note)
