"""The one place the command-line interface prints: messages to stdout, errors to stderr."""

from __future__ import annotations

import json

import typer


def info(message: str) -> None:
    """Print a progress or result message on standard output."""
    typer.echo(message)


def error(message: str) -> None:
    """Print an error message on standard error."""
    typer.echo(f"error: {message}", err=True)


def summary_json(summary: object) -> None:
    """Print ``summary`` as indented JSON on standard output, for scripts to parse."""
    typer.echo(json.dumps(summary, indent=2, sort_keys=True, default=str))
