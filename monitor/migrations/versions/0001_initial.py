"""Initial schema: cases, submissions, registered hashes, media, sightings, matches, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Written by hand and frozen: it must not import monitor.models (the models will change; this
migration must keep creating exactly this schema). tests/test_models.py checks that after all
migrations the database matches the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "registry_state",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("hash_generation", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_registry_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_state")),
    )
    op.execute("INSERT INTO registry_state (id, hash_generation, audit_seq) VALUES (1, 0, 0)")

    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("jurisdiction", sa.String(2), nullable=True),
        sa.Column("involves_minor", sa.Boolean(), nullable=False),
        sa.Column("label_enc", sa.LargeBinary(), nullable=True),
        sa.Column("contact_enc", sa.LargeBinary(), nullable=True),
        ts("created_at"),
        ts("updated_at"),
        ts("purged_at", nullable=True),
        sa.CheckConstraint("status IN ('active', 'withdrawn', 'closed')", name=op.f("ck_cases_status")),
        sa.CheckConstraint("jurisdiction IS NULL OR length(jurisdiction) = 2", name=op.f("ck_cases_jurisdiction")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("reference", name=op.f("uq_cases_reference")),
    )

    op.create_table(
        "submissions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        ts("created_at"),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("source_format", sa.String(16), nullable=False),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("flagged", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_submissions_case_id"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
    )
    op.create_index(op.f("ix_submissions_case_id"), "submissions", ["case_id"])

    op.create_table(
        "registered_hashes",
        sa.Column("id", BigId, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("submission_id", BigId, nullable=False),
        sa.Column("image_number", sa.Integer(), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("value_bytes", sa.LargeBinary(32), nullable=False),
        sa.Column("quality", sa.SmallInteger(), nullable=True),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("low_quality", sa.Boolean(), nullable=False),
        ts("added_at"),
        ts("withdrawn_at", nullable=True),
        sa.CheckConstraint("quality IS NULL OR quality BETWEEN 0 AND 100", name=op.f("ck_registered_hashes_quality")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_registered_hashes_case_id"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"], name=op.f("fk_registered_hashes_submission_id"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registered_hashes")),
        sa.UniqueConstraint("case_id", "algorithm", "value", "region",
                            name=op.f("uq_registered_hashes_case_id_algorithm_value_region")),
    )
    op.create_index(op.f("ix_registered_hashes_algorithm_value"), "registered_hashes", ["algorithm", "value"])
    op.create_index(op.f("ix_registered_hashes_submission_id"), "registered_hashes", ["submission_id"])

    op.create_table(
        "media",
        sa.Column("id", BigId, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("page_url", sa.Text(), nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        ts("first_seen_at"),
        ts("last_seen_at"),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("format", sa.String(16), nullable=True),
        sa.Column("hashes", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(32), nullable=True),
        sa.CheckConstraint("status IN ('hashed', 'failed')", name=op.f("ck_media_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
        sa.UniqueConstraint("sha256", name=op.f("uq_media_sha256")),
    )
    op.create_index(op.f("ix_media_md5"), "media", ["md5"])

    op.create_table(
        "media_sightings",
        sa.Column("id", BigId, nullable=False),
        sa.Column("media_id", BigId, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("url_sha256", sa.String(64), nullable=False),
        sa.Column("page_url", sa.Text(), nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        ts("first_seen_at"),
        ts("last_seen_at"),
        ts("gone_at", nullable=True),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], name=op.f("fk_media_sightings_media_id"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_sightings")),
        sa.UniqueConstraint("url_sha256", "media_id", name=op.f("uq_media_sightings_url_sha256_media_id")),
    )
    op.create_index(op.f("ix_media_sightings_media_id"), "media_sightings", ["media_id"])

    op.create_table(
        "matches",
        sa.Column("id", BigId, nullable=False),
        sa.Column("media_id", BigId, nullable=False),
        sa.Column("registered_hash_id", BigId, nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("distance", sa.SmallInteger(), nullable=False),
        sa.Column("query_region", sa.String(64), nullable=False),
        sa.Column("review_status", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=True),
        ts("reviewed_at", nullable=True),
        ts("created_at"),
        sa.CheckConstraint("review_status IN ('pending', 'confirmed', 'rejected')", name=op.f("ck_matches_review_status")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_matches_case_id"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], name=op.f("fk_matches_media_id"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["registered_hash_id"], ["registered_hashes.id"],
                                name=op.f("fk_matches_registered_hash_id"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matches")),
        sa.UniqueConstraint("media_id", "registered_hash_id", "query_region",
                            name=op.f("uq_matches_media_id_registered_hash_id_query_region")),
    )
    op.create_index(op.f("ix_matches_case_id"), "matches", ["case_id"])
    op.create_index(op.f("ix_matches_registered_hash_id"), "matches", ["registered_hash_id"])
    op.create_index(op.f("ix_matches_review_status_created_at"), "matches", ["review_status", "created_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", BigId, nullable=False),
        ts("created_at"),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("details", Json, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_audit_log_case_id"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("entry_hash", name=op.f("uq_audit_log_entry_hash")),
    )
    op.create_index(op.f("ix_audit_log_case_id"), "audit_log", ["case_id"])
    _make_audit_log_append_only()


def _make_audit_log_append_only() -> None:
    # The ORM refuses changes too, but only the database can stop raw SQL and other programs.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
            END $$""")
        op.execute("""CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
                      FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""")
        op.execute("""CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
                      FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""")
    else:
        op.execute("""CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
                      BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END""")
        op.execute("""CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
                      BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END""")


def downgrade() -> None:
    # Deliberately unsupported: dropping these tables would destroy cases and the audit log.
    raise NotImplementedError("the initial schema cannot be downgraded; restore a backup instead")
