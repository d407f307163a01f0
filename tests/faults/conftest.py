"""Fixtures of the fault tests: references built once per session, log tails on failure.

Each fault scenario starts a stack of its own (see ``scenario.open_pipeline``), because it
stops, kills and restarts services that other tests must not lose.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest

from tests.faults.pipeline import Period
from tests.faults.scenario import FaultRun, Reference, build_reference

ReferenceFor = Callable[[Period], tuple[Reference, list[dict[str, Any]]]]


@pytest.fixture(scope="session")
def reference_for(tmp_path_factory: pytest.TempPathFactory) -> ReferenceFor:
    """Return a function that backfills a period once per session and returns it again after."""
    built: dict[str, tuple[Reference, list[dict[str, Any]]]] = {}

    def get(period: Period) -> tuple[Reference, list[dict[str, Any]]]:
        if period.name not in built:
            folder = tmp_path_factory.mktemp(f"reference-{period.name}")
            built[period.name] = build_reference(period, folder)
        return built[period.name]

    return get


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the tails of the run's process logs to the report of a failed check."""
    report = yield
    if report.failed and call.when == "call":
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, FaultRun):
                report.sections.append(("process log tails", value.registry.tails()))
    return report
