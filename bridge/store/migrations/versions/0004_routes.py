"""alert routing: fixed threads, alerts-only posts, collapsed repeats

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chat_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fixed_thread", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("replies", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("replies", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    op.create_table(
        "named_threads",
        sa.Column("chat", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("thread_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("chat", "name"),
    )
    op.create_table(
        "collapses",
        sa.Column("chat", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("chat", "conversation_id", "digest"),
    )


def downgrade() -> None:
    op.drop_table("collapses")
    op.drop_table("named_threads")
    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.drop_column("replies")
    with op.batch_alter_table("chat_jobs", schema=None) as batch_op:
        batch_op.drop_column("replies")
        batch_op.drop_column("fixed_thread")
