"""Crash-safe writes and directory checks shared by every file the library saves.

A file is written to a hidden temporary beside it, fsync-ed, then renamed over
its target, so a killed process leaves the old file or the new one, never half
of one (a resumable sweep or fit would otherwise trust a truncated record), and
no temporary behind.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Calls ``write(tmp)`` on a temporary path, then moves it onto ``path``.

    Args:
        path: the file to (re)place. Its directory must exist.
        write: writes the whole file to the path it is given. It must not
            change the name (``np.savez`` appends ``.npz`` to a name without
            it: give it an open file instead).

    Raises:
        FileNotFoundError: if ``path``'s directory does not exist (without this
            check the error would name the temporary file).
        IsADirectoryError: if ``path`` is a directory (likewise).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path!r}: no directory {directory!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"cannot write {path!r}: it is a directory; give a file's path."
        )
    name = os.path.basename(path)
    # The temporary's name must fit the file system's limit (255 bytes, 143 on
    # eCryptfs) with its ".tmp-<pid>" suffix.
    if len(os.fsencode(name)) > 100:
        name = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDWR)  # O_RDWR: Windows refuses fsync on read-only
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` with :func:`atomic_write`."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` with :func:`atomic_write`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def usable_directory(path: str | os.PathLike, name: str) -> Path:
    """Creates directory ``path`` if needed; a clear ``ValueError`` if it cannot be.

    Args:
        path: the directory.
        name: how the error names it (an argument's name, say).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:  # a file, or a path through one
        raise ValueError(
            f"{name} {os.fspath(path)!r} is not a usable directory "
            f"({err.strerror}): pass a directory's path."
        ) from None
    return Path(path)
