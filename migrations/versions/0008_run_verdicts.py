"""runs.verdict: the quality verdict a run was judged with, kept with the run

`history`, `status`, the report and `/` draw the band each run was judged against. Keeping
the verdict (status, expected rate, floor, method) with the run it judged makes those reads
cost what the rows cost, whatever the length of the history, and shows what canary really
decided, even after the detection settings change. Runs judged before this revision get
theirs computed when they are read.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verdict', json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('verdict')
