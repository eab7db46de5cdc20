"""account settings: two-factor sign-in (TOTP secrets, recovery codes, a per-role
requirement) and a user's own time zone

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 04:30:00

"""
import sqlalchemy as sa
from alembic import op

from kaptools.timeutil import UTCDateTime

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('user_account', sa.Column('totp_secret', sa.String(length=64), nullable=True))
    op.add_column('user_account', sa.Column('totp_enrolled_at', UTCDateTime(), nullable=True))
    op.add_column('user_account', sa.Column('totp_last_step', sa.Integer(), nullable=True))
    op.add_column('user_account', sa.Column('time_zone', sa.String(length=64), nullable=True))
    op.create_table(
        'recovery_code',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=255), nullable=False),
        sa.Column('used_at', UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_recovery_code_user_id', 'recovery_code', ['user_id'], unique=False)
    op.create_table(
        'role_policy',
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('requires_two_factor', sa.Boolean(), nullable=False),
        sa.CheckConstraint("role IN ('therapist', 'supervisor', 'admin')",
                           name='ck_role_policy_role'),
        sa.PrimaryKeyConstraint('role'),
    )


def downgrade():
    op.drop_table('role_policy')
    op.drop_index('ix_recovery_code_user_id', table_name='recovery_code')
    op.drop_table('recovery_code')
    with op.batch_alter_table('user_account') as batch:
        batch.drop_column('time_zone')
        batch.drop_column('totp_last_step')
        batch.drop_column('totp_enrolled_at')
        batch.drop_column('totp_secret')
