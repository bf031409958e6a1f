"""The web app (issue 7): staff accounts, sessions, API tokens, sign-in throttling, case assignment and notes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Written by hand and frozen once released: it must not import monitor.models. tests/test_models.py
checks that after all migrations the database matches the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        ts("created_at"),
        ts("updated_at"),
        ts("last_sign_in_at", nullable=True),
        sa.CheckConstraint("role IN ('admin', 'advocate')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )

    op.create_table(
        "web_sessions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        ts("created_at"),
        ts("expires_at"),
        sa.CheckConstraint("kind IN ('staff', 'self-service')", name=op.f("ck_web_sessions_kind")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_web_sessions_user_id"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_web_sessions_case_id"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_web_sessions_token_sha256")),
    )
    op.create_index(op.f("ix_web_sessions_user_id"), "web_sessions", ["user_id"])
    op.create_index(op.f("ix_web_sessions_case_id"), "web_sessions", ["case_id"])
    op.create_index(op.f("ix_web_sessions_expires_at"), "web_sessions", ["expires_at"])

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        ts("created_at"),
        ts("last_used_at", nullable=True),
        ts("revoked_at", nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_tokens_token_sha256")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])

    op.create_table(
        "sign_in_throttle",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        ts("window_started_at"),
        ts("locked_until", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_throttle")),
        sa.UniqueConstraint("scope", "key_sha256", name=op.f("uq_sign_in_throttle_scope_key_sha256")),
    )

    op.create_table(
        "case_assignments",
        sa.Column("case_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        ts("assigned_at"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_assignments_case_id"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_case_assignments_user_id"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_case_assignments")),
    )
    op.create_index(op.f("ix_case_assignments_user_id"), "case_assignments", ["user_id"])

    op.create_table(
        "case_notes",
        sa.Column("id", BigId, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        ts("created_at"),
        sa.Column("body_enc", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_notes_case_id"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_notes")),
    )
    op.create_index(op.f("ix_case_notes_case_id"), "case_notes", ["case_id"])

    op.create_table(
        "match_reviews",
        sa.Column("id", BigId, nullable=False),
        sa.Column("match_id", BigId, nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("note_enc", sa.LargeBinary(), nullable=True),
        ts("created_at"),
        sa.CheckConstraint("decision IN ('confirmed', 'rejected')", name=op.f("ck_match_reviews_decision")),
        sa.ForeignKeyConstraint(["match_id"], ["matches.id"], name=op.f("fk_match_reviews_match_id"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_reviews")),
    )
    op.create_index(op.f("ix_match_reviews_match_id"), "match_reviews", ["match_id"])

    op.create_table(
        "preview_reveals",
        sa.Column("id", BigId, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("match_id", BigId, nullable=False),
        ts("revealed_at"),
        ts("expires_at"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_preview_reveals_user_id"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["match_id"], ["matches.id"], name=op.f("fk_preview_reveals_match_id"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preview_reveals")),
    )
    op.create_index(op.f("ix_preview_reveals_user_id_match_id"), "preview_reveals", ["user_id", "match_id"])
    op.create_index(op.f("ix_preview_reveals_match_id"), "preview_reveals", ["match_id"])


def downgrade() -> None:
    for table in ("preview_reveals", "match_reviews", "case_notes", "case_assignments", "sign_in_throttle",
                  "api_tokens", "web_sessions", "users"):
        op.drop_table(table)
