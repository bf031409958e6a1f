"""Platform connectors (issue 6): watch terms per case (encrypted), source credential rotation.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Written by hand and frozen once released: it must not import monitor.models. tests/test_models.py
checks that after all migrations the database matches the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "watch_terms",
        sa.Column("id", BigId, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("term_enc", sa.LargeBinary(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_watch_terms_case_id"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watch_terms")),
    )
    op.create_index(op.f("ix_watch_terms_case_id"), "watch_terms", ["case_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_watch_terms_case_id"), table_name="watch_terms")
    op.drop_table("watch_terms")
