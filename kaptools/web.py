"""Blueprints, error pages and template helpers."""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError, generate_csrf
from jinja2.bccache import Bucket, BytecodeCache
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from . import audit, vitals
from .access import Scope
from .dosing import dose_in_both_units
from .extensions import db, login_manager
from .forms import FORMAT_LABELS, KIND_LABELS, REVIEW_MODE_LABELS, ROLE_LABELS
from .i18n import _, _l
from .timeutil import day, shown

ERROR_MESSAGES = {
    400: (_l("The request could not be understood"),
          _l("Go back, reload the page and try again.")),
    403: (_l("Not allowed"), _l("Your account cannot make this change. Nothing was changed.")),
    404: (_l("Not found"), _l("There is nothing here, or it is not yours to see.")),
    405: (_l("Not allowed"), _l("This address does not accept that kind of request.")),
    413: (_l("Too much at once"), _l("What you sent is larger than kaptools accepts. Shorten "
                                     "long text or split it across notes, then try again.")),
    429: (_l("Too many attempts"), _l("Wait a few minutes before trying again.")),
    500: (_l("Something went wrong"), _l("Nothing you saved before this is lost. Try again in "
                                         "a moment; if it keeps happening, tell your "
                                         "administrator.")),
    503: (_l("The database did not respond"), _l("kaptools could not reach its database just "
                                                 "now, so nothing was saved. Try again in a "
                                                 "moment; if it keeps happening, tell your "
                                                 "administrator.")),
}
log = logging.getLogger("kaptools")


def current_scope() -> Scope:
    """The data-access scope of the signed-in user for this request."""
    if "scope" not in g:
        g.scope = Scope(current_user._get_current_object())
    return g.scope


def shown_and_recorded(page, action: str, obj, client_code: str):
    """Send a page that shows a clinical record once its viewing is in the audit trail.

    The page is laid out first and the event recorded last, so the audit chain's lock,
    which every writer in the clinic waits for, is held only for the event and the
    commit; and nothing read for the page is loaded again after the commit. A page whose
    viewing cannot be recorded is not sent (the error page says so instead).
    """
    audit.record(action, obj=obj, client_code=client_code, view=True)
    db.session.commit()
    return page


class _CompiledTemplates(BytecodeCache):
    """Templates compiled once per process, whichever app asks: every app made by
    ``create_app`` configures Jinja alike, and a new app (each test, a CLI command, a
    render worker's) would otherwise compile every template again. Jinja checks each
    entry against its template's source, so a changed template is compiled anew."""

    def __init__(self) -> None:
        self._compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if (found := self._compiled.get(bucket.key)) is not None:
            bucket.bytecode_from_string(found)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._compiled[bucket.key] = bucket.bytecode_to_string()


_COMPILED_TEMPLATES = _CompiledTemplates()


