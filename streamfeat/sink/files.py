"""Archive files written atomically: a reader sees a whole file or none, even after a crash."""

from __future__ import annotations

import os
from pathlib import Path

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


def write_atomically(data: bytes | memoryview, folder: Path, name: str) -> Path:
    """Write ``data`` to ``folder/name`` through a synced temporary file and a rename.

    The folder is created when missing. The rename itself is durable only once the folder is
    synced (``sync_folder``), which callers may do once for many files.
    """
    final = folder / name
    temporary = folder / f".{name}.tmp"
    try:
        descriptor = os.open(temporary, _CREATE_FLAGS, 0o666)
    except FileNotFoundError:
        # Trying first saves a mkdir call per file; most folders exist after their first file.
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temporary, _CREATE_FLAGS, 0o666)
    try:
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.write(descriptor, view[written:])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, final)
    return final


def sync_folder(folder: Path) -> None:
    """Persist the renames in ``folder``, so its files survive a power loss."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
