"""SMART page sessions shared by replicas (smart_app.sessions.SMART_SESSIONS).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # `serve` may already have made the table (create_tables): then there is nothing to do.
    if sa.inspect(op.get_bind()).has_table("smart_sessions"):
        return
    op.create_table(
        "smart_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
    )
    op.create_index("ix_smart_sessions_expires_at", "smart_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_smart_sessions_expires_at", table_name="smart_sessions")
    op.drop_table("smart_sessions")
