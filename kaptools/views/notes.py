"""Notes: choose a modality, edit a draft, sign, add addenda."""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.datastructures import MultiDict

from .. import audit, notes, reviews
from ..auth import carry_token
from ..extensions import db
from ..forms import AddendumForm, EnteredInErrorForm
from ..i18n import _, ngettext
from ..markdown_render import render_markdown
from ..modality import get_registry
from ..modality.answers import (
    bounded_pairs,
    build_form,
    carried_answers,
    collect,
    compute_scores,
    iter_errors,
    prepare_editor,
    validate_note,
)
from ..models import Note, NoteState
from ..timeutil import shown
from ..web import current_scope, shown_and_recorded

bp = Blueprint("notes", __name__)
log = logging.getLogger("kaptools.notes")


class SignBlocked(Exception):
    """Signing must wait for a supervisor's approval of this version."""


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
            flash(_("Choose one of the listed note types."), "error")
            return redirect(url_for(".new_note", session_id=session_id))
        answers, private = {}, {}
        from_id = request.form.get("from_note", type=int)
        if from_id:
            previous = scope.note(from_id)
            if previous.modality != template.slug or \
                    previous.session.course_id != therapy_session.course_id:
                abort(404)
            answers, private = _carry_forward(previous, template)
        answers = notes.session_prefill(therapy_session, template, answers)
        note = notes.create_note(therapy_session, current_user, template, answers, private)
        db.session.commit()
        return redirect(url_for(".note", note_id=note.id))
    main, also, others = registry.for_session(therapy_session.kind)
    previous = {t.slug: notes.previous_notes(therapy_session, t.slug)[:1]
                if t.carries_anything else [] for t in main + also + others}
    # Cards for the notes this kind of session is mainly for; a list for the rest.
    return render_template("notes/new.html", therapy_session=therapy_session, main=main,
                           also=also, others=others, previous=previous)


def _carry_forward(previous: Note, template):
    """Copy an earlier note's lasting answers (never its measurements, vitals, item
    answers, events or logs) into the current template version."""
    old = dict(previous.answers)
    private = notes.private_answers(previous, current_user)
    kept = carried_answers(template.fields, {**old, **private})
    form = build_form(template, answers=kept)
    validate_note(form, complete=False)
    record, private = collect(form)
    return record, private


@bp.route("/notes/<int:note_id>", methods=["GET", "POST"])
def note(note_id: int):
    """Edit a draft (its author), or read a note (signed, or someone else's)."""
    scope = current_scope()
    if request.method == "POST":
        found = scope.note(note_id)
        template = template_of(found)
        if not _editable(scope, found):
            return _refuse_locked(found, template)
        return _save(found, template)
    page = notes.note_page(scope, note_id)
    found = page.note
    template = template_of(found)
    if not _editable(scope, found):
        return _show(found, template, page=page)
    pending = notes.unsaved_elsewhere(found, current_user, editor_id=None) \
        if page.autosaved else None
    if pending is not None:
        form = build_form(template, formdata=MultiDict(pending.formdata))
        validate_note(form, complete=False)
        if pending.base_version != found.version:
            return _conflict(found, template, form, pending.editor_id,
                             autosaved_at=pending.saved_at)
        editor_id = pending.editor_id  # this page carries on where that tab stopped
    else:
        # Notes written in the session since this one was started fill what is empty.
        shown = notes.session_prefill(found.session, template, found.answers, found.id)
        form = build_form(template, answers={**shown, **page.private})
        editor_id = notes.new_editor_id()
    return shown_and_recorded(_editor(found, template, form, editor_id,
                                      restored_at=pending.saved_at if pending else None,
                                      reviewed=page.reviewed,
                                      relationships=page.relationships),
                              "note.opened", found, found.session.course.client.code)


def _editable(scope, found: Note) -> bool:
    """Whether this user edits the note (its author, a draft, their own client's)."""
    return found.state == NoteState.DRAFT and found.author_id == current_user.id \
        and scope.owns(found.session.course.client)


def _editor(found: Note, template, form, editor_id: str, status: int = 200,
            reviewed: bool = True, relationships=None, **page):
    """The editor page: rows to add, the editor's identity, what the last save settled.
    ``reviewed``: False when the note is known never to have been sent for review;
    ``relationships``: the author's supervision, when already read with the note."""
    prepare_editor(form)
    if "scores" not in page:  # the live totals (the form's answers are read only for them)
        page["scores"] = compute_scores(template, collect(form)[0]) if template.scores else []
    return render_template(
        "notes/edit.html", note=found, template=template, form=form, editor_id=editor_id,
        carry_token=carry_token(current_user.id, url_for(".note", note_id=found.id)),
        saved_editor=session.pop("saved_editor", None), **page,
        **_review_context(found, reviewed, relationships)), status


