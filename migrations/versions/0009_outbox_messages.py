"""outbox_alerts: an outbox row is one Slack message, carrying the alert events it announces

The events of one model in one run go out as one message (a provider-wide incident over
three suites is one message, not three). The (alert, event) pairs move from `outbox` to
`outbox_alerts`, still unique per alert and event; every existing row, pending ones
included, becomes a message carrying its one event, and is delivered as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _outbox_alerts_table():
    return op.create_table(
        'outbox_alerts',
        sa.Column('outbox_id', ID, nullable=False),
        sa.Column('alert_id', ID, nullable=False),
        sa.Column('event', sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_outbox_alerts_alert_id_alerts'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name=op.f('fk_outbox_alerts_outbox_id_outbox'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('outbox_id', 'alert_id', name=op.f('pk_outbox_alerts')),
        sa.UniqueConstraint('alert_id', 'event', name='uq_outbox_alerts_alert_event'),
    )


def upgrade() -> None:
    # read the pairs first: on SQLite the outbox is rebuilt, which must not cascade into a new table
    carried = op.get_bind().execute(sa.text("SELECT id, alert_id, event FROM outbox ORDER BY id")).all()
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint('uq_outbox_alert_event', type_='unique')
        batch_op.drop_constraint('fk_outbox_alert_id_alerts', type_='foreignkey')
        batch_op.drop_column('alert_id')
    table = _outbox_alerts_table()
    if carried:
        op.bulk_insert(table, [{"outbox_id": i, "alert_id": a, "event": e} for i, a, e in carried])


def downgrade() -> None:
    """Back to one row per alert event: a message carrying several becomes one row for each."""
    old = sa.table('outbox', sa.column('id', ID), sa.column('event', sa.String), sa.column('message', JSON),
                   sa.column('state', sa.String), sa.column('created_at', sa.DateTime),
                   sa.column('attempts', sa.Integer), sa.column('next_attempt_at', sa.DateTime),
                   sa.column('claimed_by', sa.String), sa.column('claimed_until', sa.DateTime),
                   sa.column('sent_at', sa.DateTime), sa.column('last_error', sa.Text))
    links = sa.table('outbox_alerts', sa.column('outbox_id'), sa.column('alert_id'))
    rows = op.get_bind().execute(sa.select(old, links.c.alert_id).join(links, links.c.outbox_id == old.c.id)
                                 .order_by(old.c.id, links.c.alert_id)).mappings().all()
    op.drop_table('outbox_alerts')
    op.drop_table('outbox')
    table = op.create_table(
        'outbox',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('alert_id', ID, nullable=False),
        sa.Column('event', sa.String(length=16), nullable=False),
        sa.Column('message', JSON, nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
        sa.Column('claimed_by', sa.String(length=200), nullable=True),
        sa.Column('claimed_until', sa.DateTime(), nullable=True),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_outbox_alert_id_alerts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
        sa.UniqueConstraint('alert_id', 'event', name='uq_outbox_alert_event'),
    )
    if rows:
        op.bulk_insert(table, [{k: v for k, v in r.items() if k != 'id'} for r in rows])
