"""sensitivity: per series, suite version and detection settings, the smallest drop caught within 3 runs

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sensitivity',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('suite', sa.String(length=200), nullable=False),
        sa.Column('suite_version', sa.String(length=64), nullable=False),
        sa.Column('settings', sa.String(length=400), nullable=False),
        sa.Column('min_drop', sa.Float(), nullable=True),
        sa.Column('trials', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('computed_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sensitivity')),
        sa.UniqueConstraint('model', 'suite', 'suite_version', 'settings', name='uq_sensitivity_series_settings'),
    )


def downgrade() -> None:
    op.drop_table('sensitivity')
