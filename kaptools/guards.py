"""Database-level guards, below the ORM: an append-only audit log and immutable
signed records. Installed by the migrations and whenever tables are created.

Version 1 (migration 0003): the audit log, signed notes. Version 2 (migration 0004):
signatures and addenda are append-only, a signed note's private notes are frozen, and
TRUNCATE (which skips row triggers on PostgreSQL) is refused on every guarded table.
Version 3 (migration 0012): the audit chain's row follows its newest event (its hash and
the number of events), so a writer takes the chain's lock and reads its head in one
statement.
"""

from __future__ import annotations

from sqlalchemy import event

SQLITE = [
    """CREATE TRIGGER IF NOT EXISTS audit_event_no_update BEFORE UPDATE ON audit_event
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_event_no_delete BEFORE DELETE ON audit_event
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS note_signed_immutable
       BEFORE UPDATE OF answers, modality, template_version, session_id, author_id,
                        signed_at, signed_by_id, content_hash ON note
       WHEN OLD.state <> 'draft'
       BEGIN SELECT RAISE(ABORT, 'a signed note cannot be changed; add an addendum'); END""",
    """CREATE TRIGGER IF NOT EXISTS note_signed_state
       BEFORE UPDATE OF state ON note
       WHEN OLD.state <> 'draft' AND NOT (OLD.state = 'signed' AND NEW.state = 'entered_in_error')
       BEGIN SELECT RAISE(ABORT, 'a signed note cannot return to draft'); END""",
    """CREATE TRIGGER IF NOT EXISTS note_signed_no_delete BEFORE DELETE ON note
       WHEN OLD.state <> 'draft'
       BEGIN SELECT RAISE(ABORT, 'a signed note cannot be deleted'); END""",
]

POSTGRESQL = [
    """CREATE OR REPLACE FUNCTION kaptools_audit_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'the audit log is append-only'; END; $$ LANGUAGE plpgsql""",
    """DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event""",
    """CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
       FOR EACH ROW EXECUTE FUNCTION kaptools_audit_append_only()""",
    """CREATE OR REPLACE FUNCTION kaptools_note_immutable() RETURNS trigger AS $$
       BEGIN
         IF TG_OP = 'DELETE' THEN
           IF OLD.state <> 'draft' THEN RAISE EXCEPTION 'a signed note cannot be deleted'; END IF;
           RETURN OLD;
         END IF;
         IF OLD.state <> 'draft' AND (
              OLD.answers::text IS DISTINCT FROM NEW.answers::text
              OR OLD.modality IS DISTINCT FROM NEW.modality
              OR OLD.template_version IS DISTINCT FROM NEW.template_version
              OR OLD.session_id IS DISTINCT FROM NEW.session_id
              OR OLD.author_id IS DISTINCT FROM NEW.author_id
              OR OLD.signed_at IS DISTINCT FROM NEW.signed_at
              OR OLD.signed_by_id IS DISTINCT FROM NEW.signed_by_id
              OR OLD.content_hash IS DISTINCT FROM NEW.content_hash
              OR (OLD.state IS DISTINCT FROM NEW.state
                  AND NOT (OLD.state = 'signed' AND NEW.state = 'entered_in_error'))) THEN
           RAISE EXCEPTION 'a signed note cannot be changed; add an addendum';
         END IF;
         RETURN NEW;
       END; $$ LANGUAGE plpgsql""",
    """DROP TRIGGER IF EXISTS note_signed_immutable ON note""",
    """CREATE TRIGGER note_signed_immutable BEFORE UPDATE OR DELETE ON note
       FOR EACH ROW EXECUTE FUNCTION kaptools_note_immutable()""",
]

