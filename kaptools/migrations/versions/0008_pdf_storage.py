"""rendered PDFs stored as they are (PostgreSQL does not try to compress them)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 16:30:00

"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # PDF streams are compressed already; compressing them again costs CPU on every store
    # and saves nothing. (SQLite has no such setting.)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE rendered_pdf ALTER COLUMN pdf SET STORAGE EXTERNAL")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE rendered_pdf ALTER COLUMN pdf SET STORAGE EXTENDED")
