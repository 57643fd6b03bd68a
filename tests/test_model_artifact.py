"""save_model / load_model: exact round trips; every kind of bad file is refused."""

from __future__ import annotations

import copy
import io
import json
import struct

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optax_lode import Normalisation
from optax_lode.model import (
    LatentODE,
    load_model,
    model_digest,
    read_header,
    save_model,
)
from optax_lode.model._artifact import FORMAT_VERSION, MAGIC, pack, unpack


@pytest.fixture(scope="module")
def model():
    m = LatentODE(
        T=30,
        key=jax.random.key(7),
        mu=3,
        normalisation=Normalisation([0.1, 0.5, -4.0], [1.2, 0.2, 0.9]),
        lr_range=[1e-4, 3e-2],
        best_lr_path=np.linspace(3e-2, 1e-4, 30),
        latent_scale=np.linspace(0.5, 1.5, 20),
        training_summary={"steps": 12, "held_out_mse": 0.25},
    )
    # Perturb the weights so the test cannot pass on a freshly initialised model.
    return eqx.tree_at(
        lambda m: m.vector_field,
        m,
        jax.tree.map(lambda x: x * 1.01 + 0.001, m.vector_field),
    )


@pytest.fixture
def saved(tmp_path, model):
    path = tmp_path / "model.lode"
    save_model(path, model)
    return path


def test_round_trip_equal_leaves_and_predictions(saved, model):
    loaded = load_model(saved)
    assert bool(eqx.tree_equal(loaded, model))
    assert loaded.training_summary == {"steps": 12, "held_out_mse": 0.25}
    assert (loaded.T, loaded.mu, loaded.solver) == (30, 3, "euler")
    window = jax.random.normal(jax.random.key(0), (3, 3))
    predict = jax.jit(lambda m, w: m.predict(w, 40))
    np.testing.assert_array_equal(predict(model, window), predict(loaded, window))


def _with_static(model, **fields):
    """A copy of ``model`` with other static fields (``eqx.tree_at`` only
    replaces array leaves)."""
    out = copy.copy(model)
    for name, value in fields.items():
        object.__setattr__(out, name, value)
    return out


def test_model_digest_names_the_content_not_the_summary(saved, model):
    digest = model_digest(model)
    assert len(digest) == 64 and int(digest, 16) >= 0
    # A loaded copy is the same model; another training summary too.
    assert model_digest(load_model(saved)) == digest
    retrained = _with_static(model, _training='{"steps": 9}')
    assert retrained.training_summary != model.training_summary
    assert model_digest(retrained) == digest
    # One weight, one data array, one hyperparameter: each is another model.
    nudged = jax.tree.map(lambda x: x.at[(0,) * x.ndim].add(1e-6), model.vector_field)
    assert model_digest(eqx.tree_at(lambda m: m.vector_field, model, nudged)) != digest
    path = model.best_lr_path.at[-1].multiply(0.5)
    assert model_digest(eqx.tree_at(lambda m: m.best_lr_path, model, path)) != digest
    assert model_digest(_with_static(model, mu=4)) != digest
    with pytest.raises(TypeError, match="LatentODE"):
        model_digest({"not": "a model"})


def test_header_is_readable_and_complete(saved, model):
    header = read_header(saved)
    assert header["format_version"] == FORMAT_VERSION == 2
    assert header["features"] == ["loss", "metric", "lr"]
    assert header["T"] == 30 and header["mu"] == 3
    assert header["hyperparameters"] == {
        "latent_size": 20,
        "hidden_size": 20,
        "depth": 2,
        "solver": "euler",
        "ticks_per_step": 1,
    }
    np.testing.assert_allclose(header["normalisation"]["std"], [1.2, 0.2, 0.9])
    np.testing.assert_allclose(header["lr_range"], [1e-4, 3e-2], rtol=1e-6)
    assert len(header["best_lr_path"]) == 30
    assert header["library_version"]
    assert header["training"]["steps"] == 12


def test_write_is_atomic_no_temp_files_left(saved):
    assert sorted(p.name for p in saved.parent.iterdir()) == ["model.lode"]


@pytest.mark.parametrize("keep", [5, len(MAGIC) + 20, 200, -1])
def test_truncated_file_refused(saved, keep):
    """Cut anywhere, even inside the magic bytes, the file is called truncated."""
    data = saved.read_bytes()
    saved.write_bytes(data[: keep if keep > 0 else len(data) - 1])
    with pytest.raises(ValueError, match=r"is truncated"):
        load_model(saved)


def test_a_flipped_header_length_is_corrupt_not_truncated(saved):
    data = bytearray(saved.read_bytes())
    data[len(MAGIC) + 7] ^= 0x01  # the length field's high byte: 2**56 bytes
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"is corrupt: the header should be"):
        load_model(saved)


@pytest.mark.parametrize("where", ["header", "payload"])
def test_bit_flip_refused(saved, where):
    data = bytearray(saved.read_bytes())
    (n,) = struct.unpack("<Q", data[len(MAGIC) : len(MAGIC) + 8])
    start = len(MAGIC) + 8 + 32
    pos = (
        start + n // 2
        if where == "header"
        else start + n + (len(data) - start - n) // 2
    )
    data[pos] ^= 0x10
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"corrupt.*{where}|{where}.*corrupt"):
        load_model(saved)


