"""Administration: user accounts and supervision relationships (no clinical content)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from .. import audit, discard, twofactor
from ..auth import end_all_sessions
from ..extensions import db
from ..forms import (
    AuditFilterForm,
    EndSupervisionForm,
    RolePolicyForm,
    SupervisionForm,
    UserForm,
    choice_list,
)
from ..i18n import _, ngettext
from ..models import Role, SupervisionRelationship, User
from ..passwords import hash_password
from ..timeutil import utcnow

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _admins_only():
    if current_user.role != Role.ADMIN:
        abort(404)


@bp.get("/users")
def users():
    """List every account."""
    accounts = db.session.scalars(select(User).order_by(User.role, User.username))
    return render_template("admin/users.html", users=list(accounts))


@bp.route("/users/new", methods=["GET", "POST"])
def new_user():
    """Create an account with an initial password."""
    form = UserForm()
    if form.validate_on_submit():
        if not form.password.data:
            form.password.errors.append(_("Set an initial password."))
        elif db.session.scalar(select(User.id).where(User.username == form.username.data)):
            form.username.errors.append(_("This username is taken."))
        else:
            user = User(username=form.username.data, display_name=form.display_name.data,
                        role=form.role.data, active=form.active.data,
                        password_hash=hash_password(form.password.data))
            db.session.add(user)
            db.session.flush()
            audit.record("user.created", obj=user, detail={"role": user.role})
            db.session.commit()
            flash(_("Account %(username)s created.", username=user.username), "success")
            return redirect(url_for(".users"))
    return render_template("admin/user_form.html", form=form, user=None)


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
def edit_user(user_id: int):
    """Change an account's name, role, state or password."""
    user = db.session.get(User, user_id) or abort(404)
    form = UserForm(obj=user)
    del form.username
    if form.validate_on_submit():
        if user.id == current_user.id and (not form.active.data or form.role.data != Role.ADMIN):
            form.role.errors.append(_("You cannot remove your own administrator access."))
            return render_template("admin/user_form.html", form=form, user=user)
        revoke = (not form.active.data and user.active) or bool(form.password.data) or (
            form.role.data != user.role)
        user.display_name = form.display_name.data
        user.role = form.role.data
        user.active = form.active.data
        if form.password.data:
            user.password_hash = hash_password(form.password.data)
            user.password_changed_at = utcnow()
        if revoke:
            end_all_sessions(user)
        audit.record("user.updated", obj=user,
                     detail={"role": user.role, "active": user.active,
                             "password_reset": bool(form.password.data)})
        db.session.commit()
        flash(_("Account %(username)s saved.", username=user.username), "success")
        return redirect(url_for(".users"))
    return render_template("admin/user_form.html", form=form, user=user)


def _people(role: Role | None = None) -> list:
    query = select(User).where(User.active.is_(True), User.role != Role.ADMIN)
    if role:
        query = query.where(User.role == role)
    return choice_list((u.id, f"{u.display_name} ({u.username})")
                       for u in db.session.scalars(query.order_by(User.display_name)))


@bp.route("/supervision", methods=["GET", "POST"])
def supervision():
    """List supervision relationships and add new ones."""
    form = SupervisionForm()
    form.supervisor_id.choices = _people(Role.SUPERVISOR)
    form.supervisee_id.choices = _people()
    if form.validate_on_submit():
        rel = SupervisionRelationship(
            supervisor_id=form.supervisor_id.data, supervisee_id=form.supervisee_id.data,
            starts_on=form.starts_on.data, ends_on=form.ends_on.data,
            review_mode=form.review_mode.data)
        db.session.add(rel)
        db.session.flush()
        audit.record("supervision.created", obj=rel)
        db.session.commit()
        flash(_("Supervision relationship added."), "success")
        return redirect(url_for(".supervision"))
    relationships = db.session.scalars(
        select(SupervisionRelationship).order_by(SupervisionRelationship.starts_on.desc()))
    return render_template("admin/supervision.html", form=form, relationships=list(relationships),
                           end_form=EndSupervisionForm(), today=utcnow().date())