def init_app(app: Flask) -> None:
    from .views import admin, auth, documents, exports, main, notes, records, reviews

    app.jinja_env.bytecode_cache = _COMPILED_TEMPLATES

    app.register_blueprint(auth.bp)
    app.register_blueprint(main.bp)
    app.register_blueprint(records.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(notes.bp)
    app.register_blueprint(documents.bp)
    app.register_blueprint(reviews.bp)
    app.register_blueprint(exports.bp)

    from .isolation import call_isolated, note_answers_view, render_isolated
    from .markdown_render import render_markdown
    from .modality import get_registry
    from .modality.answers import display_value, plain_answers, ref_titles
    from .modality.editor_markup import note_field

    def note_block(template_name: str, n, doc):
        """One note of a document, laid out on its own (plain text if it cannot be)."""
        return render_isolated(template_name, fallback={"title": n.title, "lines": n.plain},
                               n=n, doc=doc)

    def modality_block(n, doc):
        """The modality's own print layout of a note (plain text if it cannot be)."""
        return render_isolated(
            ["print/modality/" + n.slug + ".html", "print/modality/_generic.html"],
            fallback={"title": "", "lines": n.plain}, n=n, doc=doc)

    app.jinja_env.filters["markdown"] = render_markdown
    # A stored moment in the clinic's time zone: {{ x|when }}, {{ x|when("d MMM y") }}.
    app.jinja_env.filters["when"] = shown
    # A calendar date with the clinic's month and day names: {{ d|day("dd MMM y") }}.
    app.jinja_env.filters["day"] = day
    # A hash in groups of four, so it wraps at 9 pt and a reader can compare it by eye.
    app.jinja_env.filters["hash_groups"] = lambda h: " ".join(
        str(h)[i:i + 4] for i in range(0, len(str(h or "")), 4))
    app.jinja_env.globals.update(
        display_value=display_value,
        ref_titles=ref_titles,
        FORMAT_LABELS=FORMAT_LABELS,
        KIND_LABELS=KIND_LABELS,
        ROLE_LABELS=ROLE_LABELS,
        REVIEW_MODE_LABELS=REVIEW_MODE_LABELS,
        clinic_name=lambda: app.config["CLINIC_NAME"],
        nav_user=nav_user,
        note_block=note_block,
        modality_block=modality_block,
        call_isolated=call_isolated,
        vital_check=vitals.check,
        dose_in_both_units=dose_in_both_units,
        vitals_baseline=vitals.baseline_check,
        vitals_describe=vitals.describe,
        note_answers_view=note_answers_view,
        plain_answers=plain_answers,
        note_field=note_field,  # the editor's fields, written in Python (see its module)
    )
    app.context_processor(lambda: {"registry": get_registry()})
    app.before_request(_require_login)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(SQLAlchemyError, _database_error)
    app.register_error_handler(Exception, _unexpected_error)


def nav_user():
    """The signed-in user for page chrome, or None; never fails when the database does."""
    if g.get("database_unavailable"):
        return None
    try:
        return current_user if current_user.is_authenticated else None
    except SQLAlchemyError:
        _rollback()
        _database_unavailable()
        return None


def _database_unavailable() -> None:
    """From here on this request renders without the database: no user is loaded again
    (Flask-Login would otherwise reload the user for every template it renders)."""
    g.database_unavailable = True
    g._login_user = login_manager.anonymous_user()


def _rollback() -> None:
    try:
        db.session.rollback()
    except SQLAlchemyError:  # the connection itself is gone
        log.warning("rollback failed; discarding the session", exc_info=True)
        db.session.remove()


# The sign-in steps (password, then a code or enrolment: these check their own pending
# state) and static files.
PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.login_code", "auth.enrol_at_sign_in",
                              "static"})


def _require_login():
    """Every page but the sign-in steps and static files needs a signed-in user."""
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return None
    if not current_user.is_authenticated:
        if request.method == "POST" and request.endpoint in CARRY_ENDPOINTS:
            return _carry_to_login()
        if request.method == "POST" and request.endpoint in JSON_ENDPOINTS:
            return jsonify(status="signed_out",
                           message=_("You were signed out. Sign in again to keep saving.")), 401
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


def _render_error(code: int, detail: str | None = None, title: str | None = None):
    default_title, message = ERROR_MESSAGES.get(code,
                                                ERROR_MESSAGES[400 if code < 500 else 500])
    return render_template("errors/error.html", code=code, title=str(title or default_title),
                           message=str(detail or message)), code


# What was posted, shown back when a request fails before it could be saved -------------

KEPT_SKIP = frozenset({"csrf_token", "carry_token", "action"})
# Never shown back: passwords (sign-in, password change, account forms).
SECRET_FIELDS = frozenset({"password", "current", "new", "confirm"})


def _posted_pairs() -> list[tuple[str, str]]:
    if request.method != "POST" or (request.endpoint or "").startswith("auth."):
        return []
    try:
        return [(k, v) for k, v in request.form.items(multi=True)
                if k not in KEPT_SKIP and k not in SECRET_FIELDS]
    except Exception:  # an unreadable body: nothing to show back
        return []


def _wants_json() -> bool:
    return request.endpoint in JSON_ENDPOINTS or request.headers.get("X-Requested-With") == \
        "fetch" or request.accept_mimetypes.best == "application/json"


