"""The one-command demo: synthetic pictures, a demo case, a scan, the matches it finds."""
