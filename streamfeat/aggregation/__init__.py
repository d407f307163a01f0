"""The pure aggregation core: mergeable partial aggregates, windows and the per-entity engine.

Nothing here does I/O; the worker and the backfill share it.
"""
