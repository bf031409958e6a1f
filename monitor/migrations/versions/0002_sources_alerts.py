"""Sources (settings, cursor, health), what each source listed, the alert outbox, and APScheduler's
job store table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Written by hand and frozen: it must not import monitor.models. tests/test_models.py checks that
after all migrations the database matches the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("settings", Json, nullable=False),
        sa.Column("secrets_enc", sa.LargeBinary(), nullable=True),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("jitter_seconds", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("cursor", Json, nullable=True),
        ts("created_at"),
        ts("updated_at"),
        ts("last_poll_at", nullable=True),
        ts("last_success_at", nullable=True),
        ts("next_due_at", nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("backoff_seconds", sa.Integer(), nullable=False),
        sa.Column("last_error_code", sa.String(32), nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        ts("lease_until", nullable=True),
        sa.CheckConstraint("interval_seconds >= 1", name=op.f("ck_sources_interval")),
        sa.CheckConstraint("jitter_seconds >= 0", name=op.f("ck_sources_jitter")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_sources_name")),
    )

    op.create_table(
        "source_candidates",
        sa.Column("id", BigId, nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("media_url", sa.Text(), nullable=False),
        sa.Column("page_url", sa.Text(), nullable=True),
        sa.Column("candidate", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.SmallInteger(), nullable=False),
        ts("next_attempt_at", nullable=True),
        sa.Column("error", sa.String(300), nullable=True),
        sa.Column("media_id", BigId, nullable=True),
        ts("first_seen_at"),
        ts("last_attempt_at", nullable=True),
        sa.CheckConstraint("status IN ('done', 'retry', 'failed', 'skipped')",
                           name=op.f("ck_source_candidates_status")),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name=op.f("fk_source_candidates_source_id"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], name=op.f("fk_source_candidates_media_id"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_candidates")),
        sa.UniqueConstraint("source_id", "key_sha256", name=op.f("uq_source_candidates_source_id_key_sha256")),
    )
    op.create_index(op.f("ix_source_candidates_media_id"), "source_candidates", ["media_id"])
    op.create_index(op.f("ix_source_candidates_status_next_attempt_at"), "source_candidates",
                    ["status", "next_attempt_at"])

    op.create_table(
        "alerts_outbox",
        sa.Column("id", BigId, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("match_id", BigId, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=True),
        sa.Column("payload", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        ts("created_at"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        ts("next_attempt_at", nullable=True),
        ts("claimed_until", nullable=True),
        sa.Column("delivered", Json, nullable=False),
        ts("sent_at", nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sent', 'cancelled')", name=op.f("ck_alerts_outbox_status")),
        sa.ForeignKeyConstraint(["match_id"], ["matches.id"], name=op.f("fk_alerts_outbox_match_id"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_alerts_outbox_case_id"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name=op.f("fk_alerts_outbox_source_id"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts_outbox")),
        sa.UniqueConstraint("match_id", "kind", name=op.f("uq_alerts_outbox_match_id_kind")),
    )
    op.create_index(op.f("ix_alerts_outbox_case_id"), "alerts_outbox", ["case_id"])
    op.create_index(op.f("ix_alerts_outbox_status_next_attempt_at"), "alerts_outbox", ["status", "next_attempt_at"])

    # APScheduler 3's SQLAlchemyJobStore layout (it finds the table and creates nothing).
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(191), nullable=False),
        sa.Column("next_run_time", sa.Float(25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apscheduler_jobs")),
    )
    op.create_index(op.f("ix_apscheduler_jobs_next_run_time"), "apscheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    op.drop_index(op.f("ix_apscheduler_jobs_next_run_time"), table_name="apscheduler_jobs")
    op.drop_table("apscheduler_jobs")
    op.drop_index(op.f("ix_alerts_outbox_status_next_attempt_at"), table_name="alerts_outbox")
    op.drop_index(op.f("ix_alerts_outbox_case_id"), table_name="alerts_outbox")
    op.drop_table("alerts_outbox")
    op.drop_index(op.f("ix_source_candidates_status_next_attempt_at"), table_name="source_candidates")
    op.drop_index(op.f("ix_source_candidates_media_id"), table_name="source_candidates")
    op.drop_table("source_candidates")
    op.drop_table("sources")
