"""risk signals: notes that raised a client's risk flag, and follow-ups to them

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 16:00:00

"""
import json

import sqlalchemy as sa
from alembic import op

import kaptools.timeutil  # noqa: F401  (custom column types)

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

PHQ9_ITEM9 = "Item 9 endorsed: thoughts of death or self-harm — follow up"


def upgrade():
    op.create_table(
        'risk_signal',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('client_id', sa.Integer(), nullable=False),
        sa.Column('note_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('label', sa.String(length=300), nullable=False),
        sa.Column('at', kaptools.timeutil.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['client_id'], ['client.id']),
        sa.ForeignKeyConstraint(['note_id'], ['note.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('note_id'))
    with op.batch_alter_table('risk_signal') as batch:
        batch.create_index('ix_risk_signal_client_kind_at', ['client_id', 'kind', 'at'],
                           unique=False)
    # Before this revision only the PHQ-9's item 9 could raise a flag: signed PHQ-9s with
    # item 9 above 0 raise one now, so no existing risk goes unflagged.
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT note.id, note.answers, note.signed_at, course.client_id FROM note "
        "JOIN therapy_session ON therapy_session.id = note.session_id "
        "JOIN course ON course.id = therapy_session.course_id "
        "WHERE note.modality = 'phq-9' AND note.state = 'signed'")).fetchall()
    for note_id, answers, signed_at, client_id in rows:
        if isinstance(answers, str):
            answers = json.loads(answers)
        item9 = (answers or {}).get("q9")
        if isinstance(item9, int) and not isinstance(item9, bool) and item9 > 0:
            conn.execute(sa.text(
                "INSERT INTO risk_signal (client_id, note_id, kind, label, at) "
                "VALUES (:c, :n, 'raised', :l, :a)"),
                {"c": client_id, "n": note_id, "l": PHQ9_ITEM9, "a": signed_at})


def downgrade():
    op.drop_table('risk_signal')