@bp.post("/supervision/<int:rel_id>/end")
def end_supervision(rel_id: int):
    """Set the last day of a supervision relationship."""
    rel = db.session.get(SupervisionRelationship, rel_id) or abort(404)
    form = EndSupervisionForm()
    if form.validate_on_submit() and form.ends_on.data >= rel.starts_on:
        rel.ends_on = form.ends_on.data
        audit.record("supervision.ended", obj=rel)
        db.session.commit()
        flash(_("Supervision relationship ended."), "success")
    else:
        flash(_("Enter an end date on or after the start date."), "error")
    return redirect(url_for(".supervision"))


@bp.get("/audit")
def audit_log():
    """Search the audit trail by user, client code, action and date."""
    from datetime import datetime, time

    from ..models import AuditEvent
    from ..timeutil import UTC

    form = AuditFilterForm(formdata=request.args)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    events: list = []
    valid = form.validate()
    if valid:
        query = select(AuditEvent)
        if form.user.data:
            query = query.where(AuditEvent.username == form.user.data.lower())
        if form.client.data:
            query = query.where(AuditEvent.client_code == form.client.data)
        if form.action.data:
            query = query.where(AuditEvent.action.startswith(form.action.data))
        if form.since.data:
            query = query.where(AuditEvent.created_at >= datetime.combine(
                form.since.data, time.min, tzinfo=UTC))
        if form.until.data:
            query = query.where(AuditEvent.created_at <= datetime.combine(
                form.until.data, time.max, tzinfo=UTC))
        events = db.session.scalars(query.order_by(AuditEvent.id.desc())
                                    .offset((page - 1) * 100).limit(101)).all()
    actions = db.session.scalars(select(AuditEvent.action).distinct()
                                 .order_by(AuditEvent.action)).all()
    args = {k: v for k, v in request.args.items() if k != "page"} if valid else {}
    return render_template("admin/audit.html", events=events[:100], more=len(events) > 100,
                           page=page, args=args, actions=actions, form=form)


@bp.get("/templates")
def templates():
    """Note templates in use, and clinic templates that were refused, with the reasons."""
    from ..modality import get_registry

    registry = get_registry()
    return render_template("admin/templates.html", templates=sorted(
        registry.templates.values(), key=lambda t: (t.slug, t.version)),
        problems=registry.problems)


@bp.get("/discarded")
def discarded():
    """What therapists discarded: restorable for ``discard.KEEP_DAYS`` days."""
    return render_template("admin/discarded.html", records=discard.discarded_records(),
                           keep_days=discard.KEEP_DAYS)


@bp.post("/discarded/<kind>/<int:record_id>/restore")
def restore(kind: str, record_id: int):
    """Bring a discarded course, session or draft back, with what was discarded with it."""
    try:
        restored = discard.restore(kind, record_id, current_user)
    except discard.DiscardError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(_("Restored: %(label)s (%(code)s).", label=restored.label,
                code=restored.client_code), "success")
    return redirect(url_for(".discarded"))


@bp.route("/two-factor", methods=["GET", "POST"])
def two_factor_policy():
    """Require two-factor sign-in for whole roles."""
    required = twofactor.required_roles()
    form = RolePolicyForm(data={role.value: role.value in required for role in Role})
    if form.validate_on_submit():
        roles = {role.value for role in Role if form[role.value].data}
        signed_out = twofactor.set_required(roles, current_user)
        db.session.commit()
        message = _("Two-factor sign-in settings saved.")
        if signed_out:
            message += " " + ngettext(
                "%(num)d account without it was signed out, to set it up at the next "
                "sign-in.",
                "%(num)d accounts without it were signed out, to set it up at the next "
                "sign-in.", len(signed_out))
        flash(message, "success")
        return redirect(url_for(".two_factor_policy"))
    users = list(db.session.scalars(select(User).where(User.active.is_(True))
                                    .order_by(User.role, User.username)))
    return render_template("admin/two_factor.html", form=form, users=users)


@bp.post("/users/<int:user_id>/two-factor/reset")
def reset_two_factor(user_id: int):
    """Remove an account's second factor (a lost phone); they set it up again."""
    user = db.session.get(User, user_id) or abort(404)
    if user.totp_secret:
        twofactor.turn_off(user, current_user)
        db.session.commit()
        flash(_("Two-factor sign-in of %(username)s was reset; they are signed out.",
                username=user.username), "success")
    return redirect(url_for(".two_factor_policy"))
