"""quick-find: a full-text index of client codes and names

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 05:00:00

"""
from alembic import op

from kaptools import search

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    # SQLite: an FTS5 table kept by triggers (filled from the existing rows);
    # PostgreSQL: a GIN index over to_tsvector.
    search.install_index(op.get_bind())


def downgrade():
    bind = op.get_bind()
    sql = search.DROP_SQLITE_INDEX if bind.dialect.name == "sqlite" \
        else search.DROP_POSTGRESQL_INDEX
    for statement in sql:
        bind.exec_driver_sql(statement)
