"""Data quality: the checks that decide whether an event is accepted or a dead letter."""
