"""The dashboard."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

from .. import lists
from ..models import Role
from ..risk import open_flags
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
        risk_flags=sorted(open_flags(scope.visible_client_ids()).values(),
                          key=lambda f: f.raised_at),
        clients=lists.recent_clients(scope),
        drafts=drafts,
        draft_count=draft_count,
        returned=lists.returned_to(scope),
        waiting=lists.waiting_for(scope) if current_user.role == Role.SUPERVISOR else [],
    )
