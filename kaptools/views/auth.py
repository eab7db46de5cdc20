"""Sign in, sign out and change password."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from .. import audit, throttle
from ..auth import (
    authenticate,
    carry_allowed,
    end_all_sessions,
    end_session,
    safe_next,
    start_session,
)
from ..extensions import db
from ..forms import LoginForm, PasswordChangeForm
from ..passwords import hash_password, password_problem, verify_password
from ..timeutil import utcnow

bp = Blueprint("auth", __name__)

GENERIC_FAILURE = "That username and password do not match an active account."


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign a user in and send them where they were going (on this site only)."""
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    form = LoginForm()
    expired = session.pop("expired", False)
    # A note posted after sign-out rides along in hidden fields (see web._carry_to_login).
    carried = list(zip(request.form.getlist("carry_name"), request.form.getlist("carry_value"),
                       strict=False))
    carry_to = safe_next(request.form.get("carry_to"))
    page = {"carried": carried, "carry_to": carry_to,
            "carry_token": request.form.get("carry_token")}
    if form.validate_on_submit():
        username = form.username.data.lower()
        address = audit.client_address()
        if scope := throttle.blocked(username, address):
            throttle.record_blocked(username, address, scope)
            db.session.commit()
            form.form_errors.append("Too many failed attempts. Wait 15 minutes and try again.")
            return render_template("auth/login.html", form=form, **page), 429
        user = authenticate(username, form.password.data)
        if user is None:
            throttle.record_failure(username, address)
            db.session.commit()
            form.form_errors.append(GENERIC_FAILURE)
            return render_template("auth/login.html", form=form, **page), 200
        throttle.record_success(username, address)
        destination = safe_next(request.args.get("next"))
        session.clear()
        g.pop("csrf_token", None)  # a new session gets a new CSRF token
        start_session(user, address)
        audit.record("login", user=user, obj=user)
        db.session.commit()
        login_user(user)
        if carry_to and carried:
            if carry_allowed(page["carry_token"], user, carry_to):
                return render_template("auth/resume.html", **page)
            audit.record("carry.discarded", user=user, obj=user)
            db.session.commit()
            flash("Text left on this page by another account's expired session was discarded.",
                  "info")
        return redirect(destination or url_for("main.dashboard"))
    if expired and request.method == "GET":
        flash("You were signed out after a period of inactivity. Sign in again to continue.",
              "info")
    return render_template("auth/login.html", form=form, **page)


@bp.post("/logout")
@login_required
def logout():
    """Sign out and end the server-side session, so a copied cookie stops working."""
    end_session(current_user.session_token)
    audit.record("logout", obj=current_user)
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    """Change one's own password; every other login of this account ends."""
    form = PasswordChangeForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        if not verify_password(user.password_hash, form.current.data):
            form.current.errors.append("This is not your current password.")
        elif problem := password_problem(form.new.data):
            form.new.errors.append(problem)
        else:
            user.password_hash = hash_password(form.new.data)
            user.password_changed_at = utcnow()
            end_all_sessions(user)
            start_session(user, audit.client_address())
            audit.record("password.changed", obj=user)
            db.session.commit()
            login_user(user)
            flash("Password changed. Other devices signed in as you have been signed out.",
                  "success")
            return redirect(url_for("main.dashboard"))
    return render_template("auth/password.html", form=form)
