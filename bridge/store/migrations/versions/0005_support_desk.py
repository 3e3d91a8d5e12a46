"""support desk: contacts (names, opt-out, block), closed threads, MMS out

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_at", sa.Float(), nullable=True))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=16), server_default="reply", nullable=False)
        )
    op.create_table(
        "contacts",
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("opted_out_at", sa.Float(), nullable=True),
        sa.Column("blocked_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )
    op.create_table(
        "outbox_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token", name="uq_outbox_media_token"),
        sa.UniqueConstraint("outbox_id", "position", name="uq_outbox_media_outbox_position"),
    )


def downgrade() -> None:
    op.drop_table("outbox_media")
    op.drop_table("contacts")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("purpose")
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.drop_column("closed_at")