SQLITE_V2 = [
    """CREATE TRIGGER IF NOT EXISTS signature_no_update BEFORE UPDATE ON signature
       BEGIN SELECT RAISE(ABORT, 'a signature cannot be changed or removed'); END""",
    """CREATE TRIGGER IF NOT EXISTS signature_no_delete BEFORE DELETE ON signature
       BEGIN SELECT RAISE(ABORT, 'a signature cannot be changed or removed'); END""",
    """CREATE TRIGGER IF NOT EXISTS addendum_no_update BEFORE UPDATE ON addendum
       BEGIN SELECT RAISE(ABORT, 'an addendum cannot be changed or removed'); END""",
    """CREATE TRIGGER IF NOT EXISTS addendum_no_delete BEFORE DELETE ON addendum
       BEGIN SELECT RAISE(ABORT, 'an addendum cannot be changed or removed'); END""",
    """CREATE TRIGGER IF NOT EXISTS private_note_signed_no_insert BEFORE INSERT ON private_note
       WHEN (SELECT state FROM note WHERE id = NEW.note_id) <> 'draft'
       BEGIN SELECT RAISE(ABORT, 'the private notes of a signed note cannot be changed'); END""",
    """CREATE TRIGGER IF NOT EXISTS private_note_signed_no_update BEFORE UPDATE ON private_note
       WHEN (SELECT state FROM note WHERE id = OLD.note_id) <> 'draft'
       BEGIN SELECT RAISE(ABORT, 'the private notes of a signed note cannot be changed'); END""",
    """CREATE TRIGGER IF NOT EXISTS private_note_signed_no_delete BEFORE DELETE ON private_note
       WHEN (SELECT state FROM note WHERE id = OLD.note_id) <> 'draft'
       BEGIN SELECT RAISE(ABORT, 'the private notes of a signed note cannot be changed'); END""",
]

_TRUNCATE_GUARDED = ("audit_event", "note", "signature", "addendum", "private_note")
POSTGRESQL_V2 = [
    """CREATE OR REPLACE FUNCTION kaptools_append_only_row() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' rows cannot be changed or removed';
       END; $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE FUNCTION kaptools_private_note_guard() RETURNS trigger AS $$
       DECLARE target integer;
       BEGIN
         IF TG_OP = 'INSERT' THEN target := NEW.note_id; ELSE target := OLD.note_id; END IF;
         IF (SELECT state FROM note WHERE id = target) <> 'draft' THEN
           RAISE EXCEPTION 'the private notes of a signed note cannot be changed';
         END IF;
         IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
         RETURN NEW;
       END; $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE FUNCTION kaptools_no_truncate() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME ||
                                           ' cannot be truncated: the record is append-only';
       END; $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS signature_append_only ON signature",
    """CREATE TRIGGER signature_append_only BEFORE UPDATE OR DELETE ON signature
       FOR EACH ROW EXECUTE FUNCTION kaptools_append_only_row()""",
    "DROP TRIGGER IF EXISTS addendum_append_only ON addendum",
    """CREATE TRIGGER addendum_append_only BEFORE UPDATE OR DELETE ON addendum
       FOR EACH ROW EXECUTE FUNCTION kaptools_append_only_row()""",
    "DROP TRIGGER IF EXISTS private_note_signed ON private_note",
    """CREATE TRIGGER private_note_signed BEFORE INSERT OR UPDATE OR DELETE ON private_note
       FOR EACH ROW EXECUTE FUNCTION kaptools_private_note_guard()""",
    *(stmt for table in _TRUNCATE_GUARDED for stmt in (
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION kaptools_no_truncate()""")),
]

DROP_SQLITE_V2 = [f"DROP TRIGGER IF EXISTS {name}" for name in (
    "signature_no_update", "signature_no_delete", "addendum_no_update", "addendum_no_delete",
    "private_note_signed_no_insert", "private_note_signed_no_update",
    "private_note_signed_no_delete")]