def _review_context(found: Note, reviewed: bool = True, relationships=None) -> dict:
    """The latest review of a note, its comments by field, and who could review it
    (``reviewed``: False when the note is known never to have been sent for review;
    ``relationships``: the author's supervision, when already read with the note)."""
    history = reviews.note_reviews(found) if reviewed else []
    latest = history[-1] if history else None
    mine = found.author_id == current_user.id
    my_draft = mine and found.state == NoteState.DRAFT
    if not mine:
        relationships = []
    elif relationships is None:
        relationships = reviews.current_relationships(current_user)
    return {"latest_review": latest,
            "field_comments": reviews.comments_by_field(latest) if latest else {},
            "supervisors": reviews.current_supervisors(current_user, relationships),
            "sign_blocker": reviews.sign_blocker(found, current_user, relationships, history)
            if my_draft else None,
            "sign_refusal": notes.sign_refusal(found) if my_draft else None,
            "recall_warning": notes.recall_overlap(found) if my_draft else None}


def _editor_id() -> str:
    """The editor a post comes from; posts that do not say share one slot."""
    return notes.valid_editor_id(request.form.get("editor_id")) or UNNAMED_EDITOR


UNNAMED_EDITOR = "unnamed-editor"


def _save(found: Note, template):
    note_id = found.id
    signing = request.form.get("action", "save") == "sign"
    editor_id = _editor_id()
    form = build_form(template, formdata=request.form)
    ok = validate_note(form, complete=signing)
    expected = request.form.get("note_version", type=int)
    problem = None
    if ok:
        record, private = collect(form)
        try:
            notes.save_answers(found, current_user, record, private, expected, editor_id)
            if signing and (refusal := notes.sign_refusal(found)) is not None:
                db.session.commit()  # what was typed is kept; only the signature waits
                session["saved_editor"] = editor_id
                flash(_("Draft saved, but not signed. %(reason)s", reason=refusal), "error")
                return redirect(url_for(".note", note_id=note_id))
            # Checked after saving: an approval covers only the version that was read.
            if signing and (blocker := reviews.sign_blocker(found, current_user)):
                raise SignBlocked(blocker)
            if signing:
                notes.sign(found, current_user, editor_id)
            db.session.commit()
        except SignBlocked as blocked:
            db.session.rollback()
            problem = str(blocked)
        except notes.UnsavedElsewhere as elsewhere:
            db.session.rollback()
            problem = _elsewhere_message(elsewhere.pending)
        except (notes.NoteConflict, StaleDataError):
            db.session.rollback()
            return _conflict(db.session.get(Note, note_id), template, form, editor_id)
        except SQLAlchemyError:
            # Database locked, down or full: nothing was stored, and nothing typed is lost.
            log.exception("saving note %s failed", note_id)
            db.session.rollback()
            return _editor(db.session.get(Note, note_id), template, form, editor_id,
                           status=503, scores=[], form_message=_(
                               "The note could not be saved just now: the database did not "
                               "respond. Nothing was lost — everything you typed is still "
                               "here. Try saving again in a moment."))
        if problem is None:
            session["saved_editor"] = editor_id
            flash(_("Note signed. It is now locked; corrections go in an addendum.") if signing
                  else _("Draft saved."), "success")
            return redirect(url_for(".note", note_id=note_id))
        found = db.session.get(Note, note_id)
    if problem:
        message = _("The note was not signed: %(problem)s Nothing was saved; everything you "
                    "typed is still here.", problem=problem)
    else:
        errors = list(iter_errors(form))
        if signing:
            message = ngettext("The note was not signed: %(num)d answer needs attention. "
                               "Everything you typed is still here.",
                               "The note was not signed: %(num)d answers need attention. "
                               "Everything you typed is still here.", len(errors))
        else:
            message = ngettext("Nothing was saved yet: %(num)d answer needs attention. "
                               "Everything you typed is still here.",
                               "Nothing was saved yet: %(num)d answers need attention. "
                               "Everything you typed is still here.", len(errors))
    return _editor(found, template, form, editor_id, status=422, form_message=message)


def _elsewhere_message(pending: notes.PendingAutosave) -> str:
    kept = shown(pending.saved_at, "d MMM, HH:mm")
    return _("another tab or device has unsaved changes to this note (kept %(kept)s). Open "
             "the note again to compare them, then sign.", kept=kept)


def _conflict(current: Note, template, mine, editor_id: str, autosaved_at=None):
    prepare_editor(mine)
    return render_template("notes/conflict.html", note=current, template=template,
                           form=mine, theirs=current.answers, autosaved_at=autosaved_at,
                           editor_id=editor_id), 409


@bp.post("/notes/<int:note_id>/autosave")
def autosave(note_id: int):
    """Keep the editor's unsaved text beside the note (never in it)."""
    found = current_scope().writable_note(note_id)
    if found.author_id != current_user.id:
        abort(403)
    try:
        kept = notes.autosave(found, current_user, _editor_id(),
                              bounded_pairs(template_of(found), request.form),
                              request.form.get("note_version", type=int))
        db.session.commit()
    except notes.NoteLocked:
        db.session.rollback()
        return jsonify(status="locked",
                       message=_("This note is signed; nothing was saved.")), 409
    except SQLAlchemyError:
        log.exception("autosave of note %s failed", note_id)
        db.session.rollback()
        return jsonify(status="unavailable",
                       message=_("Not saved yet: the database did not respond. Your text is "
                                 "kept in this page; retrying.")), 503
    return jsonify(status="saved", saved_at=kept.saved_at.isoformat(),
                   saved_at_shown=shown(kept.saved_at, "HH:mm"),
                   conflict=kept.base_version != found.version)


