"""runs.cases: per-case counts kept with each run; samples indexed by finish time

Detection, `canary failures`, the report's case grid and status read per-case counts of
many runs; summing samples for that grows with history. Each run keeps its own
{case: [passed, failed, errors]}, computed from its samples when it finishes (backfilled
here). The index bounds the daily-budget query to the day's samples.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
from collections import defaultdict

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

FIELDS = {"passed": 0, "failed": 1}  # anything else (error) counts at index 2


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cases', json, nullable=True))
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.create_index('ix_samples_finished_at', ['finished_at'], unique=False)

    conn = op.get_bind()
    runs = sa.table('runs', sa.column('id'), sa.column('status'), sa.column('cases', json))
    samples = sa.table('samples', sa.column('run_id'), sa.column('case_id'), sa.column('status'))
    counts: dict[int, dict[str, list[int]]] = defaultdict(dict)
    for run_id, case_id, status, n in conn.execute(
            sa.select(samples.c.run_id, samples.c.case_id, samples.c.status, sa.func.count())
            .group_by(samples.c.run_id, samples.c.case_id, samples.c.status)):
        counts[run_id].setdefault(case_id, [0, 0, 0])[FIELDS.get(status, 2)] += n
    finished = conn.execute(sa.select(runs.c.id).where(runs.c.status != 'running')).scalars().all()
    for run_id in finished:
        conn.execute(sa.update(runs).where(runs.c.id == run_id).values(cases=counts.get(run_id, {})))


def downgrade() -> None:
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.drop_index('ix_samples_finished_at')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('cases')
