"""Dead-letter reasons, in the order that decides which one an event gets."""

from enum import StrEnum


class Reason(StrEnum):
    """Reason an event became a dead letter; when several apply, the earliest member wins."""

    UNDECODABLE = "undecodable"
    UNKNOWN_SCHEMA = "unknown_schema"
    MISSING_KEY = "missing_key"
    OUT_OF_RANGE = "out_of_range"
    NOT_FINITE = "not_finite"
    CONSTRAINT = "constraint"
    DUPLICATE = "duplicate"
    LATE = "late"
