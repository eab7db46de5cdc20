"""courses, sessions and draft notes started by mistake can be discarded and restored

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 04:00:00

"""
import sqlalchemy as sa
from alembic import op

from kaptools.timeutil import UTCDateTime

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TABLES = ['course', 'therapy_session', 'note']


def upgrade():
    # Plain ALTER TABLE ... ADD COLUMN on both databases, so the tables keep their
    # triggers (SQLite adds a reference only inline, which Alembic does not write).
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in TABLES:
        op.add_column(table, sa.Column('discarded_at', UTCDateTime(), nullable=True))
        if sqlite:
            op.execute(f"ALTER TABLE {table} ADD COLUMN discarded_by_id INTEGER "
                       "REFERENCES user_account (id)")
        else:
            op.add_column(table, sa.Column('discarded_by_id', sa.Integer(), nullable=True))
            op.create_foreign_key(f'fk_{table}_discarded_by', table, 'user_account',
                                  ['discarded_by_id'], ['id'])
        op.create_index(f'ix_{table}_discarded_at', table, ['discarded_at'], unique=False)


def downgrade():
    for table in TABLES:
        op.drop_index(f'ix_{table}_discarded_at', table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column('discarded_by_id')
            batch.drop_column('discarded_at')