def _kept_page(code: int, title: str, message: str, resend: bool):
    """The app's own error page with everything the request carried, ready to send again."""
    pairs = _posted_pairs()
    if _wants_json():
        return jsonify(status="unavailable" if code == 503 else "refused",
                       message=str(message)), code
    if not pairs:
        return _render_error(code, message, title=title)
    return render_template("errors/kept.html", code=code, title=title, message=message,
                           pairs=pairs, shown=_labelled(pairs), resend=resend,
                           action=request.path,
                           token=generate_csrf() if resend else None), code


HIDDEN_KEPT = ("item_id", "note_version", "editor_id", "modality", "template_version")


def _labelled(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The typed values worth showing, each under its field's label when it can be told
    (a note's editor says which template it is; no database is needed for that)."""
    from .modality import get_registry

    posted = dict(pairs)
    template = None
    version = posted.get("template_version", "")
    if version.isdigit():
        template = get_registry().get(posted.get("modality", ""), int(version))
    shown = []
    for name, value in pairs:
        if not value.strip() or name.endswith(HIDDEN_KEPT):
            continue
        shown.append((_label(template, name), value))
    return shown


def _label(template, name: str) -> str:
    parts = name.split("-")
    if template is None:
        return " › ".join(p.replace("_", " ") for p in parts)
    labels, fields = [], template.fields
    for i, part in enumerate(parts):
        if i % 2:  # a row number
            labels[-1] = f"{labels[-1]} {int(part) + 1}" if part.isdigit() else labels[-1]
            continue
        found = next((f for f in fields if f.key == part), None)
        if found is None:
            return " › ".join(p.replace("_", " ") for p in parts)
        labels.append(found.item_label if found.type == "group" and i + 1 < len(parts)
                      else found.label)
        fields = found.fields
    return " › ".join(labels)


def _database_error(error: SQLAlchemyError):
    """Locked, slow, full or absent database: a 503 that keeps what was typed."""
    _rollback()
    _database_unavailable()
    if isinstance(error, DataError):
        log.warning("refused data on %s: %s", request.path, error.__class__.__name__)
        return _kept_page(400, _("This could not be stored"),
                          _("Something in what you sent cannot be stored (for example an "
                            "invisible control character). Nothing was saved; your text is "
                            "below."), resend=False)
    if isinstance(error, IntegrityError):
        log.warning("integrity error on %s", request.path, exc_info=True)
        return _kept_page(409, _("This changed at the same time elsewhere"),
                          _("Someone else changed the same record at the same moment, so "
                            "nothing was saved. Your text is below; reload the page and try "
                            "again."), resend=False)
    log.error("database unavailable on %s: %s", request.path, error.__class__.__name__,
              exc_info=True)
    title, message = ERROR_MESSAGES[503]
    # CSRF was checked before the view ran, so the form came from a kaptools page and
    # can be offered for sending again.
    return _kept_page(503, str(title), _("%(problem)s Everything you typed is below.",
                                         problem=message), resend=True)


def _csrf_error(error: CSRFError):
    message = _("This form expired or did not come from kaptools, so nothing was saved. "
                "Everything it carried is below.")
    return _kept_page(400, _("This form has expired"), message, resend=_carry_is_mine())


def _carry_is_mine() -> bool:
    """Whether the expired form carries a token that this page issued to this user."""
    from .auth import carry_allowed

    try:
        user = nav_user()
        return user is not None and carry_allowed(request.form.get("carry_token"), user,
                                                  request.path)
    except Exception:
        return False


def _http_error(error: HTTPException):
    code = error.code or 500
    if code in (403, 404) and nav_user() is not None:
        try:
            db.session.rollback()
            audit.record("access.denied", detail={"status": code, "path": request.path[:200],
                                                  "method": request.method})
            db.session.commit()
        except SQLAlchemyError:
            _rollback()
    if code == 405 or code >= 500 or code in ERROR_MESSAGES:
        return _render_error(code)
    return error


def _unexpected_error(error: Exception):
    # Never a stack trace to the user; the log keeps it for the administrator.
    log.exception("Unhandled error on %s", request.path)
    _rollback()
    return _render_error(500)
