"""The crash-safe writes every saver of the library goes through."""

import os

import numpy as np
import pytest

from optax_lode._files import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    usable_directory,
)


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
