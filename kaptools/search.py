"""Quick-find: clients by code or name, sessions by date, notes by modality and status.

Everything found goes through the user's scope (``access.Scope``), exactly like the
lists: a therapist never finds another therapist's client, whatever its name. Client
names are matched word by word from their beginnings, by a full-text index on both
databases: an FTS5 table kept by triggers on SQLite, a GIN index over ``to_tsvector`` on
PostgreSQL. Codes match from their beginning too ("KT-00" finds KT-0001). A date finds
the sessions of that day; template names and note states ("phq draft") find notes.
Every section is paginated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import event, func, or_, select, text

from .access import Scope
from .extensions import db
from .i18n import _, _l
from .lists import ClientRow, Found
from .models import Client, Course, Note, NoteState, TherapySession, User
from .timeutil import day

PER_PAGE = 20
MAX_QUERY = 100

# The client name index ------------------------------------------------------------------
SQLITE_INDEX = [
    # External content: the words of client.code and client.display_name, no copy of them.
    """CREATE VIRTUAL TABLE IF NOT EXISTS client_search USING fts5(
         code, display_name, content='client', content_rowid='id',
         tokenize="unicode61 remove_diacritics 2 tokenchars '-'")""",
    """CREATE TRIGGER IF NOT EXISTS client_search_insert AFTER INSERT ON client BEGIN
         INSERT INTO client_search(rowid, code, display_name)
         VALUES (new.id, new.code, new.display_name); END""",
    """CREATE TRIGGER IF NOT EXISTS client_search_delete AFTER DELETE ON client BEGIN
         INSERT INTO client_search(client_search, rowid, code, display_name)
         VALUES ('delete', old.id, old.code, old.display_name); END""",
    """CREATE TRIGGER IF NOT EXISTS client_search_update AFTER UPDATE ON client BEGIN
         INSERT INTO client_search(client_search, rowid, code, display_name)
         VALUES ('delete', old.id, old.code, old.display_name);
         INSERT INTO client_search(rowid, code, display_name)
         VALUES (new.id, new.code, new.display_name); END""",
    "INSERT INTO client_search(client_search) VALUES ('rebuild')",
]
_PG_DOCUMENT = "to_tsvector('simple', code || ' ' || coalesce(display_name, ''))"
POSTGRESQL_INDEX = [
    f"CREATE INDEX IF NOT EXISTS ix_client_search ON client USING gin ({_PG_DOCUMENT})",
]
DROP_SQLITE_INDEX = [
    *(f"DROP TRIGGER IF EXISTS client_search_{op}" for op in ("insert", "delete", "update")),
    "DROP TABLE IF EXISTS client_search",
]
DROP_POSTGRESQL_INDEX = ["DROP INDEX IF EXISTS ix_client_search"]


def install_index(connection) -> None:
    sql = SQLITE_INDEX if connection.dialect.name == "sqlite" else POSTGRESQL_INDEX
    for statement in sql:
        connection.exec_driver_sql(statement)


def register(metadata) -> None:
    """Build the index after create_all() (tests, fresh databases); migrations do the rest."""

    def after_create(target, connection, **kw):
        if "client" in metadata.tables:
            install_index(connection)

    event.listen(metadata, "after_create", after_create)


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """For Alembic's comparison: the search index is not part of the models."""
    if type_ == "table" and reflected and name and name.startswith("client_search"):
        return False
    return not (type_ == "index" and name == "ix_client_search")


# What was asked -------------------------------------------------------------------------
STATES = {"draft": NoteState.DRAFT, "drafts": NoteState.DRAFT, "unsigned": NoteState.DRAFT,
          "signed": NoteState.SIGNED, "error": NoteState.ENTERED_IN_ERROR}
# The notes of one state, in words (what quick-find says it looked for).
STATE_NOTES = {NoteState.DRAFT: _l("Draft notes"), NoteState.SIGNED: _l("Signed notes"),
               NoteState.ENTERED_IN_ERROR: _l("Entered in error notes")}


@dataclass
class Query:
    text: str
    words: list[str] = field(default_factory=list)
    day: date | None = None
    state: str | None = None
    modalities: list[str] = field(default_factory=list)


def parse(raw: str, today: date, locale: str = "en_GB") -> Query:
    """Read a quick-find query: a date, template names, a note state, and name words."""
    text_ = " ".join(raw.split())[:MAX_QUERY]
    query = Query(text_)
    query.day = parse_day(text_, today, locale)
    if query.day is not None:
        return query
    from .modality import get_registry

    current = get_registry().current()
    for typed in re.findall(r"\w[\w'-]*", text_):
        word = typed.lower()
        if word in STATES:
            query.state = STATES[word]
            continue
        found = [t.slug for t in current
                 if len(word) >= 3 and (word in t.slug or word in t.title.lower()
                                        or word == t.category.lower())]
        if found:
            query.modalities.extend(s for s in found if s not in query.modalities)
        else:
            query.words.append(typed)
    return query


_MONTH = re.compile(r"^(\d{1,2})\s+([^\W\d_]{3,})\.?(?:\s+(\d{4}))?$")


