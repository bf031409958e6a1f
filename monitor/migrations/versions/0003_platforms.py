"""Platform connectors (issue 6): watch terms per case (encrypted), source credential rotation.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Written by hand and frozen once released: it must not import monitor.models. tests/test_models.py
checks that after all migrations the database matches the models.
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
