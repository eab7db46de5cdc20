"""Notes: choose a modality, edit a draft, sign, add addenda."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.datastructures import MultiDict

from .. import audit, notes, reviews
from ..extensions import db
from ..markdown_render import render_markdown
from ..modality import get_registry
from ..modality.answers import (
    add_blank_rows,
    build_form,
    collect,
    compute_scores,
    iter_errors,
    validate_note,
)
from ..models import Note, NoteState, Signature
from ..textcheck import text_problem
from ..web import current_scope

bp = Blueprint("notes", __name__)
log = logging.getLogger("kaptools.notes")


class SignBlocked(Exception):
    """Signing must wait for a supervisor's approval of this version."""


def found_signatures(note: Note) -> list[Signature]:
    return list(db.session.scalars(select(Signature).where(Signature.note_id == note.id)
                                   .order_by(Signature.signed_at)))


def template_of(note: Note):
    template = get_registry().get(note.modality, note.template_version)
    if template is None:
        abort(500)
    return template


@bp.route("/sessions/<int:session_id>/notes/new", methods=["GET", "POST"])
def new_note(session_id: int):
    """Start a note of any modality, empty or carried forward from an earlier one."""
    scope = current_scope()
    therapy_session = scope.writable_session(session_id)
    registry = get_registry()
    if request.method == "POST":
        template = registry.latest(request.form.get("modality", ""))
        if template is None:
            flash("Choose one of the listed note types.", "error")
            return redirect(url_for(".new_note", session_id=session_id))
        answers, private = {}, {}
        from_id = request.form.get("from_note", type=int)
        if from_id:
            previous = scope.note(from_id)
            if previous.modality != template.slug or \
                    previous.session.course_id != therapy_session.course_id:
                abort(404)
            answers, private = _carry_forward(previous, template)
        note = notes.create_note(therapy_session, current_user, template, answers, private)
        db.session.commit()
        return redirect(url_for(".note", note_id=note.id))
    templates = registry.current()
    previous = {t.slug: notes.previous_notes(therapy_session, t.slug)[:1] for t in templates}
    return render_template("notes/new.html", therapy_session=therapy_session,
                           templates=templates, previous=previous)


def _carry_forward(previous: Note, template):
    """Copy an earlier note's answers into the current template version."""
    old = dict(previous.answers)
    private = notes.private_answers(previous, current_user)
    form = build_form(template, answers={**old, **private})
    validate_note(form, complete=False)
    record, private = collect(form)
    return record, private


@bp.route("/notes/<int:note_id>", methods=["GET", "POST"])
def note(note_id: int):
    """Edit a draft (its author), or read a note (signed, or someone else's)."""
    scope = current_scope()
    found = scope.note(note_id)
    template = template_of(found)
    editable = found.state == NoteState.DRAFT and found.author_id == current_user.id \
        and scope.owns(found.session.course.client)
    if request.method == "POST":
        if not editable:
            return _refuse_locked(found, template)
        return _save(found, template)
    if not editable:
        return _show(found, template)
    pending = notes.pending_autosave(found, current_user)
    if pending is not None:
        form = build_form(template, formdata=MultiDict(pending.formdata))
        validate_note(form, complete=False)
        if pending.base_version != found.version:
            return _conflict(found, template, form, autosaved_at=pending.saved_at)
    else:
        private = notes.private_answers(found, current_user)
        form = build_form(template, answers={**found.answers, **private})
    add_blank_rows(form)
    audit.record("note.opened", obj=found, client_code=found.session.course.client.code)
    db.session.commit()
    return render_template("notes/edit.html", note=found, template=template, form=form,
                           scores=compute_scores(template, collect(form)[0]),
                           restored_at=pending.saved_at if pending else None,
                           **_review_context(found))


