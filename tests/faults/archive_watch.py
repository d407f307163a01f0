"""Notice archive files the moment the sink renames them into place (Linux inotify).

The sink writes a batch's files and only then commits the batch's offsets, and that window
lasts milliseconds. Polling the folder tree would mostly miss it, so the watch takes rename events
from the kernel instead, on the archive folder and on every folder created below it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from streamfeat.sink.layout import parse_file_name

_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_ISDIR = 0x40000000
_IN_Q_OVERFLOW = 0x00004000
_EVENT_HEADER = struct.Struct("iIII")
"""``struct inotify_event`` without its name: watch, mask, cookie, name length."""
_READ_SIZE = 64 * 1024


@dataclass(frozen=True)
class ArchiveFile:
    """A file that appeared in the archive, with the feature-log range its name carries."""

    path: Path
    partition: int
    first_offset: int
    last_offset: int
    seen_at: float
    """``time.monotonic()`` when the watch saw it."""


class ArchiveWatch:
    """Reports archive files as they are renamed into place, in the order the kernel saw them."""

    def __init__(self, root: Path) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._folders: dict[int, Path] = {}
        self._pending: list[ArchiveFile] = []
        root.mkdir(parents=True, exist_ok=True)
        self._watch_tree(root)

    def next_file(self, timeout_s: float) -> ArchiveFile | None:
        """Wait up to ``timeout_s`` for the next archive file; None when none came."""
        deadline = time.monotonic() + timeout_s
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if ready:
                self._read_events()
        return self._pending.pop(0)

    def drain(self) -> list[ArchiveFile]:
        """Every file seen so far and not yet returned."""
        self._read_events()
        found, self._pending = self._pending, []
        return found

    def close(self) -> None:
        os.close(self._fd)

    def _watch_tree(self, folder: Path) -> None:
        """Watch ``folder`` and its subfolders; report files already in them.

        A folder is watched only after it was created, so files renamed into it before that
        are found by listing it.
        """
        mask = _IN_MOVED_TO | _IN_CREATE
        descriptor = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), mask)
        if descriptor < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch failed on {folder}")
        self._folders[descriptor] = folder
        for child in sorted(folder.iterdir()):
            if child.is_dir():
                self._watch_tree(child)
            else:
                self._note_file(child)

    def _read_events(self) -> None:
        try:
            data = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return
        position = 0
        while position < len(data):
            descriptor, mask, _, length = _EVENT_HEADER.unpack_from(data, position)
            position += _EVENT_HEADER.size
            name = data[position : position + length].rstrip(b"\0").decode()
            position += length
            if mask & _IN_Q_OVERFLOW:
                raise RuntimeError("the inotify queue overflowed; archive files went unseen")
            folder = self._folders.get(descriptor)
            if folder is None:
                continue
            if mask & _IN_ISDIR and mask & _IN_CREATE:
                self._watch_tree(folder / name)
            elif mask & _IN_MOVED_TO:
                self._note_file(folder / name)

    def _note_file(self, path: Path) -> None:
        parsed = parse_file_name(path.name)
        if parsed is not None:
            partition, first_offset, last_offset = parsed
            self._pending.append(
                ArchiveFile(path, partition, first_offset, last_offset, time.monotonic())
            )
