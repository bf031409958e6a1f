"""The NCII monitor application: registry, matching, scheduling, web, takedowns and CLI."""

__version__ = "0.1.0"
