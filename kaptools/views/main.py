"""The dashboard."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

from .. import reviews
from ..models import Role
from ..timeutil import today
from ..web import current_scope

bp = Blueprint("main", __name__)


@bp.get("/")
def dashboard():
    """Show today's sessions and the clients this user works with."""
    if current_user.role == Role.ADMIN:
        return redirect(url_for("admin.users"))
    scope = current_scope()
    drafts, draft_count = scope.my_drafts()
    return render_template(
        "dashboard.html",
        today=today(),
        todays_sessions=scope.sessions_on(today()),
        clients=scope.recent_clients(),
        drafts=drafts,
        draft_count=draft_count,
        returned=reviews.returned_to(current_user, limit=20),
        waiting=reviews.queue(scope, reviews.QueueFilter(status="submitted"), limit=20),
        scope=scope,
    )
