"""database guards: append-only audit log, immutable signed notes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 04:10:00

"""
from alembic import op

from kaptools import guards

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    for sql in guards.statements(bind.dialect.name, version=1):
        op.execute(sql)


def downgrade():
    bind = op.get_bind()
    for sql in guards.statements(bind.dialect.name, drop=True, version=1):
        op.execute(sql)
