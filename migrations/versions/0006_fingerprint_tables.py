"""fingerprints and fingerprint_inputs: border inputs and their reference distributions

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        'fingerprints',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('version', sa.String(length=64), nullable=False),
        sa.Column('origin', sa.String(length=8), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('temperature', sa.Float(), nullable=True),
        sa.Column('logprobs', sa.Boolean(), nullable=False),
        sa.Column('candidates', sa.Integer(), nullable=False),
        sa.Column('border', sa.Integer(), nullable=False),
        sa.Column('calls', sa.Integer(), nullable=False),
        sa.Column('input_tokens', sa.BigInteger(), nullable=False),
        sa.Column('output_tokens', sa.BigInteger(), nullable=False),
        sa.Column('cost', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_fingerprints')),
        sa.UniqueConstraint('model', 'version', name='uq_fingerprints_model_version'),
    )
    op.create_index('ix_fingerprints_model', 'fingerprints', ['model', 'id'], unique=False)
    op.create_table(
        'fingerprint_inputs',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('fingerprint_id', Id, nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('prompt', sa.String(length=200), nullable=False),
        sa.Column('reference', Json, nullable=False),
        sa.Column('logprobs', Json, nullable=True),
        sa.ForeignKeyConstraint(['fingerprint_id'], ['fingerprints.id'], ondelete='CASCADE',
                                name=op.f('fk_fingerprint_inputs_fingerprint_id_fingerprints')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_fingerprint_inputs')),
        sa.UniqueConstraint('fingerprint_id', 'position', name='uq_fingerprint_inputs_fingerprint_id'),
    )


def downgrade() -> None:
    op.drop_table('fingerprint_inputs')
    op.drop_index('ix_fingerprints_model', table_name='fingerprints')
    op.drop_table('fingerprints')
