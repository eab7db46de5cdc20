"""Database-level guards, below the ORM: an append-only audit log and immutable
signed notes. Installed by the migrations and whenever tables are created."""

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

DROP_SQLITE = ["DROP TRIGGER IF EXISTS audit_event_no_update",
               "DROP TRIGGER IF EXISTS audit_event_no_delete",
               "DROP TRIGGER IF EXISTS note_signed_immutable",
               "DROP TRIGGER IF EXISTS note_signed_state",
               "DROP TRIGGER IF EXISTS note_signed_no_delete"]
DROP_POSTGRESQL = ["DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event",
                   "DROP TRIGGER IF EXISTS note_signed_immutable ON note",
                   "DROP FUNCTION IF EXISTS kaptools_audit_append_only()",
                   "DROP FUNCTION IF EXISTS kaptools_note_immutable()"]


def statements(dialect: str, drop: bool = False) -> list[str]:
    if dialect == "postgresql":
        return DROP_POSTGRESQL if drop else POSTGRESQL
    if dialect == "sqlite":
        return DROP_SQLITE if drop else SQLITE
    return []


def install(connection) -> None:
    for sql in statements(connection.dialect.name):
        connection.exec_driver_sql(sql)


def register(metadata) -> None:
    """Install the guards after create_all() (tests, fresh databases)."""

    def after_create(target, connection, **kw):
        tables = set(metadata.tables)
        if {"audit_event", "note"} <= tables:
            install(connection)

    event.listen(metadata, "after_create", after_create)