DROP_POSTGRESQL_V2 = [
    "DROP TRIGGER IF EXISTS signature_append_only ON signature",
    "DROP TRIGGER IF EXISTS addendum_append_only ON addendum",
    "DROP TRIGGER IF EXISTS private_note_signed ON private_note",
    *(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}" for table in _TRUNCATE_GUARDED),
    "DROP FUNCTION IF EXISTS kaptools_append_only_row()",
    "DROP FUNCTION IF EXISTS kaptools_private_note_guard()",
    "DROP FUNCTION IF EXISTS kaptools_no_truncate()",
]

DROP_SQLITE = ["DROP TRIGGER IF EXISTS audit_event_no_update",
               "DROP TRIGGER IF EXISTS audit_event_no_delete",
               "DROP TRIGGER IF EXISTS note_signed_immutable",
               "DROP TRIGGER IF EXISTS note_signed_state",
               "DROP TRIGGER IF EXISTS note_signed_no_delete"]
DROP_POSTGRESQL = ["DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event",
                   "DROP TRIGGER IF EXISTS note_signed_immutable ON note",
                   "DROP FUNCTION IF EXISTS kaptools_audit_append_only()",
                   "DROP FUNCTION IF EXISTS kaptools_note_immutable()"]

# The head moves with every insert, in the inserting transaction (which holds the chain's
# lock when it comes through ``audit.record``).
SQLITE_V3 = [
    """CREATE TRIGGER IF NOT EXISTS audit_event_head AFTER INSERT ON audit_event
       BEGIN UPDATE audit_chain SET head_hash = NEW.hash, events = events + 1 WHERE id = 1;
       END""",
]
POSTGRESQL_V3 = [
    """CREATE OR REPLACE FUNCTION kaptools_audit_head() RETURNS trigger AS $$
       BEGIN UPDATE audit_chain SET head_hash = NEW.hash, events = events + 1 WHERE id = 1;
       RETURN NULL; END; $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS audit_event_head ON audit_event",
    """CREATE TRIGGER audit_event_head AFTER INSERT ON audit_event
       FOR EACH ROW EXECUTE FUNCTION kaptools_audit_head()""",
]
DROP_SQLITE_V3 = ["DROP TRIGGER IF EXISTS audit_event_head"]
DROP_POSTGRESQL_V3 = ["DROP TRIGGER IF EXISTS audit_event_head ON audit_event",
                      "DROP FUNCTION IF EXISTS kaptools_audit_head()"]


_BY_VERSION = {
    ("sqlite", 1): (SQLITE, DROP_SQLITE),
    ("postgresql", 1): (POSTGRESQL, DROP_POSTGRESQL),
    ("sqlite", 2): (SQLITE_V2, DROP_SQLITE_V2),
    ("postgresql", 2): (POSTGRESQL_V2, DROP_POSTGRESQL_V2),
    ("sqlite", 3): (SQLITE_V3, DROP_SQLITE_V3),
    ("postgresql", 3): (POSTGRESQL_V3, DROP_POSTGRESQL_V3),
}
LATEST = 3


def statements(dialect: str, drop: bool = False, version: int | None = None) -> list[str]:
    """The statements of one guard version, or of every version up to the latest."""
    versions = [version] if version is not None else list(range(1, LATEST + 1))
    if drop:
        versions.reverse()
    found: list[str] = []
    for v in versions:
        install_sql, drop_sql = _BY_VERSION.get((dialect, v), ([], []))
        found.extend(drop_sql if drop else install_sql)
    return found


def install(connection) -> None:
    for sql in statements(connection.dialect.name):
        connection.exec_driver_sql(sql)


def register(metadata) -> None:
    """Install the guards after create_all() (tests, fresh databases)."""

    def after_create(target, connection, **kw):
        tables = set(metadata.tables)
        if {"audit_event", "note"} <= tables:
            install(connection)
        if "audit_chain" in tables:
            connection.exec_driver_sql(
                "INSERT INTO audit_chain (id, events) SELECT 1, 0 WHERE NOT EXISTS "
                "(SELECT 1 FROM audit_chain WHERE id = 1)")

    event.listen(metadata, "after_create", after_create)
