"""Full-fidelity transfer between kaptools instances: the whole database as one JSON file.

For a clinic moving from the embedded SQLite default to PostgreSQL, or to another server.
Every table that holds the record goes, row for row with its ids: accounts, clients,
courses, sessions, notes (with their versions and private notes), signatures, addenda,
reviews and comments, risk signals, discarded rows, and the audit trail as it is, so its
chain still verifies. What a running instance keeps for itself does not go: sign-in
sessions and throttles, render jobs and stored PDFs (made again on demand).

Import adds rows, never changes one: a row whose id is already there must be identical,
or the import stops before anything is written and says which rows differ. Importing
the same file twice therefore changes nothing the second time. Afterwards every signed
note's hash and the audit chain are verified. The database guards stay on throughout:
a signed note is written as a draft, gets its private notes, and is then signed, the one
order the guards allow.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, DateTime, LargeBinary, Table, func, select, text, update

from ..extensions import db
from ..timeutil import UTCDateTime, utcnow

FORMAT = "kaptools-transfer"
VERSION = 1
# Kept by a running instance for itself, not part of the record.
LEFT_BEHIND = frozenset({"auth_session", "login_throttle", "render_job", "rendered_pdf",
                         "audit_chain"})


class TransferError(Exception):
    """The file cannot be imported here; the message says why."""


def _tables() -> list[Table]:
    return [t for t in db.metadata.sorted_tables if t.name not in LEFT_BEHIND]


def schema_revision() -> str | None:
    try:
        return db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # noqa: BLE001 - a database made by create_all() has no version table
        db.session.rollback()
        return None


def _out(column, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, (UTCDateTime, DateTime)):
        return value.isoformat()
    if isinstance(column.type, Date):
        return value.isoformat()
    if isinstance(column.type, LargeBinary):
        return base64.b64encode(value).decode()
    return value


def _in(column, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, (UTCDateTime, DateTime)):
        return datetime.fromisoformat(value)
    if isinstance(column.type, Date):
        return date.fromisoformat(value)
    if isinstance(column.type, LargeBinary):
        return base64.b64decode(value)
    return value


def dump() -> dict[str, Any]:
    """Every table of the record, row for row, in an order import can follow."""
    tables = {}
    for table in _tables():
        key = list(table.primary_key.columns)
        rows = db.session.execute(select(table).order_by(*key)).mappings()
        tables[table.name] = [{c.name: _out(c, row[c.name]) for c in table.columns}
                              for row in rows]
    return {"format": FORMAT, "version": VERSION, "schema": schema_revision(),
            "exported_at": utcnow().isoformat(), "tables": tables}


@dataclass
class ImportReport:
    added: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)
    signed_notes_checked: int = 0
    chain_events: int = 0

    @property
    def changed(self) -> bool:
        return any(self.added.values())


def load(data: dict[str, Any]) -> ImportReport:
    """Add what the file holds and this database lacks; the caller commits."""
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise TransferError("This is not a kaptools transfer file (or one of a version this "
                            "kaptools cannot read).")
    here = schema_revision()
    if data.get("schema") and here and data["schema"] != here:
        raise TransferError(f"The file was written at database version {data['schema']} and "
                            f"this database is at {here}: upgrade the older one first.")
    by_name = {t.name: t for t in _tables()}
    unknown = set(data.get("tables", {})) - set(by_name)
    if unknown:
        raise TransferError("The file has tables this kaptools does not know: "
                            + ", ".join(sorted(unknown)))
    report = ImportReport()
    pending: dict[str, list[dict[str, Any]]] = {}
    conflicts: list[str] = []
    for table in _tables():
        rows = [{c.name: _in(c, row.get(c.name)) for c in table.columns}
                for row in data["tables"].get(table.name, [])]
        new, present = _split(table, rows, conflicts)
        pending[table.name] = new
        report.present[table.name] = present
    if conflicts:
        raise TransferError("Nothing was imported: these rows are already here with other "
                            "content, and an import never overwrites: " + "; ".join(
                                conflicts[:20]) + (" …" if len(conflicts) > 20 else ""))
    signed_later = _as_drafts(pending.get("note", []))
    for table in _tables():
        rows = pending[table.name]
        if rows:
            db.session.execute(table.insert(), rows)
        report.added[table.name] = len(rows)
    note = by_name["note"]
    for note_id, values in signed_later:
        db.session.execute(update(note).where(note.c.id == note_id).values(**values))
    _after_insert(report)
    return report


def _split(table: Table, rows: list[dict[str, Any]], conflicts: list[str]
           ) -> tuple[list[dict[str, Any]], int]:
    """The rows not here yet; identical rows already here are counted, different ones are
    conflicts."""
    key = list(table.primary_key.columns)
    existing = {}
    if rows:
        for row in db.session.execute(select(table)).mappings():
            existing[tuple(row[c.name] for c in key)] = dict(row)
    new = []
    present = 0
    for row in rows:
        found = existing.get(tuple(row[c.name] for c in key))
        if found is None:
            new.append(row)
        elif all(_same(c, found[c.name], row[c.name]) for c in table.columns):
            present += 1
        else:
            conflicts.append(f"{table.name} {', '.join(str(row[c.name]) for c in key)}")
    return new, present


def _same(column, a: Any, b: Any) -> bool:
    return _out(column, a) == _out(column, b)


def _as_drafts(notes: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Signed notes go in as drafts and are signed after their private notes (the guards
    refuse private notes for a note that is already signed)."""
    later = []
    for row in notes:
        if row["state"] != "draft":
            # updated_at too: the column's onupdate would stamp the import's own time.
            later.append((row["id"], {"state": row["state"], "updated_at": row["updated_at"]}))
            row["state"] = "draft"
    return later


def _after_insert(report: ImportReport) -> None:
    from .. import audit
    from ..models import AuditChain, AuditEvent, Note
    from ..notes import verify_hash

    bind = db.session.get_bind()
    if bind.dialect.name == "postgresql":  # ids came from the file: move the counters on
        for table in _tables():
            if "id" in table.columns and table.c.id.autoincrement is not False:
                db.session.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"coalesce(max(id), 1), max(id) IS NOT NULL) FROM {table.name}"))
    events = db.session.scalar(select(func.count(AuditEvent.id))) or 0
    head = audit.newest_hash()
    chain = db.session.get(AuditChain, 1)
    if chain is None:
        db.session.add(AuditChain(id=1, events=events, head_hash=head))
    else:
        chain.events, chain.head_hash = events, head
    db.session.flush()
    bad = []
    signed = db.session.scalars(select(Note).where(Note.content_hash.is_not(None))
                                .execution_options(include_discarded=True))
    for note in signed:
        check = verify_hash(note)
        report.signed_notes_checked += 1
        if check is not None and not check.ok:
            bad.append(note.id)
    if bad:
        raise TransferError("Nothing was imported: the content hash of these signed notes "
                            f"does not verify: {', '.join(map(str, bad[:20]))}")
    chain_report = audit.verify_chain()
    if not chain_report.ok:
        raise TransferError("Nothing was imported: the audit trail does not verify after "
                            f"the import (first break at event {chain_report.broken_id}).")
    report.chain_events = chain_report.checked
