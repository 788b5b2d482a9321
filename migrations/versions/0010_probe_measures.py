"""runs.probe: a fingerprint probe's measurement, kept with its run

A probe's values (its mean distance from the reference, its logprob change, the distance
per input) depend only on its own answers and on its fingerprint's references, which
never change (`canary import` adding answers to a run drops its measurement, measured
again when next read). Keeping them with the run lets `status`, `history`, `report` and `/` judge a
fingerprint series from one row a probe, instead of decoding every answer of every probe
since the fingerprint was made (200 samples a day: 73,000 a year). Probes measured before
this revision get theirs when they are first read.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('probe', json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('probe')
