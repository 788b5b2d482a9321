"""runs.assessed_at: a run that finished but was never judged (a crash in between) is judged later

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assessed_at', sa.DateTime(), nullable=True))
    # runs finished before this revision were judged when they finished
    op.execute("UPDATE runs SET assessed_at = finished_at WHERE status = 'complete'")


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('assessed_at')
