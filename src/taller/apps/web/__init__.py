"""The explorer served by `taller serve` (see server.py)."""
