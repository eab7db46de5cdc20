"""Sign in, sign out and change password."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from .. import audit, throttle, twofactor
from ..auth import (
    authenticate,
    carry_allowed,
    end_all_sessions,
    end_session,
    safe_next,
    start_session,
)
from ..extensions import db
from ..forms import (
    CodeForm,
    EnrolForm,
    LoginForm,
    PasswordChangeForm,
    TimeZoneForm,
    TwoFactorOffForm,
)
from ..i18n import _, _l
from ..models import User
from ..passwords import hash_password, password_problem, verify_password
from ..timeutil import utcnow, zone_names

bp = Blueprint("auth", __name__)

GENERIC_FAILURE = _l("That username and password do not match an active account.")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign a user in and send them where they were going (on this site only)."""
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    form = LoginForm()
    expired = session.pop("expired", False)
    # A note posted after sign-out rides along in hidden fields (see web._carry_to_login).
    page = _carried_page()
    if form.validate_on_submit():
        username = form.username.data.lower()
        address = audit.client_address()
        if scope := throttle.blocked(username, address):
            throttle.record_blocked(username, address, scope)
            db.session.commit()
            form.form_errors.append(_("Too many failed attempts. Wait 15 minutes and try again."))
            return render_template("auth/login.html", form=form, **page), 429
        user = authenticate(username, form.password.data)
        if user is None:
            throttle.record_failure(username, address)
            db.session.commit()
            form.form_errors.append(str(GENERIC_FAILURE))
            return render_template("auth/login.html", form=form, **page), 200
        destination = safe_next(request.args.get("next"))
        if user.totp_secret or twofactor.required_for(user):
            # The password was right; the second step decides. Nothing is counted as a
            # success (nor the failures forgiven) until it is done.
            session["pending_login"] = {"user_id": user.id, "at": utcnow().timestamp(),
                                        "next": destination,
                                        "secret": None if user.totp_secret
                                        else twofactor.new_secret()}
            db.session.commit()
            if user.totp_secret:
                return render_template("auth/code.html", form=CodeForm(), **page)
            return redirect(url_for(".enrol_at_sign_in"))
        return _signed_in(user, address, destination, page)
    if expired and request.method == "GET":
        flash(_("You were signed out after a period of inactivity. Sign in again to "
                "continue."), "info")
    return render_template("auth/login.html", form=form, **page)


def _signed_in(user: User, address: str | None, destination: str | None, page: dict,
               second_factor: str | None = None):
    """Start the login (every check passed) and go where the user was going."""
    throttle.record_success(user.username, address)
    session.clear()
    g.pop("csrf_token", None)  # a new session gets a new CSRF token
    start_session(user, address)
    audit.record("login", user=user, obj=user,
                 detail={"second_factor": second_factor} if second_factor else None)
    db.session.commit()
    login_user(user)
    if page.get("carry_to") and page.get("carried"):
        if carry_allowed(page["carry_token"], user, page["carry_to"]):
            return render_template("auth/resume.html", **page)
        audit.record("carry.discarded", user=user, obj=user)
        db.session.commit()
        flash(_("Text left on this page by another account's expired session was "
                "discarded."), "info")
    return redirect(destination or url_for("main.dashboard"))


# Second step: a code from the app or a recovery code -------------------------------------
PENDING_MINUTES = 5


def _pending() -> tuple[User | None, dict]:
    """The user whose password was right a moment ago, and the pending sign-in."""
    pending = session.get("pending_login") or {}
    fresh = pending and utcnow().timestamp() - pending.get("at", 0) < PENDING_MINUTES * 60
    user = db.session.get(User, pending["user_id"]) if fresh else None
    if user is None or not user.active:
        session.pop("pending_login", None)
        return None, {}
    return user, pending


def _start_again():
    flash(_("Sign in again: the second step must follow the password within %(minutes)s "
            "minutes.", minutes=PENDING_MINUTES), "info")
    return redirect(url_for(".login"))


def _carried_page() -> dict:
    carried = list(zip(request.form.getlist("carry_name"), request.form.getlist("carry_value"),
                       strict=False))
    return {"carried": carried, "carry_to": safe_next(request.form.get("carry_to")),
            "carry_token": request.form.get("carry_token")}


@bp.post("/login/code")
def login_code():
    """Check the code after the password; wrong codes are throttled like passwords."""
    user, pending = _pending()
    if user is None or not user.totp_secret:
        return _start_again()
    form, page = CodeForm(), _carried_page()
    if not form.validate_on_submit():
        return render_template("auth/code.html", form=form, **page), 422
    address = audit.client_address()
    if scope := throttle.blocked(user.username, address):
        throttle.record_blocked(user.username, address, scope)
        session.pop("pending_login", None)
        db.session.commit()
        form.code.errors.append(_("Too many failed attempts. Wait 15 minutes and sign in "
                                  "again."))
        return render_template("auth/code.html", form=form, blocked=True, **page), 429
    used = twofactor.check_code(user, form.code.data)
    if used is None:
        throttle.record_failure(user.username, address)
        db.session.commit()
        form.code.errors.append(_("That code is not right, or has been used already. Codes "
                                  "change every 30 seconds: type the one the app shows now."))
        return render_template("auth/code.html", form=form, **page), 200
    response = _signed_in(user, address, pending.get("next"), page, second_factor=used)
    if used == "recovery":  # after the sign-in, which starts a new session
        flash(_("You signed in with a recovery code; %(left)s are left. Make new ones under "
                "Two-factor sign-in if you are running low.",
                left=twofactor.recovery_codes_left(user)), "info")
    return response


