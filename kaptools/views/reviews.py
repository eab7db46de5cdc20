"""Supervision in the browser: submit, queue, review page, comments and decisions."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    get_template_attribute,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from .. import notes, reviews
from ..extensions import db
from ..forms import CommentForm, ReviewFilterForm
from ..i18n import _
from ..modality import get_registry
from ..modality.answers import compute_scores
from ..models import Review, ReviewStatus, User
from ..web import current_scope, shown_and_recorded
from .notes import template_of

bp = Blueprint("reviews", __name__)


def _review_or_404(review_id: int) -> Review:
    review = db.session.get(Review, review_id)
    if review is None or not reviews.visible(current_scope(), review):
        abort(404)
    return review


@bp.post("/notes/<int:note_id>/submit")
def submit(note_id: int):
    """Send a note to a current supervisor for review."""
    note = current_scope().writable_note(note_id)
    try:
        reviews.submit_note(note, current_user, request.form.get("reviewer_id", type=int) or 0)
    except reviews.ReviewError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("notes.note", note_id=note.id))
    db.session.commit()
    flash(_("Sent for review. If your supervisor returns it, it is listed on your start page "
            "under \u201cReturned by your supervisor\u201d, with the comments next to the "
            "fields."), "success")
    return redirect(url_for("notes.note", note_id=note.id))


@bp.get("/reviews")
def queue():
    """The supervisor's review queue, filtered by supervisee, status and date."""
    scope = current_scope()
    supervisee_ids = db.session.scalars(scope.supervisee_ids()).all()
    supervisees = db.session.scalars(select(User).where(User.id.in_(supervisee_ids))
                                     .order_by(User.display_name)).all()
    # What is waiting is shown first; finished reviews are a choice away ("All").
    args = request.args.copy()
    args.setdefault("status", ReviewStatus.SUBMITTED.value)
    form = ReviewFilterForm(formdata=args)
    form.supervisee.choices = [("", _("All"))] + [(str(u.id), u.display_name)
                                                 for u in supervisees]
    form.status.choices = [(ReviewStatus.SUBMITTED.value, _("Waiting for review"))] + \
        [(s.value, s.value) for s in ReviewStatus if s != ReviewStatus.SUBMITTED] + \
        [("", _("All"))]
    valid = form.validate()
    filters = reviews.QueueFilter(
        supervisee_id=int(form.supervisee.data) if valid and form.supervisee.data else None,
        status=form.status.data or None if valid else None,
        since=form.since.data if valid else None, until=form.until.data if valid else None)
    found = reviews.queue(scope, filters) if valid else []
    return render_template("reviews/queue.html", reviews=found, form=form,
                           supervisees=supervisees,
                           submitted=reviews.sent_by(scope))


@bp.get("/reviews/<int:review_id>")
def review(review_id: int):
    """Read a submitted note with its comments, the changes since last round, and actions."""
    return _render_review(_review_or_404(review_id))


def _render_review(found: Review, rejected: dict | None = None, status: int = 200):
    """The review page; ``rejected`` is a comment that was not added, kept with its text."""
    if found.course_id is not None:
        return _course_review(found, rejected, status)
    note = current_scope().note(found.note_id)
    template = template_of(note)
    rounds = reviews.note_reviews(note)
    earlier = [r for r in rounds if r.round < found.round]
    changes = reviews.diff(template, earlier[-1].snapshot, found.snapshot) if earlier else None
    return shown_and_recorded(render_template(
        "reviews/review.html", review=found, note=note, template=template,
        answers=found.snapshot.get("answers", {}), current=note.answers,
        comments=reviews.comments_by_field(found), changes=changes, rounds=rounds,
        is_reviewer=found.reviewer_id == current_user.id,
        scores=compute_scores(template, found.snapshot.get("answers", {})),
        hash_check=notes.verify_hash(note), rejected=rejected),
        "review.viewed", found, note.session.course.client.code), status


@bp.post("/reviews/<int:review_id>/comments")
def add_comment(review_id: int):
    """Comment on one field of the note, or on the note as a whole."""
    found = _review_or_404(review_id)
    if found.reviewer_id != current_user.id:
        abort(403)
    form = CommentForm()
    key = form.field_key.data or ""
    # static/js/comments.js asks for JSON and adds the comment in place; without
    # JavaScript the form posts as usual and the page comes back.
    inline = request.accept_mimetypes.best == "application/json"
    if not form.validate_on_submit():
        messages = " ".join(str(m) for errors in form.errors.values() for m in errors)
        if inline:
            return jsonify(ok=False, message=messages), 422
        return _render_review(found, {"key": key, "body": form.body.data or "",
                                      "message": messages}, status=422)
    try:
        added = reviews.comment(found, current_user, key or None, form.body.data.strip())
    except reviews.ReviewError as exc:
        db.session.rollback()
        if inline:
            return jsonify(ok=False, message=str(exc)), 422
        # Shown with the general comment box: the anchor it named is not on the page.
        return _render_review(found, {"key": "", "body": form.body.data, "message": str(exc)},
                              status=422)
    db.session.commit()
    if inline:
        item = get_template_attribute("reviews/_comments.html", "comment_item")
        return jsonify(ok=True, key=key, html=str(item(added)), message=_("Comment added."))
    flash(_("Comment added."), "success")
    return redirect(url_for(".review", review_id=found.id) + "#comments")


@bp.post("/reviews/<int:review_id>/<any(return, approve, cosign):action>")
def decide(review_id: int, action: str):
    """Return for revision, approve, or co-sign."""
    found = _review_or_404(review_id)
    if found.reviewer_id != current_user.id:
        abort(403)
    try:
        reviews.decide(found, current_user, action)
    except reviews.ReviewError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for(".review", review_id=found.id))
    db.session.commit()
    flash({"return": _("Returned to the therapist for revision."), "approve": _("Approved."),
           "cosign": _("Co-signed.")}[action], "success")
    return redirect(url_for(".queue"))


def _course_review(found: Review, rejected: dict | None = None, status: int = 200):
    course = current_scope().course(found.course_id)
    rounds = reviews.course_reviews(course)
    earlier = [r for r in rounds if r.round < found.round]
    changes = reviews.course_diff(earlier[-1].snapshot, found.snapshot) if earlier else None
    registry = get_registry()
    entries = []
    for note_id, entry in found.snapshot.get("notes", {}).items():
        template = registry.get(entry["modality"], entry["version"])
        if template is not None:
            entries.append({"id": note_id, "entry": entry, "template": template})
    return shown_and_recorded(
        render_template("reviews/course_review.html", review=found, course=course,
                        entries=entries, comments=reviews.comments_by_field(found),
                        changes=changes, is_reviewer=found.reviewer_id == current_user.id,
                        all_signed=bool(entries) and all(e["entry"].get("state") == "signed"
                                                         for e in entries),
                        rejected=rejected),
        "review.viewed", found, course.client.code), status


@bp.post("/courses/<int:course_id>/submit")
def submit_course(course_id: int):
    """Send a whole course summary to a current supervisor."""
    course = current_scope().writable_course(course_id)
    try:
        reviews.submit_course(course, current_user,
                              request.form.get("reviewer_id", type=int) or 0)
    except reviews.ReviewError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("records.course", course_id=course.id))
    db.session.commit()
    flash(_("Course summary sent for review."), "success")
    return redirect(url_for("records.course", course_id=course.id))
