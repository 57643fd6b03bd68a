"""The crash-safe writes every saver of the library goes through."""

import errno
import os
import tempfile

import numpy as np
import pandas as pd
import pytest

from optax_lode._files import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    usable_directory,
    writable_directory,
)


def _refuse_files_in(monkeypatch, directory):
    """Creating a file in ``directory`` fails as in a read-only directory
    (simulated: root, as tests may run, ignores modes)."""
    directory = os.path.abspath(directory)
    real_open, real_temporary = os.open, tempfile.TemporaryFile

    def refused(path):
        return PermissionError(errno.EACCES, "Permission denied", os.fspath(path))

    def no_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and os.path.dirname(os.path.abspath(path)) == directory:
            raise refused(path)
        return real_open(path, flags, *args, **kwargs)

    def no_temporary(*args, dir=None, **kwargs):
        if dir is not None and os.path.abspath(dir) == directory:
            raise refused(dir)
        return real_temporary(*args, dir=dir, **kwargs)

    monkeypatch.setattr(os, "open", no_open)
    monkeypatch.setattr(tempfile, "TemporaryFile", no_temporary)


def test_writes_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write_bytes(path, b"one")
    atomic_write_text(path, "twö")  # replaces, in UTF-8 whatever the locale
    assert path.read_bytes() == "twö".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")

    def half_then_crash(tmp):
        with open(tmp, "wb") as f:
            f.write(b"ne")
        raise KeyboardInterrupt  # a kill between the write and the rename

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_crash)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_writer_gets_a_hidden_temporary_beside_the_target(tmp_path):
    seen = []

    def write(tmp):
        seen.append(tmp)
        with open(tmp, "wb") as f:
            np.savez(f, x=np.arange(3))

    atomic_write(tmp_path / "r.npz", write)
    (tmp,) = seen
    assert os.path.dirname(tmp) == str(tmp_path)
    assert os.path.basename(tmp).startswith(".r.npz.tmp-")
    with np.load(tmp_path / "r.npz") as z:
        np.testing.assert_array_equal(z["x"], np.arange(3))


def test_a_name_near_the_255_byte_limit_is_written(tmp_path):
    # ".<name>.tmp-<pid>" would pass the limit: its temporary gets a short name.
    path = tmp_path / ("m" * 250 + ".lode")
    atomic_write_bytes(path, b"x")
    assert path.read_bytes() == b"x"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_missing_directory_is_named(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=r"no directory .*nope"):
        atomic_write_bytes(missing / "a.bin", b"x")
    assert not missing.exists()
    # A directory as the target: named, not the hidden temporary.
    with pytest.raises(IsADirectoryError, match=r"it is a directory"):
        atomic_write_bytes(tmp_path, b"x")
    assert list(tmp_path.iterdir()) == []


def test_usable_directory(tmp_path):
    made = usable_directory(tmp_path / "x" / "y", "out_dir")
    assert made.is_dir()
    a_file = tmp_path / "f"
    a_file.write_text("")
    for bad in (a_file, a_file / "sub"):
        with pytest.raises(ValueError, match=r"out_dir .* is not a usable directory"):
            usable_directory(bad, "out_dir")


def test_writable_directory_makes_checks_and_removes_what_it_made(
    tmp_path, monkeypatch
):
    assert writable_directory(tmp_path / "a" / "b") == tmp_path / "a"
    assert (tmp_path / "a" / "b").is_dir()
    assert writable_directory(tmp_path / "a" / "b") is None  # made already
    a_file = tmp_path / "f"
    a_file.write_text("")
    with pytest.raises(ValueError, match=r"f is not a directory"):
        writable_directory(a_file)
    with pytest.raises(ValueError, match=r"cannot make .*f/sub \(Not a directory\)"):
        writable_directory(a_file / "sub")
    # A directory that cannot be written is said now, not at the first write
    # (a fit's checkpoint, after minutes); what was made for it is removed.
    _refuse_files_in(monkeypatch, tmp_path / "new" / "deep")
    with pytest.raises(ValueError, match=r"cannot write in .*deep \(Permission denied"):
        writable_directory(tmp_path / "new" / "deep")
    assert not (tmp_path / "new").exists()
    (tmp_path / "ro").mkdir()
    _refuse_files_in(monkeypatch, tmp_path / "ro")
    with pytest.raises(
        ValueError,
        match=r"checkpoint_dir '.*ro' is not a usable directory: cannot write in "
        r".*ro \(Permission denied\); pass a directory you can write to",
    ):
        usable_directory(tmp_path / "ro", "checkpoint_dir")


def test_a_failed_write_names_the_target_not_the_temporary(tmp_path, monkeypatch):
    # A trailing separator: the rename failed, naming the temporary.
    with pytest.raises(IsADirectoryError, match=r"m.lode/': a path ending in '/'"):
        atomic_write_bytes(str(tmp_path / "m.lode") + "/", b"x")
    # A name the file system refuses (real, also as root).
    with pytest.raises(OSError) as info:
        atomic_write_bytes(tmp_path / ("a" * 300), b"x")
    assert info.value.errno == errno.ENAMETOOLONG
    assert info.value.filename == str(tmp_path / ("a" * 300))
    assert ".tmp-" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
    # A directory that cannot be written, whatever the writer (pyarrow's
    # error did not name any file).
    ro = tmp_path / "ro"
    ro.mkdir()
    _refuse_files_in(monkeypatch, ro)
    frame = pd.DataFrame({"a": [1]})
    for name, write in (
        ("m.lode", lambda p: open(p, "wb").close()),
        ("r.parquet", lambda p: frame.to_parquet(p)),
    ):
        with pytest.raises(PermissionError) as info:
            atomic_write(ro / name, write)
        assert info.value.filename == str(ro / name)
        assert ".tmp-" not in str(info.value)
    assert list(ro.iterdir()) == []


def test_a_read_only_directory_for_real(tmp_path):
    """The same, with the file modes a user meets (skipped where they do not
    apply: root)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        try:
            (ro / "probe").touch()
        except PermissionError:
            pass
        else:
            pytest.skip("file modes do not apply to this user (root)")
        with pytest.raises(ValueError, match=r"cannot write in .*ro \(Permission"):
            writable_directory(ro)
        with pytest.raises(PermissionError) as info:
            atomic_write_bytes(ro / "m.lode", b"x")
        assert info.value.filename == str(ro / "m.lode")
    finally:
        ro.chmod(0o755)