@bp.route("/login/enrol", methods=["GET", "POST"])
def enrol_at_sign_in():
    """A role that requires two-factor sign-in: enrol before the first page opens."""
    user, pending = _pending()
    if user is None or user.totp_secret or not pending.get("secret"):
        return _start_again()
    form = EnrolForm()
    status = 200
    if form.validate_on_submit():
        codes = twofactor.enrol(user, pending["secret"], form.code.data)
        if codes is not None:
            _signed_in(user, audit.client_address(), None, {}, second_factor="totp")
            return render_template("auth/recovery_codes.html", codes=codes,
                                   then=pending.get("next") or url_for("main.dashboard"))
        form.code.errors.append(_("That code does not match. Check the app shows kaptools "
                                  "and type the six digits it shows now."))
    elif form.is_submitted():
        status = 422
    return render_template("auth/enrol.html", form=form, required=True,
                           **_enrolment(user, pending["secret"])), status


def _enrolment(user: User, secret: str) -> dict:
    uri = twofactor.provisioning_uri(user, secret)
    return {"qr": twofactor.qr_svg(uri), "secret": secret,
            "secret_groups": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))}


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
def two_factor():
    """Turn two-factor sign-in on, make new recovery codes, or turn it off."""
    user = current_user._get_current_object()
    required = twofactor.required_for(user)
    if not user.totp_secret:
        secret = session.get("enrol_secret") or twofactor.new_secret()
        session["enrol_secret"] = secret
        form = EnrolForm()
        if form.validate_on_submit():
            codes = twofactor.enrol(user, secret, form.code.data)
            if codes is not None:
                session.pop("enrol_secret", None)
                db.session.commit()
                return render_template("auth/recovery_codes.html", codes=codes,
                                       then=url_for(".two_factor"))
            form.code.errors.append(_("That code does not match. Check the app shows "
                                      "kaptools and type the six digits it shows now."))
        return render_template("auth/enrol.html", form=form, required=required,
                               **_enrolment(user, secret))
    code_form, off_form = CodeForm(prefix="codes"), TwoFactorOffForm(prefix="off")
    if request.method == "POST" and request.form.get("action") == "codes" \
            and code_form.validate_on_submit():
        if twofactor.check_code(user, code_form.code.data) == "totp":
            codes = twofactor.new_recovery_codes(user)
            audit.record("two_factor.codes_renewed", obj=user)
            db.session.commit()
            return render_template("auth/recovery_codes.html", codes=codes,
                                   then=url_for(".two_factor"))
        db.session.commit()
        code_form.code.errors.append(_("Type the six digits your app shows now."))
    elif request.method == "POST" and request.form.get("action") == "off" \
            and off_form.validate_on_submit():
        if required:
            abort(403)
        if verify_password(user.password_hash, off_form.password.data):
            twofactor.turn_off(user, user)
            db.session.commit()
            logout_user()
            session.clear()
            flash(_("Two-factor sign-in is off. Sign in again with your password."), "info")
            return redirect(url_for(".login"))
        off_form.password.errors.append(_("This is not your password."))
    return render_template("auth/two_factor.html", code_form=code_form, off_form=off_form,
                           required=required, left=twofactor.recovery_codes_left(user))


@bp.post("/logout")
@login_required
def logout():
    """Sign out and end the server-side session, so a copied cookie stops working."""
    end_session(current_user.session_token)
    audit.record("logout", obj=current_user)
    db.session.commit()
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    """Change one's own password; every other login of this account ends."""
    form = PasswordChangeForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        if not verify_password(user.password_hash, form.current.data):
            form.current.errors.append(_("This is not your current password."))
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
            flash(_("Password changed. Other devices signed in as you have been signed out."),
                  "success")
            return redirect(url_for("main.dashboard"))
    return render_template("auth/password.html", form=form, zone_form=_zone_form())


def _zone_form() -> TimeZoneForm:
    form = TimeZoneForm(prefix="tz", data={"time_zone": current_user.time_zone or ""})
    clinic = current_app.config.get("CLINIC_TIMEZONE") or "UTC"
    form.time_zone.choices = [("", _("The clinic's (%(zone)s)", zone=clinic))] + [
        (n, n.replace("_", " ")) for n in zone_names()]
    return form


@bp.post("/account/time-zone")
@login_required
def time_zone():
    """Choose the zone pages show times in (or go back to the clinic's)."""
    form = _zone_form()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        user.time_zone = form.time_zone.data or None
        audit.record("user.time_zone", obj=user, detail={"time_zone": user.time_zone})
        db.session.commit()
        flash(_("Time zone saved."), "success")
        return redirect(url_for(".change_password"))
    return render_template("auth/password.html", form=PasswordChangeForm(formdata=None),
                           zone_form=form), 422
