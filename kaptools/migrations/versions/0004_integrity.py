"""integrity: serialised audit chain, per-editor autosaves, login throttle, guards v2

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 13:00:00

"""
from alembic import op
import sqlalchemy as sa

import kaptools.timeutil  # noqa: F401  (custom column types)
from kaptools import guards

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    op.create_table(
        'audit_chain',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('events', sa.Integer(), nullable=False),
        sa.CheckConstraint('id = 1', name='ck_audit_chain_single_row'),
        sa.PrimaryKeyConstraint('id'))
    op.execute("INSERT INTO audit_chain (id, events) SELECT 1, count(*) FROM audit_event")

    # One autosave per open editor; rows kept from before belong to a "legacy" editor.
    op.create_table(
        'note_autosave_v2',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('note_id', sa.Integer(), nullable=False),
        sa.Column('editor_id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('base_version', sa.Integer(), nullable=False),
        sa.Column('formdata', sa.JSON(), nullable=False),
        sa.Column('saved_at', kaptools.timeutil.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['note_id'], ['note.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('note_id', 'editor_id', name='uq_note_autosave_editor'))
    op.execute("INSERT INTO note_autosave_v2 (note_id, editor_id, user_id, base_version, "
               "formdata, saved_at) SELECT note_id, 'legacy', user_id, base_version, formdata, "
               "saved_at FROM note_autosave")
    op.drop_table('note_autosave')
    op.rename_table('note_autosave_v2', 'note_autosave')
    with op.batch_alter_table('note_autosave') as batch:
        batch.create_index('ix_note_autosave_note_id', ['note_id'], unique=False)

    op.create_table(
        'login_throttle',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('scope', sa.String(length=16), nullable=False),
        sa.Column('key', sa.String(length=160), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('first_at', kaptools.timeutil.UTCDateTime(), nullable=False),
        sa.Column('last_at', kaptools.timeutil.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('scope', 'key', name='uq_login_throttle_key'))
    with op.batch_alter_table('login_throttle') as batch:
        batch.create_index('ix_login_throttle_last_at', ['last_at'], unique=False)

    for sql in guards.statements(bind.dialect.name, version=2):
        op.execute(sql)


def downgrade():
    bind = op.get_bind()
    for sql in guards.statements(bind.dialect.name, drop=True, version=2):
        op.execute(sql)
    op.drop_table('login_throttle')
    op.drop_table('note_autosave')
    op.create_table(
        'note_autosave',
        sa.Column('note_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('base_version', sa.Integer(), nullable=False),
        sa.Column('formdata', sa.JSON(), nullable=False),
        sa.Column('saved_at', kaptools.timeutil.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['note_id'], ['note.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id']),
        sa.PrimaryKeyConstraint('note_id'))
    op.drop_table('audit_chain')
