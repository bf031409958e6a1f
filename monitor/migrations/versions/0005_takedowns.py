"""Takedown notices (issue 8): notices, their URLs, the victim's consent to be named.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

Written by hand and frozen once released: it must not import monitor.models. tests/test_models.py
checks that after all migrations the database matches the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

STATES = ("draft", "approved", "sent", "acknowledged", "removed", "partly_removed", "refused", "expired")
KINDS = ("notice", "reminder", "host_abuse", "regulator", "reupload")


def ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "takedown_consents",
        sa.Column("case_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("name_in_notices", sa.Boolean(), nullable=False),
        ts("consented_at", nullable=True),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        sa.Column("victim_name_enc", sa.LargeBinary(), nullable=True),
        sa.Column("victim_contact_enc", sa.LargeBinary(), nullable=True),
        ts("updated_at"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_takedown_consents_case_id"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_takedown_consents")),
    )

    op.create_table(
        "takedown_notices",
        sa.Column("id", BigId, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", BigId, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("step", sa.SmallInteger(), nullable=False),
        sa.Column("notice_type", sa.String(32), nullable=False),
        sa.Column("profile", sa.String(8), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("delivery", sa.String(16), nullable=False),
        sa.Column("recipient", Json, nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body_enc", sa.LargeBinary(), nullable=False),
        sa.Column("edited", sa.Boolean(), nullable=False),
        sa.Column("uses_victim_identity", sa.Boolean(), nullable=False),
        sa.Column("elements", Json, nullable=False),
        sa.Column("deadline_hours", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=True),
        ts("created_at"),
        sa.Column("created_by", sa.String(128), nullable=False),
        ts("approved_at", nullable=True),
        sa.Column("approved_by", sa.String(128), nullable=True),
        ts("send_started_at", nullable=True),
        ts("sent_at", nullable=True),
        ts("deadline_at", nullable=True),
        ts("acknowledged_at", nullable=True),
        ts("removed_at", nullable=True),
        ts("closed_at", nullable=True),
        sa.Column("ticket", sa.String(128), nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
        ts("updated_at"),
        sa.CheckConstraint(_in("state", STATES), name=op.f("ck_takedown_notices_state")),
        sa.CheckConstraint(_in("kind", KINDS), name=op.f("ck_takedown_notices_kind")),
        sa.CheckConstraint("delivery IN ('email', 'web_form')", name=op.f("ck_takedown_notices_delivery")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_takedown_notices_case_id"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["parent_id"], ["takedown_notices.id"], name=op.f("fk_takedown_notices_parent_id"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_takedown_notices")),
        sa.UniqueConstraint("message_id", name=op.f("uq_takedown_notices_message_id")),
    )
    op.create_index(op.f("ix_takedown_notices_case_id"), "takedown_notices", ["case_id"])
    op.create_index(op.f("ix_takedown_notices_parent_id"), "takedown_notices", ["parent_id"])
    op.create_index(op.f("ix_takedown_notices_state_deadline_at"), "takedown_notices", ["state", "deadline_at"])

    op.create_table(
        "takedown_notice_urls",
        sa.Column("id", BigId, nullable=False),
        sa.Column("notice_id", BigId, nullable=False),
        sa.Column("match_id", BigId, nullable=True),
        sa.Column("media_id", BigId, nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("url_sha256", sa.String(64), nullable=False),
        sa.Column("page_url", sa.Text(), nullable=True),
        ts("last_checked_at", nullable=True),
        sa.Column("last_result", sa.String(32), nullable=True),
        ts("gone_at", nullable=True),
        sa.Column("gone_reason", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(["notice_id"], ["takedown_notices.id"], name=op.f("fk_takedown_notice_urls_notice_id"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["match_id"], ["matches.id"], name=op.f("fk_takedown_notice_urls_match_id"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], name=op.f("fk_takedown_notice_urls_media_id"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_takedown_notice_urls")),
        sa.UniqueConstraint("notice_id", "url_sha256", name=op.f("uq_takedown_notice_urls_notice_id_url_sha256")),
    )
    op.create_index(op.f("ix_takedown_notice_urls_match_id"), "takedown_notice_urls", ["match_id"])
    op.create_index(op.f("ix_takedown_notice_urls_media_id"), "takedown_notice_urls", ["media_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_takedown_notice_urls_media_id"), table_name="takedown_notice_urls")
    op.drop_index(op.f("ix_takedown_notice_urls_match_id"), table_name="takedown_notice_urls")
    op.drop_table("takedown_notice_urls")
    op.drop_index(op.f("ix_takedown_notices_state_deadline_at"), table_name="takedown_notices")
    op.drop_index(op.f("ix_takedown_notices_parent_id"), table_name="takedown_notices")
    op.drop_index(op.f("ix_takedown_notices_case_id"), table_name="takedown_notices")
    op.drop_table("takedown_notices")
    op.drop_table("takedown_consents")
