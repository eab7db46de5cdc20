"""Blueprints, error pages and template helpers."""

from __future__ import annotations

from flask import Flask, g, jsonify, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from . import audit
from .access import Scope
from .extensions import db, login_manager
from .forms import FORMAT_LABELS, KIND_LABELS, REVIEW_MODE_LABELS, ROLE_LABELS

ERROR_MESSAGES = {
    400: ("The request could not be understood", "Go back, reload the page and try again."),
    403: ("Not allowed", "Your account cannot make this change. Nothing was changed."),
    404: ("Not found", "There is nothing here, or it is not yours to see."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    413: ("Too much at once", "What you sent is larger than kaptools accepts. Shorten long "
                              "text or split it across notes, then try again."),
    429: ("Too many attempts", "Wait a few minutes before trying again."),
    500: ("Something went wrong", "Nothing you saved before this is lost. Try again in a "
                                  "moment; if it keeps happening, tell your administrator."),
}


def current_scope() -> Scope:
    """The data-access scope of the signed-in user for this request."""
    if "scope" not in g:
        g.scope = Scope(current_user._get_current_object())
    return g.scope


def init_app(app: Flask) -> None:
    from .views import admin, auth, documents, main, notes, records, reviews

    app.register_blueprint(auth.bp)
    app.register_blueprint(main.bp)
    app.register_blueprint(records.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(notes.bp)
    app.register_blueprint(documents.bp)
    app.register_blueprint(reviews.bp)

    from .markdown_render import render_markdown
    from .modality import get_registry
    from .modality.answers import display_value, ref_titles

    app.jinja_env.filters["markdown"] = render_markdown
    app.jinja_env.globals.update(
        display_value=display_value,
        ref_titles=ref_titles,
        FORMAT_LABELS=FORMAT_LABELS,
        KIND_LABELS=KIND_LABELS,
        ROLE_LABELS=ROLE_LABELS,
        REVIEW_MODE_LABELS=REVIEW_MODE_LABELS,
        clinic_name=lambda: app.config["CLINIC_NAME"],
    )
    app.context_processor(lambda: {"registry": get_registry()})
    app.before_request(_require_login)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


PUBLIC_ENDPOINTS = frozenset({"auth.login", "static"})


def _require_login():
    """Every page but the sign-in page and static files needs a signed-in user."""
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return None
    if not current_user.is_authenticated:
        if request.method == "POST" and request.endpoint in CARRY_ENDPOINTS:
            return _carry_to_login()
        if request.method == "POST" and request.endpoint in JSON_ENDPOINTS:
            return jsonify(status="signed_out",
                           message="You were signed out. Sign in again to keep saving."), 401
        return login_manager.unauthorized()
    return None


# A note posted after the session ended is carried through the sign-in page (in the
# browser, never stored) and offered for saving once signed in again.
CARRY_ENDPOINTS = frozenset({"notes.note"})
JSON_ENDPOINTS = frozenset({"notes.autosave", "notes.preview"})


def _carry_to_login():
    from flask import session

    from .auth import CARRY_SKIP, carry_token
    from .forms import LoginForm

    form = LoginForm(formdata=None)
    expired_uid = session.get("expired_uid")
    if expired_uid is None:
        # Nobody's session just ended here: there is no one to hand the text back to.
        return login_manager.unauthorized()
    carried = [(k, v) for k, v in request.form.items(multi=True) if k not in CARRY_SKIP]
    return render_template("auth/login.html", form=form, carried=carried,
                           carry_to=request.path,
                           carry_token=carry_token(expired_uid, request.path)), 401


def _render_error(code: int, detail: str | None = None):
    title, message = ERROR_MESSAGES.get(code, ERROR_MESSAGES[400 if code < 500 else 500])
    return render_template("errors/error.html", code=code, title=title,
                           message=detail or message), code


def _csrf_error(error: CSRFError):
    return _render_error(400, "This form expired or did not come from kaptools, so nothing was "
                              "saved. Go back, reload the page and send it again.")


def _http_error(error: HTTPException):
    code = error.code or 500
    if code in (403, 404) and current_user.is_authenticated:
        db.session.rollback()
        audit.record("access.denied", detail={"status": code, "path": request.path[:200],
                                              "method": request.method})
        db.session.commit()
    if code == 405 or code >= 500 or code in ERROR_MESSAGES:
        return _render_error(code)
    return error


def _unexpected_error(error: Exception):
    # Never a stack trace to the user; the log keeps it for the administrator.
    import logging

    logging.getLogger("kaptools").exception("Unhandled error on %s", request.path)
    db.session.rollback()
    return _render_error(500)
