"""indexes for the pages' scoped queries

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 18:00:00

"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

INDEXES = [
    ('note', 'ix_note_author_state_updated', ['author_id', 'state', 'updated_at']),
    ('note', 'ix_note_session_modality', ['session_id', 'modality']),
    ('therapy_session', 'ix_session_date_course', ['session_date', 'course_id']),
    ('review', 'ix_review_reviewer_status_submitted', ['reviewer_id', 'status', 'submitted_at']),
    ('review', 'ix_review_submitter_status', ['submitted_by_id', 'status']),
]


def upgrade():
    for table, name, columns in INDEXES:
        with op.batch_alter_table(table) as batch:
            batch.create_index(name, columns, unique=False)


def downgrade():
    for table, name, _ in INDEXES:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(name)