@bp.post("/notes/<int:note_id>/autosave/discard")
def discard_autosave(note_id: int):
    """Throw away unsaved editor text and go back to the saved note."""
    found = current_scope().writable_note(note_id)
    if found.author_id != current_user.id:
        abort(403)
    notes.discard_autosave(found, _editor_id())
    db.session.commit()
    flash(_("Unsaved changes discarded; this is the last saved version."), "info")
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
        flash(_("This note is signed and locked; nothing was changed. Add an addendum "
                "instead."), "error")
        return _show(found, template, status=409)
    abort(403)


def _show(found: Note, template, status: int = 200, page: notes.NotePage | None = None,
          **forms):
    """The reading view of a note (``page``: the note as ``notes.note_page`` read it, with
    what else it has; without it, each is asked for)."""
    page = page or notes.page_of(found, current_user)
    is_author = found.author_id == current_user.id
    # The author of a signed note is the one reader offered an addendum or "entered in
    # error"; the template draws both forms under this flag alone.
    amendable = is_author and found.state == NoteState.SIGNED
    if amendable:
        forms.setdefault("addendum_form", AddendumForm(formdata=None))
        forms.setdefault("error_form", EnteredInErrorForm(formdata=None))
    notes.load_addenda(found)
    return shown_and_recorded(render_template(
        "notes/show.html", note=found, template=template, answers=found.answers,
        private=page.private, scores=compute_scores(template, found.answers),
        hash_check=notes.verify_hash(found), is_author=is_author,
        amendable=amendable,
        cosignatures=[s for s in notes.signatures(found) if s.kind == "cosign"]
        if page.cosigned else [],
        saved_editor=session.pop("saved_editor", None), **forms,
        **_review_context(found, page.reviewed, page.relationships)), "note.viewed", found,
        found.session.course.client.code), status


@bp.post("/notes/<int:note_id>/sign")
def sign(note_id: int):
    """Sign a complete draft, exactly the version the signer was shown."""
    found = current_scope().writable_note(note_id)
    if found.author_id != current_user.id:
        abort(403)
    template = template_of(found)
    if found.state != NoteState.DRAFT:
        return _refuse_locked(found, template)
    back = redirect(url_for(".note", note_id=found.id))
    if request.form.get("note_version", type=int) != found.version:
        flash(_("The note was not signed: it changed after you opened it (or the request did "
                "not say which version you read). Read it again, then sign."), "error")
        return back
    form = build_form(template, answers={**found.answers,
                                         **notes.private_answers(found, current_user)})
    if not validate_note(form, complete=True):
        flash(_("The note cannot be signed yet: some required answers are missing."), "error")
        return back
    if blocker := reviews.sign_blocker(found, current_user):
        flash(blocker, "error")
        return back
    try:
        notes.sign(found, current_user, _editor_id())
    except notes.SignRefused as refused:
        db.session.rollback()
        flash(_("The note was not signed. %(reason)s", reason=refused.message), "error")
        return back
    except notes.UnsavedElsewhere as elsewhere:
        db.session.rollback()
        flash(_("The note was not signed: %(problem)s",
                problem=_elsewhere_message(elsewhere.pending)), "error")
        return back
    db.session.commit()
    flash(_("Note signed. It is now locked; corrections go in an addendum."), "success")
    return back


@bp.post("/notes/<int:note_id>/addenda")
def addendum(note_id: int):
    """Add a signed, dated addendum to a signed note."""
    found = current_scope().writable_note(note_id)
    form = AddendumForm()
    if not form.validate_on_submit():
        return _show(found, template_of(found), status=422, addendum_form=form)
    try:
        notes.add_addendum(found, current_user, form.body.data.strip())
    except notes.NoteLocked:
        flash(_("Only a signed note takes addenda."), "error")
        return redirect(url_for(".note", note_id=found.id))
    db.session.commit()
    flash(_("Addendum signed and added."), "success")
    return redirect(url_for(".note", note_id=found.id))


@bp.post("/notes/<int:note_id>/entered-in-error")
def entered_in_error(note_id: int):
    """Mark a signed note as entered in error, keeping its content."""
    found = current_scope().writable_note(note_id)
    form = EnteredInErrorForm()
    if not form.validate_on_submit():
        return _show(found, template_of(found), status=422, error_form=form)
    try:
        notes.mark_entered_in_error(found, current_user, form.reason.data)
    except notes.NoteLocked:
        flash(_("Only a signed note can be marked as entered in error."), "error")
        return redirect(url_for(".note", note_id=found.id))
    db.session.commit()
    flash(_("Note marked as entered in error. Its content is kept."), "success")
    return redirect(url_for(".note", note_id=found.id))
