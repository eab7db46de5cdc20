"""render jobs and the store of rendered PDFs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 15:00:00

"""
from alembic import op
import sqlalchemy as sa

import kaptools.timeutil  # noqa: F401  (custom column types)

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'render_job',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('course_id', sa.Integer(), nullable=False),
        sa.Column('session_id', sa.Integer(), nullable=True),
        sa.Column('sheets', sa.JSON(), nullable=True),
        sa.Column('doc_key', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('progress', sa.Integer(), nullable=False),
        sa.Column('stage', sa.String(length=120), nullable=False),
        sa.Column('failure', sa.String(length=16), nullable=True),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('pages', sa.Integer(), nullable=True),
        sa.Column('created_at', kaptools.timeutil.UTCDateTime(), nullable=False),
        sa.Column('started_at', kaptools.timeutil.UTCDateTime(), nullable=True),
        sa.Column('finished_at', kaptools.timeutil.UTCDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                           name='ck_render_job_status'),
        sa.ForeignKeyConstraint(['course_id'], ['course.id']),
        sa.ForeignKeyConstraint(['session_id'], ['therapy_session.id']),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id']),
        sa.PrimaryKeyConstraint('id'))
    with op.batch_alter_table('render_job') as batch:
        batch.create_index('ix_render_job_doc_key', ['doc_key'], unique=False)
        batch.create_index('ix_render_job_user_created', ['user_id', 'created_at'],
                           unique=False)
    op.create_table(
        'rendered_pdf',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('scope', sa.String(length=16), nullable=False),
        sa.Column('pdf', sa.LargeBinary(), nullable=False),
        sa.Column('pages', sa.Integer(), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('created_at', kaptools.timeutil.UTCDateTime(), nullable=False),
        sa.Column('used_at', kaptools.timeutil.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('key'))
    with op.batch_alter_table('rendered_pdf') as batch:
        batch.create_index('ix_rendered_pdf_used_at', ['used_at'], unique=False)


def downgrade():
    op.drop_table('rendered_pdf')
    op.drop_table('render_job')
