"""The web app (issue 7): staff accounts, sessions, API tokens, sign-in throttling, case assignment and notes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Written by hand and frozen once released: it must not import monitor.models. tests/test_models.py
checks that after all migrations the database matches the models.
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
