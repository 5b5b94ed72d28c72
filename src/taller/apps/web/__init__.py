"""The explorer served by `taller serve`: app.py (the app and its routes), guards.py, runs.py, replies.py,
refusals.py."""
