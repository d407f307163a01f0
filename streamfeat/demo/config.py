"""Settings of one demo run: the topology, where files go and how long to wait."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from streamfeat.demo.children import DEFAULT_STOP_TIMEOUT

DEFAULT_STATE_DIR = Path(".local/demo-state")
DEFAULT_OUTPUT_DIR = Path("demo-output")
DEFAULT_STALL_TIMEOUT = timedelta(seconds=120)


@dataclass(frozen=True)
class DemoConfig:
    """Settings of one demo run: the topology file, the folders, and the timeouts."""

    topology_path: Path
    state_dir: Path = DEFAULT_STATE_DIR
    """The worker's RocksDB state; deleted at the start of every run."""
    output_dir: Path = DEFAULT_OUTPUT_DIR
    stall_timeout: timedelta = DEFAULT_STALL_TIMEOUT
    """The run fails when no committed offset moves for this long."""
    check_interval: timedelta = timedelta(seconds=2)
    """Time between two reads of the committed offsets."""
    stop_timeout: timedelta = DEFAULT_STOP_TIMEOUT

    @property
    def archive_dir(self) -> Path:
        return self.output_dir / "archive"

    @property
    def logs_dir(self) -> Path:
        return self.output_dir / "logs"

    @property
    def summary_path(self) -> Path:
        return self.output_dir / "summary.json"

    @property
    def training_set_path(self) -> Path:
        return self.output_dir / "training_set.parquet"

    def outputs(self) -> list[Path]:
        """Return every file and folder a run writes, which the next run deletes first."""
        return [
            self.state_dir,
            self.archive_dir,
            self.logs_dir,
            self.summary_path,
            self.training_set_path,
        ]
