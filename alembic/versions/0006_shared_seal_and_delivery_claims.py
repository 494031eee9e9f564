"""shared sealing identity, delivery claims that expire

The sealing identity moves into ``deployment_settings`` (every replica seals with the same
certificate), which needs a longer ``value``; the bot's seen webhook deliveries get a claim
that runs out, so an event whose replica died mid-way is handled again on redelivery.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 22:30:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployment_settings", schema=None) as batch_op:
        batch_op.alter_column(
            "value",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=4096),
            type_=sa.Text(),
            existing_nullable=False,
        )
    with op.batch_alter_table("slack_seen_deliveries", schema=None) as batch_op:
        # rows from before were handled already
        batch_op.add_column(
            sa.Column("done", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("claim", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
        batch_op.add_column(
            sa.Column("claimed_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("slack_seen_deliveries", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("claim")
        batch_op.drop_column("done")
    # deployment_settings.value stays TEXT, and the sealing identity stays in it: it holds
    # the only copy of the seal's private key (never written to disk), and a longer column
    # is harmless to the code of before. That code then refuses to start with a message
    # naming {data_dir}/seal/ (which holds the exported certificates but no key) rather than
    # sealing with a new identity; set SIGNBOT_SEAL_P12 there, or upgrade again.
