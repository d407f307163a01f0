"""The offline commands name a missing input file and stop before reading anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamfeat.cli.main import app

TOPOLOGY = Path(__file__).parents[2] / "topologies" / "flights.yml"


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["training-set", "--archive", "{tmp}", "--out", "{tmp}/out.parquet"], "--labels"),
        (["backfill", "--source", "flights", "--archive", "{tmp}/archive"], "--events"),
    ],
)
def test_missing_input_file_is_named(command: list[str], option: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.parquet"
    name, *rest = command
    arguments = [name, str(TOPOLOGY), *(a.format(tmp=tmp_path) for a in rest), option, str(missing)]

    result = CliRunner().invoke(app, arguments, env={"COLUMNS": "400"})

    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output
    assert f"'{missing}' does not exist" in result.output
