"""Producers: replay a data set into a source topic as Avro events."""

from streamfeat.producer.datasets import DATASETS, dataset_events
from streamfeat.producer.flights import FLIGHTS_ROWS, flight_events
from streamfeat.producer.kafka import ProduceSummary, event_time_reader, produce_events

__all__ = [
    "DATASETS",
    "FLIGHTS_ROWS",
    "ProduceSummary",
    "dataset_events",
    "event_time_reader",
    "flight_events",
    "produce_events",
]
