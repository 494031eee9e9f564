"""Writing a message into a folder, for the file transports of mail and SMS."""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path


def timestamp() -> str:
    """``20261128T101500.123456Z``: sorts by time, and is safe in a file name."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def write_new(folder: Path, stem: str, suffix: str, data: bytes) -> Path:
    """Write ``data`` to a fresh file ``folder/stem{suffix}`` (``stem-2``… if taken).

    Atomic: a temporary file in the same folder, then a hard link (which, unlike a rename,
    refuses to replace an existing name; a rename when the file system has no links), so a
    reader never sees half a message and two messages never overwrite each other. Mode 0600:
    the file holds a working signing link or code.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        for n in range(1, 1000):
            path = folder / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
            try:
                os.link(tmp, path)
            except FileExistsError:
                continue
            except OSError:  # no hard links on this file system
                if path.exists():
                    continue
                os.rename(tmp, path)
            return path
        raise FileExistsError(f"no free name for {stem}{suffix} in {folder}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