def _review_context(found: Note) -> dict:
    """The latest review of a note, its comments by field, and who could review it."""
    history = reviews.note_reviews(found)
    latest = history[-1] if history else None
    return {"latest_review": latest,
            "field_comments": reviews.comments_by_field(latest) if latest else {},
            "supervisors": reviews.current_supervisors(current_user)
            if found.author_id == current_user.id else [],
            "sign_blocker": reviews.sign_blocker(found, current_user)
            if found.state == NoteState.DRAFT and found.author_id == current_user.id else None}


def _save(found: Note, template):
    note_id = found.id
    action = request.form.get("action", "save")
    signing = action == "sign"
    form = build_form(template, formdata=request.form)
    ok = validate_note(form, complete=signing)
    expected = request.form.get("note_version", type=int)
    if ok:
        record, private = collect(form)
        try:
            notes.save_answers(found, current_user, record, private, expected)
            # Checked after saving: an approval covers only the version that was read.
            if signing and (blocker := reviews.sign_blocker(found, current_user)):
                raise SignBlocked(blocker)
            if signing:
                notes.sign(found, current_user)
            db.session.commit()
        except SignBlocked as blocked:
            db.session.rollback()
            found = db.session.get(Note, note_id)
            form.form_errors_extra = [str(blocked)]
            ok = False
        except notes.NoteConflict:
            db.session.rollback()
            return _conflict(found, template, form)
        except StaleDataError:
            db.session.rollback()
            return _conflict(db.session.get(Note, note_id), template, form)
        except SQLAlchemyError:
            # Database locked, down or full: nothing was stored, and nothing typed is lost.
            log.exception("saving note %s failed", note_id)
            db.session.rollback()
            add_blank_rows(form)
            current = db.session.get(Note, note_id)
            return render_template(
                "notes/edit.html", note=current, template=template,
                form=form, scores=[], form_message=(
                    "The note could not be saved just now: the database did not respond. "
                    "Nothing was lost — everything you typed is still here. Try saving again "
                    "in a moment."), **_review_context(current)), 503
    if ok:
        if signing:
            flash("Note signed. It is now locked; corrections go in an addendum.", "success")
        else:
            flash("Draft saved.", "success")
        return redirect(url_for(".note", note_id=note_id))
    add_blank_rows(form)
    errors = list(iter_errors(form))
    if getattr(form, "form_errors_extra", None):
        message = "The note was not signed: " + " ".join(form.form_errors_extra) + \
            " Nothing was saved; everything you typed is still here."
    else:
        message = ("The note was not signed: " if signing else "Nothing was saved yet: ") + \
            f"{len(errors)} answer{'s' if len(errors) != 1 else ''} need attention. " \
            "Everything you typed is still here."
    return render_template("notes/edit.html", note=found, template=template, form=form,
                           scores=compute_scores(template, collect(form)[0]),
                           form_message=message, **_review_context(found)), 422


def _conflict(current: Note, template, mine, autosaved_at=None):
    add_blank_rows(mine)
    return render_template("notes/conflict.html", note=current, template=template,
                           form=mine, theirs=current.answers, autosaved_at=autosaved_at), 409


@bp.post("/notes/<int:note_id>/autosave")
def autosave(note_id: int):
    """Keep the editor's unsaved text beside the note (never in it)."""
    found = current_scope().writable_note(note_id)
    if found.author_id != current_user.id:
        abort(403)
    try:
        row = notes.autosave(found, current_user, list(request.form.items(multi=True)),
                             request.form.get("note_version", type=int))
        db.session.commit()
    except notes.NoteLocked:
        db.session.rollback()
        return jsonify(status="locked", message="This note is signed; nothing was saved."), 409
    except SQLAlchemyError:
        log.exception("autosave of note %s failed", note_id)
        db.session.rollback()
        return jsonify(status="unavailable",
                       message="Not saved yet: the database did not respond. Your text is "
                               "kept in this page; retrying."), 503
    return jsonify(status="saved", saved_at=row.saved_at.isoformat(),
                   conflict=row.base_version != found.version)