def _rewrite_header(path, change):
    header, payload = unpack(path.read_bytes())
    for k in ("payload_bytes", "payload_sha256"):
        header.pop(k)
    change(header)
    path.write_bytes(pack(header, payload))


def test_wrong_version_refused(saved):
    _rewrite_header(saved, lambda h: h.update(format_version=3))
    with pytest.raises(ValueError, match=r"format version 3.*reads versions \[1, 2\]"):
        load_model(saved)
    with pytest.raises(ValueError, match=r"newer optax-lode: upgrade optax-lode"):
        load_model(saved)


def test_a_boolean_version_is_refused(saved):
    # True == 1 would have read it as version 1 ("vTrue" in inspect).
    _rewrite_header(saved, lambda h: h.update(format_version=True))
    with pytest.raises(ValueError, match=r"format version True"):
        load_model(saved)


def test_version_1_file_loads_with_one_step_per_tick(tmp_path):
    # Version 1 had no ticks_per_step: its models stepped once per tick, even
    # for long runs where today's default is coarser.
    model = LatentODE(T=900, key=jax.random.key(1))
    assert model.ticks_per_step == 6
    path = tmp_path / "v1.lode"
    save_model(path, model)

    def as_v1(h):
        h.update(format_version=1)
        del h["hyperparameters"]["ticks_per_step"]

    _rewrite_header(path, as_v1)
    loaded = load_model(path)
    assert loaded.ticks_per_step == 1
    assert bool(eqx.tree_equal(loaded, model.with_solver("euler", ticks_per_step=1)))


@pytest.mark.parametrize("bad", [0, -3, "four"])
def test_invalid_ticks_per_step_in_header_refused(saved, bad):
    _rewrite_header(saved, lambda h: h["hyperparameters"].update(ticks_per_step=bad))
    with pytest.raises(ValueError, match=r"model.lode.*invalid header"):
        load_model(saved)


@pytest.mark.parametrize(
    ("field", "bad"), [("mu", 2.7), ("T", "10"), ("latent_size", True)]
)
def test_non_integer_sizes_in_header_refused(saved, field, bad):
    """A hand-edited 2.7 or "10" is refused by name, not truncated or parsed."""

    def edit(h):
        (h if field in h else h["hyperparameters"])[field] = bad

    _rewrite_header(saved, edit)
    with pytest.raises(ValueError, match=f"{field} must be an integer, got {bad!r}"):
        load_model(saved)


def test_the_runs_clock_round_trips_and_a_bad_one_is_refused(tmp_path, model, capsys):
    """The fitted runs' steps_per_tick (training summary) survives the file,
    inspect shows it, and a hand-edited one is refused by name."""
    from optax_lode.cli import main

    path = tmp_path / "clock.lode"
    timed = LatentODE(
        T=30, key=jax.random.key(7), mu=3, training_summary={"steps_per_tick": 31}
    )
    save_model(path, timed)
    assert load_model(path).steps_per_tick == 31
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "steps per tick" in out and "lode_schedule(..., steps_per_tick=31)" in out
    assert "training.steps_per_tick" not in out  # shown once, by name
    save_model(path, model)  # a model without one (files before it, or arrays)
    assert load_model(path).steps_per_tick is None
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "(not recorded: lode_schedule cannot check the clock; record it" in out
    # Recorded afterwards, without a refit: the same weights, the new clock.
    clocked = load_model(path).with_steps_per_tick(np.int64(12))
    assert clocked.steps_per_tick == 12 and type(clocked.steps_per_tick) is int
    assert model_digest(clocked) == model_digest(model)
    assert clocked.training_summary["steps"] == model.training_summary["steps"]
    assert clocked.with_steps_per_tick(None).steps_per_tick is None
    save_model(path, clocked)
    assert load_model(path).steps_per_tick == 12
    for bad in (0, 2.5, "12"):
        with pytest.raises(ValueError, match="steps_per_tick"):
            model.with_steps_per_tick(bad)
    for bad in (0, "31", 2.5):
        _rewrite_header(path, lambda h, b=bad: h["training"].update(steps_per_tick=b))
        with pytest.raises(ValueError, match=r"clock.lode.*invalid header.*steps_per"):
            load_model(path)


def test_inspect_shows_a_header_without_library_version(saved, capsys):
    from optax_lode.cli import main

    _rewrite_header(saved, lambda h: h.pop("library_version"))
    assert main(["inspect", str(saved)]) == 0
    assert "(not recorded)" in capsys.readouterr().out


def test_saving_into_a_missing_directory_names_it(tmp_path, model):
    with pytest.raises(FileNotFoundError, match=f"no directory '{tmp_path}/nope'"):
        save_model(tmp_path / "nope" / "m.lode", model)