def parse_day(text_: str, today: date, locale: str = "en_GB") -> date | None:
    """A date written as 2026-11-03, as the clinic writes dates (03/11/2026), or as
    "3 Nov" / "3 November 2026" (this year when no year is given)."""
    try:
        return date.fromisoformat(text_)
    except ValueError:
        pass
    from babel.dates import get_month_names, parse_date

    if re.fullmatch(r"\d{1,2}[/.]\d{1,2}[/.]\d{2,4}", text_):
        try:
            return parse_date(text_.replace(".", "/"), locale=locale)
        except (ValueError, IndexError):
            return None
    if m := _MONTH.match(text_):
        names = {}
        for width in ("wide", "abbreviated"):
            for number, name in get_month_names(width, locale=locale).items():
                names[name.lower().rstrip(".")] = number
        month = names.get(m.group(2).lower()) or next(
            (n for name, n in names.items() if name.startswith(m.group(2).lower())), None)
        if month:
            try:
                return date(int(m.group(3) or today.year), month, int(m.group(1)))
            except ValueError:
                return None
    return None


def describe(query: Query, titles: list[str]) -> str | None:
    """What quick-find looked for, in words ("Draft notes (PHQ-9) of clients matching …")."""
    if query.day is not None:
        return _("Sessions on %(day)s", day=day(query.day, "EEEE d MMMM y"))
    words = " ".join(query.words)
    if query.modalities or query.state:
        named = STATE_NOTES.get(query.state) if query.state else None
        if named is not None:
            notes = str(named)
        elif query.state:
            notes = _("%(state)s notes", state=query.state.replace("_", " ").capitalize())
        else:
            notes = _("Notes")
        listed = ", ".join(titles)
        if titles and words:
            return _("%(notes)s (%(templates)s) of clients matching “%(words)s”", notes=notes,
                     templates=listed, words=words)
        if titles:
            return _("%(notes)s (%(templates)s)", notes=notes, templates=listed)
        if words:
            return _("%(notes)s of clients matching “%(words)s”", notes=notes, words=words)
        return notes
    return _("Clients matching “%(words)s”", words=words) if words else None


# Results --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionHit:
    id: int
    kind: str
    session_date: date
    client_code: str
    course_title: str


@dataclass(frozen=True)
class NoteHit:
    id: int
    modality: str
    template_version: int
    state: str
    session_date: date
    client_code: str
    updated_at: datetime


def _page(query, page: int, make) -> Found:
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None)
                                                                .subquery()))
    rows = db.session.execute(query.limit(PER_PAGE).offset((page - 1) * PER_PAGE))
    return Found([make(*row) for row in rows], page, total, PER_PAGE)


def clients(scope: Scope, query: Query, page: int = 1) -> Found | None:
    if not query.words:
        return None
    matched = _client_matches(query.words)
    found = (select(Client.id, Client.code, Client.display_name, User.display_name,
                    Client.therapist_id == scope.user.id)
             .join(User, User.id == Client.therapist_id)
             .where(Client.id.in_(scope.visible_client_ids()), matched)
             .order_by(Client.archived, Client.code))
    return _page(found, page, ClientRow)


def sessions(scope: Scope, query: Query, page: int = 1) -> Found | None:
    if query.day is None:
        return None
    found = (select(TherapySession.id, TherapySession.kind, TherapySession.session_date,
                    Client.code, Course.title)
             .join(Course, Course.id == TherapySession.course_id)
             .join(Client, Client.id == Course.client_id)
             .where(TherapySession.session_date == query.day,
                    Client.id.in_(scope.visible_client_ids()))
             .order_by(Client.code, TherapySession.id))
    return _page(found, page, SessionHit)


def notes(scope: Scope, query: Query, page: int = 1) -> Found | None:
    if not query.modalities and query.state is None:
        return None
    where = [Client.id.in_(scope.visible_client_ids())]
    if query.modalities:
        where.append(Note.modality.in_(query.modalities))
    if query.state is not None:
        where.append(Note.state == query.state)
    if query.words:  # "phq KT-0004": the notes of matching clients only
        where.append(_client_matches(query.words))
    found = (select(Note.id, Note.modality, Note.template_version, Note.state,
                    TherapySession.session_date, Client.code, Note.updated_at)
             .join(TherapySession, TherapySession.id == Note.session_id)
             .join(Course, Course.id == TherapySession.course_id)
             .join(Client, Client.id == Course.client_id)
             .where(*where)
             .order_by(TherapySession.session_date.desc(), Note.id.desc()))
    return _page(found, page, NoteHit)


def _like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _client_matches(words: list[str]):
    """Clients whose code starts with the first word, or whose code or name has words
    starting with each of ``words``."""
    return or_(Client.code.ilike(_like(words[0].upper()) + "%", escape="\\"),
               Client.id.in_(_name_matches(words)))


def _name_matches(words: list[str]):
    """Ids of clients whose code or name has words starting with each of ``words``."""
    if db.engine.dialect.name == "sqlite":
        terms = " ".join('"' + w.lower().replace('"', '""') + '"*' for w in words)
        return select(text("rowid")).select_from(text("client_search")).where(
            text("client_search MATCH :terms").bindparams(terms=terms))
    lexemes = [re.sub(r"[^\w-]", "", w.lower()) for w in words]
    terms = " & ".join(f"{w}:*" for w in lexemes if w)
    return select(Client.id).where(
        text(f"{_PG_DOCUMENT} @@ to_tsquery('simple', :terms)").bindparams(terms=terms))
