"""The flights demo: replay a data set through the worker and the sink on the local stack.

``run_demo`` starts the local stack and resets everything a previous run left: topics, consumer
groups, online keys, worker state and output files. It then replays the data set, runs one
worker and one sink until every event is processed and archived, and returns the figures.
``streamfeat demo`` wraps it.
"""

from streamfeat.demo.config import DemoConfig
from streamfeat.demo.run import DemoReporter, run_demo
from streamfeat.demo.summary import DemoSummary

__all__ = ["DemoConfig", "DemoReporter", "DemoSummary", "run_demo"]
