"""Observability: logging helpers shared by the long-running processes."""
