"""The advocates' web app and its JSON API (FastAPI, server-rendered Jinja2 pages); docs/web.md.

`create_app(engine, settings)` builds the app; `ncii serve` runs it with the scheduler.
"""

from monitor.web.app import create_app

__all__ = ["create_app"]
