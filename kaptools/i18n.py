"""Ready for translation: every word of the product goes through gettext (Flask-Babel).

Templates mark text with ``{{ _("…") }}`` and ``{% trans %}…{% endtrans %}``; Python with
``gettext`` (``_``) where a request is answered and ``lazy_gettext`` (``_l``) where text is
defined before any request (form labels, messages of validators). ``make messages``
extracts them into ``kaptools/translations/messages.pot`` (see README, "Translating").

The language is the clinic's (``CLINIC_LOCALE``, which also sets how dates are written);
a catalogue ``kaptools/translations/<locale>/LC_MESSAGES/messages.mo``, or one in a folder
named by ``BABEL_TRANSLATION_DIRECTORIES``, is used when it exists, and English otherwise.
What is never translated: a template's own questions and options (they are clinical
content in the clinic's language, and the standard questionnaires keep their verbatim
wording), and what users typed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from babel import Locale
from flask import Flask, current_app, g, has_app_context
from flask_babel import Babel, get_translations, gettext, lazy_gettext, ngettext
from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup

__all__ = ["N_", "_", "_l", "gettext", "init_app", "lazy_gettext", "ngettext"]

_l = lazy_gettext


def _translations():
    """The clinic's catalogue, looked up once per request (or app context) rather than
    on every message: a page says some thirty of them."""
    try:
        return g._kaptools_translations
    except AttributeError:
        pass
    except RuntimeError:  # no app context: flask-babel answers with no translations
        return get_translations()
    found = g._kaptools_translations = get_translations()
    return found


def _(message: str, **variables) -> str:
    """``message`` in the clinic's language, with ``%(name)s`` filled from ``variables``
    (flask-babel's ``gettext``, with its catalogue looked up once per request)."""
    said = _translations().ugettext(message)
    return said % variables if variables else said


TRANSLATIONS = Path(__file__).parent / "translations"


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "marked, not yet translated"
    return message


def _locale() -> str:
    return str(current_app.config.get("CLINIC_LOCALE") or "en_GB")


def _time_zone() -> str:
    from .timeutil import viewer_zone

    return viewer_zone().key


def html_lang() -> str:
    """The language of what a page or document says, for ``<html lang>`` (BCP 47): the
    clinic's when a catalogue for it is installed (or it is English), English otherwise."""
    locale = Locale.parse(_locale())
    if locale.language != "en" and not getattr(_translations(), "files", None):
        return "en"
    return "-".join(part for part in (locale.language, locale.territory) if part)


def css_content(message: str, **parts: str) -> Markup:
    """``message`` translated, as the value of a CSS ``content`` property (running heads
    and feet of printed pages): its words as CSS strings, each ``%(name)s`` replaced by
    the CSS given for it (``counter(page)``, ``string(dochash)``). Safe inside
    ``<style>``: quotes, backslashes and ``<`` are escaped as CSS escapes."""
    pieces = translated_pieces(message, parts)
    out = []
    for i, piece in enumerate(pieces):
        if i % 2:
            out.append(parts[piece])
        elif piece:
            out.append(css_string(piece))
    return Markup(" ".join(out) or '""')


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def translated_pieces(message: str, names: Iterable[str]) -> list[str]:
    """``message`` translated and cut at its ``%(name)s`` placeholders: [words, name, words,
    ...]. A translation with a placeholder not among ``names`` (a typo) is not used, the
    English message is: a broken translation never breaks a printed page."""
    pieces = _PLACEHOLDER.split(gettext(message))
    if not set(pieces[1::2]) <= set(names):
        pieces = _PLACEHOLDER.split(message)
    return pieces


def css_string(text: str) -> Markup:
    """``text`` as a quoted CSS string, safe inside ``<style>``."""
    escaped = "".join(c if c.isalnum() or c in " .,:;!?()-–—·'’/%" else f"\\{ord(c):x} "
                      for c in str(text))
    return Markup(f'"{escaped}"')


def words_key() -> tuple[str, str]:
    """What a drawing's translated words depend on (a chart's titles, its alternative
    text): the language and its catalogue. Part of the key a drawing is kept under."""
    if not has_app_context():  # no clinic, no catalogue: the words are gettext's own
        return "", ""
    return _locale(), catalogue_version()


def catalogue_version() -> str:
    """Changes when the catalogue the clinic's words come from changes: a stored PDF is
    kept under it, so a new translation prints anew ("" while kaptools speaks English).
    Made from the catalogue this process has loaded (what it prints with), not the file
    on disk, which may have been replaced since."""
    loaded = _translations()
    if not getattr(loaded, "files", None):
        return ""
    found = getattr(loaded, "_kaptools_version", None)
    if found is None:
        entries = sorted((repr(k), repr(v)) for k, v in getattr(loaded, "_catalog", {}).items())
        found = hashlib.sha256(repr(entries).encode()).hexdigest()
        loaded._kaptools_version = found
    return found


# The words the page scripts write (static/js): translated here and handed to them in the
# page (base.html, #kt-words), so one catalogue holds every word. Scripts fill in
# %(name)s themselves.
SCRIPT_WORDS = (
    N_("Move %(label)s up"), N_("Move %(label)s down"), N_("Remove"),
    N_("Remove this %(label)s"), N_("Add %(label)s"), N_("row"), N_("Item"), N_("Preview"),
    N_("Edit"), N_("Nothing written yet."), N_("Preview is not available right now."),
    N_("Autosaved %(time)s"),
    N_("Autosaved %(time)s — the note was saved elsewhere; you will be asked which version "
       "to keep"),
    N_("Not saved yet; retrying…"), N_("Not saved."),
    N_("You were signed out. Your text is kept in this tab: sign in again and it will be "
       "restored."),
    N_("Not saved yet (connection problem). Your text is kept in this tab; retrying…"),
    N_("Sign in again"), N_("Unsaved changes"),
    N_("Restoring the text you typed before signing in…"),
    N_("Could not restore the earlier text."), N_("Not saved yet"),
    N_("Unsaved changes restored"), N_("All changes saved"), N_("Saving…"),
    N_("%(item)s %(number)s"),
    # static/js/confirm.js: a button without its own question asks "<its words>?".
    N_("Cancel"), N_("%(action)s?"),
    # static/js/dose.js, the same sentences as kaptools/dosing.py.
    N_("%(dose)s mg = %(per_kg)s mg/kg at %(weight)s kg"),
    N_("%(per_kg)s mg/kg = %(dose)s mg at %(weight)s kg"),
)


def script_words() -> dict[str, str]:
    """English → the clinic's language, for the page scripts (only what differs)."""
    if not getattr(_translations(), "files", None):
        return {}  # English: nothing to hand over
    return {word: said for word in SCRIPT_WORDS if (said := gettext(word)) != word}


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    # One Babel per app: it caches catalogues, and two apps (tests, or an app factory
    # called twice) may read different folders.
    Babel(app, locale_selector=_locale, timezone_selector=_time_zone)
    # Templates say many messages: each looks the catalogue up once per request.
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: _translations().ugettext(s),
        ngettext=lambda s, p, n: _translations().ungettext(s, p, n),
        pgettext=lambda c, s: _translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: _translations().unpgettext(c, s, p, n),
        newstyle=True)
    # ``_`` and ``gettext``, some thirty a page: called directly (Jinja's own go through
    # two more calls each), the same "new style" result.
    app.jinja_env.globals.update(_=_template_gettext, gettext=_template_gettext)

    app.jinja_env.globals["html_lang"] = html_lang
    app.jinja_env.globals["script_words"] = script_words
    app.jinja_env.globals["css_content"] = css_content
    app.jinja_env.filters["css_string"] = css_string


@pass_eval_context
def _template_gettext(eval_ctx: EvalContext, __message: str, **variables) -> str:
    """``{{ _("…") }}`` and ``{% trans %}`` in a template, as Jinja's "new style" gettext
    answers them: the translation, taken as a format string (``%%`` is ``%``) filled
    with ``variables``; as markup in an escaping template, so that they are escaped.
    A message without variables, in an escaping template, is made once per catalogue."""
    catalogue = _translations()
    if variables or not eval_ctx.autoescape:
        said = catalogue.ugettext(__message)
        return (Markup(said) if eval_ctx.autoescape else said) % variables
    key = (catalogue, __message)
    found = _MARKED.get(key)
    if found is None:
        if len(_MARKED) >= _MARKED_AT_MOST:  # templates say a few hundred messages
            _MARKED.clear()
        found = _MARKED[key] = Markup(catalogue.ugettext(__message)) % {}
    return found


_MARKED: dict[tuple[Any, str], Markup] = {}
_MARKED_AT_MOST = 4096
