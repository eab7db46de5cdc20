"""Supervision and audit: review cycle, access by relationship, and a tamper-evident trail."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from kaptools.extensions import db
from kaptools.modality.registry import builtin_dir, load_registry
from kaptools.models import AuditEvent, Note, Review, Signature, SupervisionRelationship, User
from kaptools.timeutil import today
from tests import factories
from tests.conftest import Browser, signed_in
from tests.notes_helpers import form_payload, new_note

CBT = load_registry(builtin_dir()).latest("cbt-thought-record")


browser_for = signed_in


@pytest.fixture
def world(app):
    with app.app_context():
        maya = factories.user("maya")
        ruth = factories.user("ruth", role="supervisor")
        factories.user("sam", role="supervisor")
        factories.user("ola", role="supervisor")
        ids = factories.client_with_course(maya)
        factories.supervise(ruth, maya, starts=today() - timedelta(days=30))
        ended = factories.supervise(db.session.scalar(select(User).where(User.username == "ola")),
                                    maya, starts=today() - timedelta(days=90),
                                    ends=today() - timedelta(days=1))
        return {**ids, "ruth": ruth.id, "maya": maya.id, "ended": ended.id}


def submit(b: Browser, note_id: int, reviewer_id: int):
    b.get(f"/notes/{note_id}")
    return b.post(f"/notes/{note_id}/submit", {"reviewer_id": str(reviewer_id)})


def latest_review(app, note_id: int) -> Review:
    with app.app_context():
        return db.session.scalar(select(Review).where(Review.note_id == note_id)
                                 .order_by(Review.round.desc()))


def test_the_whole_review_cycle(app, world):
    maya, ruth = browser_for(app, "maya"), browser_for(app, "ruth")
    note_id = world["note"]
    url = f"/notes/{note_id}"
    assert submit(maya, note_id, world["ruth"]).status_code == 302
    review = latest_review(app, note_id)
    assert review.status == "submitted" and review.round == 1

    # The supervisor finds it in the queue, reads it and comments on two fields.
    queue = ruth.get("/reviews?status=submitted").get_data(as_text=True)
    assert f"/reviews/{review.id}" in queue
    page = ruth.get(f"/reviews/{review.id}").get_data(as_text=True)
    assert "I am going to be fired" in page and "client smiled" not in page
    ruth.post(f"/reviews/{review.id}/comments",
              {"field_key": "evidence_against", "body": "Add the positive review from June."})
    ruth.post(f"/reviews/{review.id}/comments",
              {"field_key": "balanced_thought", "body": "Use the client's own words here."})
    ruth.post(f"/reviews/{review.id}/comments", {"body": "A careful record overall."})
    assert ruth.post(f"/reviews/{review.id}/return").status_code == 302

    # The therapist sees the item on the dashboard and the comments next to the fields.
    dash = maya.get("/").get_data(as_text=True)
    assert "Returned by your supervisor" in dash and "3 comments" in dash
    editor = maya.get(url).get_data(as_text=True)
    field_at = editor.index('id="evidence_against"')
    assert editor.index("Add the positive review from June.") > field_at
    assert "Use the client&#39;s own words here." in editor

    # Revise, sign, resubmit; the supervisor sees what changed.
    revised = {**CBT.sample, "evidence_against": "Last review was positive; June review too.",
               "balanced_thought": "My manager writes short emails to everyone."}
    revised.pop("process_notes")
    assert maya.post(url, form_payload(CBT, revised, version=1, action="sign")).status_code == 302
    assert submit(maya, note_id, world["ruth"]).status_code == 302
    second = latest_review(app, note_id)
    assert second.round == 2
    page = ruth.get(f"/reviews/{second.id}").get_data(as_text=True)
    assert "Changes since round 1" in page
    assert "June review too." in page and "Last review was positive. The manager" in page
    assert "Note state" in page

    # A signed note's review ends in co-signing, the one primary action offered.
    assert f"/reviews/{second.id}/approve" not in page
    assert f"/reviews/{second.id}/cosign" in page
    # Co-sign: a separate signature with its own time and hash, shown on the PDF.
    assert ruth.post(f"/reviews/{second.id}/cosign").status_code == 302
    with app.app_context():
        sigs = db.session.scalars(select(Signature).where(Signature.note_id == note_id)).all()
        kinds = sorted(s.kind for s in sigs)
        assert kinds == ["author", "cosign"]
        author, cosign = sorted(sigs, key=lambda s: s.kind)
        assert cosign.content_hash != author.content_hash and cosign.signed_at >= author.signed_at
        session_id = db.session.get(Note, note_id).session_id
    assert "Co-signed by Ruth" in re.sub(r"\s+", " ", maya.get(url).get_data(as_text=True))
    pdf = maya.get(f"/sessions/{session_id}/documents/summary.pdf").data
    text_ = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "Co-signed by Ruth" in re.sub(r"\s+", " ", text_)
    packet = ruth.get(f"/sessions/{session_id}/documents/packet.pdf").data
    packet_text = re.sub(r"\s+", " ", " ".join(
        p.extract_text() for p in PdfReader(io.BytesIO(packet)).pages))
    assert "Add the positive review from June." in packet_text
    assert "round 2, cosigned" in packet_text
    with app.app_context():
        actions = set(db.session.scalars(select(AuditEvent.action)))
    assert {"review.submitted", "review.commented", "review.returned", "review.cosigned",
            "review.viewed", "note.signed", "document.downloaded"} <= actions

    # Finished: the queue shows what waits by default, and "All" still finds it.
    assert f"/reviews/{second.id}\"" not in ruth.get("/reviews").get_data(as_text=True)
    assert f"/reviews/{second.id}\"" in ruth.get("/reviews?status=").get_data(as_text=True)
    # A co-signed note is not offered for review again until an addendum follows.
    assert "Send for review" not in maya.get(f"/notes/{note_id}").get_data(as_text=True)
    maya.post(f"/notes/{note_id}/addenda", {"body": "The June review was in writing."})
    assert "Send for review" in maya.get(f"/notes/{note_id}").get_data(as_text=True)


def test_a_trainee_signs_only_after_approval(app, world):
    with app.app_context():
        rel = db.session.scalar(select(SupervisionRelationship).where(
            SupervisionRelationship.supervisor_id == world["ruth"]))
        rel.review_mode = "approve_before_signing"
        db.session.commit()
    maya, ruth = browser_for(app, "maya"), browser_for(app, "ruth")
    url = f"/notes/{world['note']}"
    # One optional answer is left empty: the supervisor is offered no comment on it.
    kept = {k: v for k, v in CBT.sample.items() if k not in ("process_notes", "evidence_for")}
    assert maya.post(url, form_payload(CBT, kept)).status_code == 302
    payload = form_payload(CBT, kept, version=2, action="sign")
    resp = maya.post(url, payload)
    assert resp.status_code == 422 and "requires approval before signing" in \
        resp.get_data(as_text=True)
    submit(maya, world["note"], world["ruth"])
    review = latest_review(app, world["note"])
    # A draft's review ends in one clear action: approve (there is nothing to co-sign yet),
    # and only answered fields are offered for a comment.
    page = ruth.get(f"/reviews/{review.id}").get_data(as_text=True)
    assert "action='approve'" not in page and f"/reviews/{review.id}/approve" in page
    assert f"/reviews/{review.id}/cosign" not in page
    assert "Comment on “What was happening”" in page
    assert f"Comment on “{CBT.field('evidence_for').label}”" not in page
    ruth.post(f"/reviews/{review.id}/approve")
    assert maya.post(url, payload).status_code == 302
    with app.app_context():
        assert db.session.get(Note, world["note"]).state == "signed"


def test_supervisors_without_a_current_relationship_see_nothing(app, world):
    maya = browser_for(app, "maya")
    submit(maya, world["note"], world["ruth"])
    review = latest_review(app, world["note"])
    for username in ("sam", "ola"):  # no relationship; ended relationship
        b = browser_for(app, username)
        for path in [f"/reviews/{review.id}", f"/notes/{world['note']}",
                     f"/clients/{world['client']}", f"/courses/{world['course']}/documents/packet",
                     f"/sessions/{world['integration']}/documents/summary.pdf"]:
            assert b.get(path).status_code == 404, (username, path)
        for path in [f"/reviews/{review.id}/comments", f"/reviews/{review.id}/approve"]:
            assert b.post(path, {"body": "x"}).status_code == 404, (username, path)
        assert f"/reviews/{review.id}" not in b.get("/reviews").get_data(as_text=True)


def test_an_ended_relationship_ends_access_to_earlier_reviews(app, world):
    maya, ruth = browser_for(app, "maya"), browser_for(app, "ruth")
    submit(maya, world["note"], world["ruth"])
    review = latest_review(app, world["note"])
    assert ruth.get(f"/reviews/{review.id}").status_code == 200
    with app.app_context():
        rel = db.session.scalar(select(SupervisionRelationship).where(
            SupervisionRelationship.supervisor_id == world["ruth"]))
        rel.ends_on = today() - timedelta(days=1)
        db.session.commit()
    assert ruth.get(f"/reviews/{review.id}").status_code == 404
    assert ruth.post(f"/reviews/{review.id}/cosign").status_code == 404


def test_a_current_supervisor_reads_but_never_edits_or_sees_private_notes(app, world):
    ruth = browser_for(app, "ruth")
    page = ruth.get(f"/notes/{world['note']}").get_data(as_text=True)
    assert "I am going to be fired" in page and "client smiled" not in page
    resp = ruth.post(f"/notes/{world['note']}", form_payload(CBT, CBT.sample))
    assert resp.status_code == 403
    assert ruth.post(f"/notes/{world['note']}/autosave", form_payload(CBT, CBT.sample)) \
        .status_code == 403
    packet = ruth.get(f"/courses/{world['course']}/documents/packet.pdf").data
    packet_text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(packet)).pages)
    assert "client smiled" not in packet_text


def test_the_reviewer_must_be_a_current_supervisor(app, world):
    maya = browser_for(app, "maya")
    with app.app_context():
        ola = db.session.scalar(select(User).where(User.username == "ola")).id
    resp = submit(maya, world["note"], ola)
    assert resp.status_code == 302
    assert latest_review(app, world["note"]) is None


# --- audit ---------------------------------------------------------------------

def _tamper(app, event_id: int) -> None:
    """Change one audit row the way an attacker with owner rights could."""
    with app.app_context():
        dialect = db.engine.dialect.name
        with db.engine.begin() as conn:
            if dialect == "postgresql":
                conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
            else:
                conn.execute(text("DROP TRIGGER audit_event_no_update"))
            conn.execute(text("UPDATE audit_event SET username = 'nobody' WHERE id = :id"),
                         {"id": event_id})
            if dialect == "postgresql":
                conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))


def test_audit_verify_names_a_tampered_row(app, world, runner):
    browser_for(app, "maya").get(f"/clients/{world['client']}")
    ok = runner.invoke(args=["audit", "verify"])
    assert ok.exit_code == 0 and "Audit chain intact" in ok.output
    with app.app_context():
        ids = db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()
    victim = ids[len(ids) // 2]
    _tamper(app, victim)
    broken = runner.invoke(args=["audit", "verify"])
    assert broken.exit_code == 1
    assert f"BROKEN at event {victim}:" in broken.output


def test_the_audit_log_refuses_updates_and_deletes_below_the_orm(app, world):
    with app.app_context():
        event_id = db.session.scalar(select(AuditEvent.id).limit(1))
        for sql in ("UPDATE audit_event SET action = 'x' WHERE id = :id",
                    "DELETE FROM audit_event WHERE id = :id"):
            with pytest.raises(DatabaseError):
                with db.engine.begin() as conn:
                    conn.execute(text(sql), {"id": event_id})


def test_a_signed_note_cannot_be_changed_below_the_orm(app, world):
    maya = browser_for(app, "maya")
    sample = {k: v for k, v in CBT.sample.items() if k != "process_notes"}
    maya.post(f"/notes/{world['note']}", form_payload(CBT, sample, action="sign"))
    with app.app_context():
        for sql in ("UPDATE note SET answers = '{}' WHERE id = :id",
                    "UPDATE note SET state = 'draft' WHERE id = :id",
                    "DELETE FROM note WHERE id = :id"):
            with pytest.raises(DatabaseError):
                with db.engine.begin() as conn:
                    conn.execute(text(sql), {"id": world["note"]})
        # Marking it entered in error stays possible (content kept).
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE note SET state = 'entered_in_error', error_reason = 'x' "
                              "WHERE id = :id"), {"id": world["note"]})


def test_the_audit_log_holds_no_note_text(app, world):
    maya, ruth = browser_for(app, "maya"), browser_for(app, "ruth")
    url = new_note(maya, world["integration"], "cbt-thought-record")
    maya.post(url, form_payload(CBT, CBT.sample, action="sign"))
    maya.get(url)
    submit(maya, int(url.rsplit("/", 1)[1]), world["ruth"])
    review = latest_review(app, int(url.rsplit("/", 1)[1]))
    ruth.post(f"/reviews/{review.id}/comments", {"field_key": "situation",
                                                   "body": "Comment text stays out of audit"})
    maya.get(f"/courses/{world['course']}/documents/summary.pdf")
    with app.app_context():
        with db.engine.connect() as conn:
            dump = " ".join(str(row) for row in conn.execute(text("SELECT * FROM audit_event")))
    needles = [v for v in CBT.sample.values() if isinstance(v, str) and len(v) > 8]
    needles += [t["thought"] for t in CBT.sample["thoughts"]] + ["Comment text stays out"]
    for needle in needles:
        assert needle not in dump, needle


def test_admins_search_the_audit_trail(app, world):
    browser_for(app, "maya").get(f"/clients/{world['client']}")
    with app.app_context():
        factories.user("admin", role="admin")
    admin = browser_for(app, "admin")
    page = admin.get("/admin/audit?user=maya&action=client.viewed&client=KT-0001")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "client.viewed" in body and "KT-0001" in body
    assert "login.failed" not in body
    assert browser_for(app, "maya").get("/admin/audit").status_code == 404


def test_an_approval_covers_only_the_version_that_was_read(app, world):
    with app.app_context():
        rel = db.session.scalar(select(SupervisionRelationship).where(
            SupervisionRelationship.supervisor_id == world["ruth"]))
        rel.review_mode = "approve_before_signing"
        db.session.commit()
    maya, ruth = browser_for(app, "maya"), browser_for(app, "ruth")
    submit(maya, world["note"], world["ruth"])
    ruth.post(f"/reviews/{latest_review(app, world['note']).id}/approve")
    changed = {k: v for k, v in CBT.sample.items() if k != "process_notes"}
    changed["balanced_thought"] = "Written after the approval"
    resp = maya.post(f"/notes/{world['note']}", form_payload(CBT, changed, action="sign"))
    assert resp.status_code == 422
    assert "changed after your supervisor approved it" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Note, world["note"]).state == "draft"


def test_a_cosignature_covers_only_what_was_submitted(app, world):
    maya, ruth = browser_for(app, "maya"), browser_for(app, "ruth")
    submit(maya, world["note"], world["ruth"])  # submitted as a draft
    sample = {k: v for k, v in CBT.sample.items() if k != "process_notes"}
    maya.post(f"/notes/{world['note']}", form_payload(CBT, {**sample, "situation": "Changed"},
                                                      action="sign"))
    review = latest_review(app, world["note"])
    resp = ruth.post(f"/reviews/{review.id}/cosign")
    assert resp.status_code == 302
    assert "what you read is not what would be co-signed" in \
        ruth.get(resp.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        kinds = db.session.scalars(select(Signature.kind).where(
            Signature.note_id == world["note"])).all()
        assert kinds == ["author"]
        assert db.session.get(Review, review.id).status == "submitted"


def test_a_course_summary_goes_through_review(app, world):
    maya, ruth = browser_for(app, "maya"), browser_for(app, "ruth")
    course_url = f"/courses/{world['course']}"
    maya.get(course_url)
    assert maya.post(f"{course_url}/submit", {"reviewer_id": str(world["ruth"])}) \
        .status_code == 302
    with app.app_context():
        review = db.session.scalar(select(Review).where(Review.course_id == world["course"]))
        rid = review.id
    queue = ruth.get("/reviews").get_data(as_text=True)
    assert f"/reviews/{rid}" in queue and "Course summary: Intensive" in queue
    page = ruth.get(f"/reviews/{rid}").get_data(as_text=True)
    assert "I am going to be fired" in page and "client smiled" not in page
    anchor = f"note:{world['note']}:situation"
    assert ruth.post(f"/reviews/{rid}/comments", {"field_key": anchor,
                                                  "body": "Say which Sunday."}).status_code == 302
    bad = ruth.post(f"/reviews/{rid}/comments", {"field_key": "note:99999",
                                                 "body": "Kept though refused"})
    # Refused at the form, with the comment's text still there to fix and send again.
    assert bad.status_code == 422
    assert "not part of this submission" in bad.get_data(as_text=True)
    assert "Kept though refused" in bad.get_data(as_text=True)
    # With a draft in the summary the one final action offered is approval, which says
    # that nothing gets co-signed.
    assert f"/reviews/{rid}/approve" in page and f"/reviews/{rid}/cosign" not in page
    assert "nothing is co-signed" in page and "trainee may sign" not in page
    # Co-signing needs every note signed at submission: refused for a draft.
    ruth.post(f"/reviews/{rid}/cosign")
    with app.app_context():
        assert db.session.get(Review, rid).status == "submitted"
    ruth.post(f"/reviews/{rid}/return")
    assert "Course summary: Intensive" in maya.get("/").get_data(as_text=True)
    # Revise (sign the note) and resubmit: the diff shows it, and now it can be co-signed.
    sample = {k: v for k, v in CBT.sample.items() if k != "process_notes"}
    maya.post(f"/notes/{world['note']}", form_payload(CBT, sample, action="sign"))
    maya.get(course_url)
    maya.post(f"{course_url}/submit", {"reviewer_id": str(world["ruth"])})
    with app.app_context():
        second = db.session.scalar(select(Review).where(Review.course_id == world["course"],
                                                        Review.round == 2)).id
    page = ruth.get(f"/reviews/{second}").get_data(as_text=True)
    assert "Changes since round 1" in page and "Note state" in page
    # Every note signed: co-signing them all is the one final action.
    assert f"/reviews/{second}/cosign" in page and f"/reviews/{second}/approve" not in page
    assert ruth.post(f"/reviews/{second}/cosign").status_code == 302
    with app.app_context():
        kinds = sorted(db.session.scalars(select(Signature.kind).where(
            Signature.note_id == world["note"])).all())
        assert kinds == ["author", "cosign"]
        assert db.session.get(Review, second).status == "cosigned"
    # Another supervisor never sees it.
    assert browser_for(app, "sam").get(f"/reviews/{second}").status_code == 404


def test_the_editor_offers_only_current_supervisors_with_active_accounts(app, world):
    """Ruth (current) is offered; Ola (ended yesterday) and Sam (current, but deactivated)
    are not, and a note cannot be sent to Sam by posting his id."""
    with app.app_context():
        sam = db.session.scalar(select(User).where(User.username == "sam"))
        factories.supervise(sam, db.session.get(User, world["maya"]),
                            starts=today() - timedelta(days=3))
        sam.active = False
        db.session.commit()
        sam_id, ola_id = sam.id, db.session.scalar(select(User.id).where(User.username == "ola"))
    maya = browser_for(app, "maya")
    page = maya.get(f"/notes/{world['note']}").get_data(as_text=True)
    offered = re.search(r'<select id="reviewer_id" name="reviewer_id">(.*?)</select>', page,
                        re.S).group(1)
    assert re.findall(r'<option value="(\d+)">([^<]+)</option>', offered) == [
        (str(world["ruth"]), "Ruth")]
    assert str(sam_id) not in offered and str(ola_id) not in offered
    submit(maya, world["note"], sam_id)
    assert latest_review(app, world["note"]) is None
