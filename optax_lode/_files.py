"""Crash-safe writes and directory checks shared by every file the library saves.

A file is written to a hidden temporary beside it, fsync-ed, then renamed over
its target, so a killed process leaves the old file or the new one, never half
of one (a resumable sweep or fit would otherwise trust a truncated record), and
no temporary behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Calls ``write(tmp)`` on a temporary path, then moves it onto ``path``.

    An error while writing names ``path``, never the hidden temporary.

    Args:
        path: the file to (re)place. Its directory must exist.
        write: writes the whole file to the path it is given. It must not
            change the name (``np.savez`` appends ``.npz`` to a name without
            it: give it an open file instead).

    Raises:
        FileNotFoundError: if ``path``'s directory does not exist.
        IsADirectoryError: if ``path`` is a directory, or ends in a separator.
        OSError: if the file cannot be written (``PermissionError`` for a
            directory that is not writable), naming ``path``.
    """
    path = os.fsdecode(path)  # a bytes path too: the temporary's name is text
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path!r}: no directory {directory!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"cannot write {path!r}: it is a directory; give a file's path."
        )
    if path.endswith(tuple(filter(None, (os.sep, os.altsep)))):
        # The rename would fail, naming the temporary.
        raise IsADirectoryError(
            f"cannot write {path!r}: a path ending in {path[-1]!r} names a "
            "directory; give a file's path (without the trailing separator)."
        )
    name = os.path.basename(path)
    # The temporary's name must fit the file system's limit (255 bytes, 143 on
    # eCryptfs) with its ".tmp-<pid>" suffix.
    if len(os.fsencode(name)) > 100:
        name = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}")
    try:
        # Made here first: some writers (pyarrow) do not say which file they
        # could not open.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
        write(tmp)
        fd = os.open(tmp, os.O_RDWR)  # O_RDWR: Windows refuses fsync on read-only
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        if tmp not in (err.filename, err.filename2):
            raise
        # The temporary's name would leave the user guessing which file failed;
        # OSError(errno, ...) keeps the subclass (PermissionError, ...).
        raise OSError(err.errno, err.strerror, path) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` with :func:`atomic_write`."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` with :func:`atomic_write`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def writable_directory(path: str | os.PathLike) -> Path | None:
    """Makes directory ``path`` (and its parents) if missing and checks that a
    file can be created in it, by creating one: before work that writes there
    later (a fit's checkpoint), whose error would otherwise come after it.

    Args:
        path: the directory.

    Returns:
        The topmost directory it made, for a caller to remove if its work
        fails; None if ``path`` existed.

    Raises:
        ValueError: saying what is wrong, naming the directory: a file on the
            path, no permission to make it or to write in it, a read-only
            file system. A directory it made is removed again.
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is not a directory")
        missing = [d for d in (path, *path.parents) if not d.exists()]
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file on the path, no permission, a name too long
        raise ValueError(f"cannot make {path} ({err.strerror or err})") from None
    made = missing[-1] if missing else None
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:  # read-only, no permission, no space
        remove_empty(made, path)
        raise ValueError(f"cannot write in {path} ({err.strerror or err})") from None
    return made


def remove_empty(made: Path | None, path: str | os.PathLike) -> None:
    """Removes ``path`` and its parents up to ``made`` (what
    :func:`writable_directory` made), as far as they are empty."""
    if made is None:
        return
    path = Path(path)
    for d in (path, *path.parents):
        try:
            d.rmdir()
        except OSError:  # not empty (a checkpoint, say), or gone
            return
        if d == made:
            return


def usable_directory(path: str | os.PathLike, name: str) -> Path:
    """Creates directory ``path`` if needed and checks that it can be written
    (:func:`writable_directory`); a clear ``ValueError`` if not.

    Args:
        path: the directory.
        name: how the error names it (an argument's name, say).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    try:
        writable_directory(path)
    except ValueError as err:
        raise ValueError(
            f"{name} {os.fspath(path)!r} is not a usable directory: {err}; pass "
            "a directory you can write to."
        ) from None
    return Path(path)


def file_path_problem(out: str | os.PathLike) -> str | None:
    """Why ``out`` cannot name a file to write, as far as can be told without
    making anything (a directory there, a name the file system refuses), or
    None: checked before work of minutes or hours that writes it at the end.
    """
    try:
        return "is a directory" if Path(out).is_dir() else None
    except OSError as err:  # a name too long for the file system, say
        return str(err.strerror or err)


def writable_parent(out: str | os.PathLike) -> tuple[Path | None, str | None]:
    """Makes ``out``'s missing directories and checks that a file of its name
    can be written there, before work of minutes or hours (a fit, a sweep)
    that writes it at the end.

    Returns the topmost directory it made (or None) and what is wrong (or
    None).
    """
    out = Path(out)
    limit = name_max(out.parent)
    if limit is not None and len(os.fsencode(out.name)) > limit:
        return None, f"its name is longer than {limit} bytes"
    try:
        return writable_directory(out.parent), None
    except ValueError as err:
        return None, str(err)


def name_max(directory: Path) -> int | None:
    """The longest file name (bytes) that ``directory``'s file system takes,
    or None where that is unknown (Windows, a directory not made yet)."""
    for d in (directory, *directory.parents):
        if d.exists():
            try:
                limit = os.pathconf(d, "PC_NAME_MAX")
            except (AttributeError, OSError, ValueError):
                return None
            return limit if limit > 0 else None  # -1: no limit
    return None