def test_coarse_step_round_trips(tmp_path):
    model = LatentODE(T=40, key=jax.random.key(1), ticks_per_step=4)
    path = tmp_path / "coarse.lode"
    save_model(path, model)
    assert read_header(path)["hyperparameters"]["ticks_per_step"] == 4
    loaded = load_model(path)
    assert loaded.ticks_per_step == 4
    z = jax.random.normal(jax.random.key(2), (model.latent_size,))
    np.testing.assert_array_equal(loaded.decode(z, 50), model.decode(z, 50))


def test_wrong_features_refused(saved):
    _rewrite_header(saved, lambda h: h.update(features=["loss", "acc", "lr"]))
    with pytest.raises(ValueError, match="features"):
        load_model(saved)


def test_header_not_matching_arrays_refused(saved):
    _rewrite_header(saved, lambda h: h["hyperparameters"].update(latent_size=8))
    with pytest.raises(ValueError, match="shapes and dtypes do not match"):
        load_model(saved)
    _rewrite_header(saved, lambda h: h["hyperparameters"].update(latent_size=20))
    load_model(saved)  # restored: loads again
    # A float64 array (a model built under x64 by an older version) is named.
    _rewrite_header(saved, lambda h: h["leaves"][0].update(dtype="float64"))
    with pytest.raises(ValueError, match=r"the file has .*float64.*\(1 of"):
        load_model(saved)
    _rewrite_header(saved, lambda h: h["leaves"][0].update(dtype="float32"))
    load_model(saved)  # restored: loads again
    _rewrite_header(saved, lambda h: h.update(lr_range=[1e-5, 1.0]))
    with pytest.raises(ValueError, match="lr_range"):
        load_model(saved)
    _rewrite_header(saved, lambda h: h.update(lr_range=[-1e-4, 3e-2]))
    with pytest.raises(ValueError, match="invalid header: lr_range must be finite"):
        load_model(saved)


def _replace_first_record(path, record: bytes) -> None:
    """Replaces the file's first array record, checksums recomputed (a file
    another tool or version wrote, or a hand edit)."""
    header, payload = unpack(path.read_bytes())
    buf = io.BytesIO(payload)
    np.load(buf)
    header = {k: v for k, v in header.items() if not k.startswith("payload_")}
    path.write_bytes(pack(header, record + payload[buf.tell() :]))


def test_array_records_that_do_not_match_are_value_errors(saved, model, capsys):
    """Equinox's TreePathError (a RuntimeError) escaped, the clear message
    only in its chain; the documented error is a ValueError."""
    from optax_lode.cli import main

    first = np.asarray(jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))[0])
    as_float64 = io.BytesIO()
    np.save(as_float64, first.astype(np.float64))
    pickled = io.BytesIO()  # an object record: pickle must never run
    np.save(pickled, np.array([object()], dtype=object), allow_pickle=True)
    for record, says in (
        (as_float64, f"does not match its header: an array has shape {first.shape} "),
        (pickled, "is corrupt: unreadable array (Object arrays cannot be loaded"),
    ):
        _replace_first_record(saved, record.getvalue())
        with pytest.raises(ValueError) as info:
            load_model(saved)
        assert says in str(info.value)
        assert main(["inspect", str(saved)]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1  # one line, no traceback


def test_with_steps_per_tick_names_its_argument(model):
    for bad in (0, -3, 2.5, True, "4"):
        with pytest.raises(
            ValueError,
            match=r"^steps_per_tick must be a whole number >= 1, or None when "
            r"unknown; got ",
        ):
            model.with_steps_per_tick(bad)


@pytest.mark.parametrize(
    "content",
    [b"", b"PK\x03\x04 a zip file", json.dumps({"T": 30}).encode(), b"\x80\x04\x95"],
    ids=["empty", "zip", "json", "pickle"],
)
def test_non_model_files_refused(tmp_path, content):
    path = tmp_path / "thing.lode"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not an optax-lode file"):
        load_model(path)


def test_other_kind_of_container_refused(tmp_path):
    path = tmp_path / "ckpt.lode"
    path.write_bytes(pack({"kind": "optax-lode.fit-checkpoint"}, b""))
    with pytest.raises(ValueError, match="not a model"):
        load_model(path)


def test_unreadable_paths_are_value_errors(saved, tmp_path):
    # A path through a file and a name past the file system's limit: the
    # documented ValueError (the CLI's one-line message), not a raw OSError.
    with pytest.raises(ValueError, match=r"cannot read a model file.*Not a directory"):
        load_model(saved / "inner.lode")
    with pytest.raises(ValueError, match=r"cannot read a model file.*too long"):
        load_model(tmp_path / ("m" * 300 + ".lode"))


def test_missing_file_and_wrong_object():
    with pytest.raises(FileNotFoundError, match="no model file"):
        load_model("/nonexistent/model.lode")
    with pytest.raises(TypeError, match="LatentODE"):
        save_model("/tmp/x.lode", {"not": "a model"})


def test_loaded_model_runs_jitted_without_retracing(saved, model):
    loaded = load_model(saved)
    traces = []

    @jax.jit
    def step(m, z):
        traces.append(1)
        return m.decode(z, 10)

    step(model, jnp.zeros(20))
    step(loaded, jnp.ones(20))  # same structure, same static fields: no retrace
    assert len(traces) == 1
