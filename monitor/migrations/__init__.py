"""Alembic migrations of the monitor's database (run with `ncii db upgrade` or monitor.db.upgrade)."""
