"""Initial store: evaluations, cards, feedback, seen_jti.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hook_instance", sa.String(100), nullable=False),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("hook", sa.String(100), nullable=False),
        sa.Column("client", sa.String(300), nullable=False),
        sa.Column("patient_ref", sa.String(200)),
        sa.Column("encounter_ref", sa.String(200)),
        sa.Column("claim_ref", sa.String(200)),
        sa.Column("order_refs", sa.JSON(), nullable=False),
        sa.Column("payer", sa.String(100)),
        sa.Column("unit_method", sa.String(100)),
        sa.Column("ruleset_version", sa.String(100)),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("input_issue_count", sa.Integer(), nullable=False),
        sa.Column("card_count", sa.Integer(), nullable=False),
    )
    op.create_index("ix_evaluations_hook_instance", "evaluations", ["hook_instance"])
    op.create_table(
        "cards",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("evaluation_id", sa.String(36), sa.ForeignKey("evaluations.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("client", sa.String(300), nullable=False),
        sa.Column("indicator", sa.String(20), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("line_ref", sa.String(200)),
        sa.Column("suggestions", sa.JSON(), nullable=False),
    )
    op.create_index("ix_cards_evaluation_id", "cards", ["evaluation_id"])
    op.create_index("ix_cards_rule", "cards", ["rule"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
        sa.Column("card_uuid", sa.String(100), nullable=False),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("client", sa.String(300), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("accepted_suggestions", sa.JSON(), nullable=False),
        sa.Column("override_system", sa.String(300)),
        sa.Column("override_code", sa.String(200)),
        sa.Column("override_display", sa.String(300)),
        sa.Column("outcome_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feedback_card_uuid", "feedback", ["card_uuid"])
    op.create_table(
        "seen_jti",
        sa.Column("iss", sa.String(300), primary_key=True),
        sa.Column("jti", sa.String(200), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_seen_jti_expires_at", "seen_jti", ["expires_at"])


def downgrade() -> None:
    op.drop_table("seen_jti")
    op.drop_table("feedback")
    op.drop_table("cards")
    op.drop_table("evaluations")
