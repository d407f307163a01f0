"""One benchmark figure, the table ``make bench`` prints, and the JSON it writes."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """A measured rate and, when there is one, the baseline it is compared with in the same run."""

    benchmark: str
    unit: str
    value: float
    baseline: str | None = None
    baseline_value: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.baseline_value:
            return None
        return self.value / self.baseline_value


def print_table(figures: list[Figure]) -> None:
    header = f"{'benchmark':<34}{'value':>14}  {'unit':<12}{'baseline':<30}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for figure in figures:
        baseline = (
            "" if figure.baseline is None else f"{figure.baseline} {figure.baseline_value:,.0f}"
        )
        ratio = "" if figure.ratio is None else f"{figure.ratio:.2f}x"
        value = f"{figure.value:>14,.0f}"
        print(f"{figure.benchmark:<34}{value}  {figure.unit:<12}{baseline:<30}{ratio:>8}")


def write_json(figures: list[Figure], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bench-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    payload = {
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "figures": [{**asdict(f), "ratio": f.ratio} for f in figures],
    }
    path.write_text(json.dumps(payload, indent=2))
    return path
