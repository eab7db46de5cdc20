"""The dashboard and quick-find."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user

from .. import lists, search
from ..models import Role
from ..risk import open_flags_in_scope
from ..timeutil import today
from ..web import current_scope

bp = Blueprint("main", __name__)


@bp.get("/")
def dashboard():
    """Show today's sessions and the clients this user works with."""
    if current_user.role == Role.ADMIN:
        return redirect(url_for("admin.users"))
    scope = current_scope()
    drafts, draft_count = lists.drafts(scope)
    return render_template(
        "dashboard.html",
        today=today(),
        todays_sessions=lists.todays_sessions(scope, today()),
        risk_flags=sorted(open_flags_in_scope(scope).values(),
                          key=lambda f: f.raised_at),
        clients=lists.recent_clients(scope),
        drafts=drafts,
        draft_count=draft_count,
        returned=lists.returned_to(scope),
        waiting=lists.waiting_for(scope) if current_user.role == Role.SUPERVISOR else [],
    )


SECTIONS = ("clients", "sessions", "notes")


@bp.get("/find")
def find():
    """Quick-find within the user's scope: clients, sessions on a date, notes."""
    if current_user.role == Role.ADMIN:
        abort(404)
    raw = request.args.get("q", "")
    query = search.parse(raw, today(), current_app.config.get("CLINIC_LOCALE") or "en_GB")
    # One section can be paged through on its own (?show=notes&page=3).
    show = request.args.get("show") if request.args.get("show") in SECTIONS else None
    page = max(1, request.args.get("page", 1, type=int) or 1)
    scope = current_scope()
    found = {}
    if query.text:
        for name in SECTIONS:
            if show in (None, name):
                found[name] = getattr(search, name)(scope, query, page if show else 1)
    from ..modality import get_registry

    titles = [t.title for t in map(get_registry().latest, query.modalities) if t]
    return render_template("find.html", query=query, found=found, show=show,
                           described=search.describe(query, titles))
