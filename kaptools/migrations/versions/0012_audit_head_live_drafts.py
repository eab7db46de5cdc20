"""the audit chain's head kept on its row; drafts counted from an index of notes in use

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 12:10:00

"""
from alembic import op
import sqlalchemy as sa

from kaptools import guards

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade():
    bind = op.get_bind()
    op.add_column('audit_chain', sa.Column('head_hash', sa.String(length=64), nullable=False,
                                           server_default=GENESIS))
    op.execute(f"UPDATE audit_chain SET head_hash = coalesce((SELECT hash FROM audit_event "
               f"ORDER BY id DESC LIMIT 1), '{GENESIS}')")
    for sql in guards.statements(bind.dialect.name, version=3):
        bind.exec_driver_sql(sql)
    # Only notes in use: the start page counts a therapist's drafts from the index alone.
    op.drop_index('ix_note_author_state_updated', table_name='note')
    op.create_index('ix_note_author_state_live', 'note', ['author_id', 'state', 'updated_at'],
                    sqlite_where=sa.text('discarded_at IS NULL'),
                    postgresql_where=sa.text('discarded_at IS NULL'))


def downgrade():
    bind = op.get_bind()
    op.drop_index('ix_note_author_state_live', table_name='note')
    op.create_index('ix_note_author_state_updated', 'note', ['author_id', 'state', 'updated_at'])
    for sql in guards.statements(bind.dialect.name, drop=True, version=3):
        bind.exec_driver_sql(sql)
    with op.batch_alter_table('audit_chain') as batch:
        batch.drop_column('head_hash')