@bp.post("/notes/<int:note_id>/autosave/discard")
def discard_autosave(note_id: int):
    """Throw away unsaved editor text and go back to the saved note."""
    found = current_scope().writable_note(note_id)
    if found.author_id != current_user.id:
        abort(403)
    notes.discard_autosave(found)
    db.session.commit()
    flash("Unsaved changes discarded; this is the last saved version.", "info")
    return redirect(url_for(".note", note_id=found.id))


@bp.post("/preview")
def preview():
    """Render Markdown exactly as notes show it (sanitised)."""
    text = request.form.get("text", "")[:100_000]
    return jsonify(html=str(render_markdown(text)))


def _refuse_locked(found: Note, template):
    audit.record("note.edit_refused", obj=found, client_code=found.session.course.client.code)
    db.session.commit()
    if found.state != NoteState.DRAFT:
        flash("This note is signed and locked; nothing was changed. Add an addendum instead.",
              "error")
        return _show(found, template, status=409)
    abort(403)


def _show(found: Note, template, status: int = 200):
    audit.record("note.viewed", obj=found, client_code=found.session.course.client.code)
    db.session.commit()
    return render_template(
        "notes/show.html", note=found, template=template, answers=found.answers,
        private=notes.private_answers(found, current_user),
        scores=compute_scores(template, found.answers), hash_check=notes.verify_hash(found),
        is_author=found.author_id == current_user.id,
        cosignatures=[s for s in found_signatures(found) if s.kind == "cosign"],
        **_review_context(found)), status


@bp.post("/notes/<int:note_id>/sign")
def sign(note_id: int):
    """Sign a complete draft."""
    found = current_scope().writable_note(note_id)
    if found.author_id != current_user.id:
        abort(403)
    template = template_of(found)
    form = build_form(template, answers={**found.answers,
                                         **notes.private_answers(found, current_user)})
    if found.state != NoteState.DRAFT:
        return _refuse_locked(found, template)
    if not validate_note(form, complete=True):
        flash("The note cannot be signed yet: some required answers are missing.", "error")
        return redirect(url_for(".note", note_id=found.id))
    if blocker := reviews.sign_blocker(found, current_user):
        flash(blocker, "error")
        return redirect(url_for(".note", note_id=found.id))
    notes.sign(found, current_user)
    db.session.commit()
    flash("Note signed. It is now locked; corrections go in an addendum.", "success")
    return redirect(url_for(".note", note_id=found.id))


@bp.post("/notes/<int:note_id>/addenda")
def addendum(note_id: int):
    """Add a signed, dated addendum to a signed note."""
    found = current_scope().writable_note(note_id)
    body = (request.form.get("body") or "").strip()
    problem = text_problem(body) if body else "Write the addendum first."
    if not problem and len(body) > 10000:
        problem = "Keep an addendum under 10000 characters."
    if problem:
        flash(f"Addendum not added: {problem}", "error")
        return redirect(url_for(".note", note_id=found.id))
    try:
        notes.add_addendum(found, current_user, body)
    except notes.NoteLocked:
        flash("Only a signed note takes addenda.", "error")
        return redirect(url_for(".note", note_id=found.id))
    db.session.commit()
    flash("Addendum signed and added.", "success")
    return redirect(url_for(".note", note_id=found.id))


@bp.post("/notes/<int:note_id>/entered-in-error")
def entered_in_error(note_id: int):
    """Mark a signed note as entered in error, keeping its content."""
    found = current_scope().writable_note(note_id)
    reason = (request.form.get("reason") or "").strip()
    if not reason or text_problem(reason) or len(reason) > 2000:
        flash("Give a reason (up to 2000 characters) for marking the note in error.", "error")
        return redirect(url_for(".note", note_id=found.id))
    try:
        notes.mark_entered_in_error(found, current_user, reason)
    except notes.NoteLocked:
        flash("Only a signed note can be marked as entered in error.", "error")
        return redirect(url_for(".note", note_id=found.id))
    db.session.commit()
    flash("Note marked as entered in error. Its content is kept.", "success")
    return redirect(url_for(".note", note_id=found.id))
