"""Rate-limited warnings: one line per key per interval, with the count held back."""

import logging

from streamfeat.observability.ratelimit import RateLimitedLog


def test_repeats_within_interval_are_counted_not_logged(caplog):
    now = [0.0]
    log = RateLimitedLog(
        logging.getLogger("test.ratelimit"), interval_s=10, monotonic=lambda: now[0]
    )
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        for _ in range(5):
            log.warning("late", "dead_letter reason=%s", "late")
        now[0] = 11.0
        log.warning("late", "dead_letter reason=%s", "late")
        log.warning("constraint", "dead_letter reason=%s", "constraint")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "dead_letter reason=late suppressed_since_last=0",
        "dead_letter reason=late suppressed_since_last=4",
        "dead_letter reason=constraint suppressed_since_last=0",
    ]
