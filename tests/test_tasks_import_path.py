"""A user's own task by its import path: ``get_task("module:attribute")`` and
``optax-lode sweep --task module:attribute``."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from optax_lode.cli import main
from optax_lode.runs import Trajectories
from optax_lode.sweep import run_sweep
from optax_lode.tasks import Task, get_task

# A plain-JAX task (docs/tasks.md's "Your own task", smaller), its factory, a
# task object, and the ways of getting an import path wrong.
MODULE = textwrap.dedent(
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(300, 8)), jnp.float32)
    y = jnp.asarray(np.argmax(np.asarray(x) @ rng.normal(size=(8, 3)), axis=1))


    class Softmax:
        steps_per_epoch = 5
        default_epochs = 4
        weight_decay = 0.0
        metric_name = "accuracy"

        def __init__(self, batch=20, name="my-softmax"):
            self.batch, self.name = batch, name

        def init(self, key):
            return {"w": 0.01 * jax.random.normal(key, (8, 3))}, ()

        def train_loss(self, params, state, step, data_key):
            k = jax.random.fold_in(data_key, step)
            idx = jax.random.randint(k, (self.batch,), 0, 200)
            logits = x[idx] @ params["w"]
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y[idx])
            return loss.mean(), state

        def metric(self, params, state, split):
            part = slice(200, 250) if split == "val" else slice(250, 300)
            return jnp.mean(jnp.argmax(x[part] @ params["w"], axis=1) == y[part])


    def make_task(batch=20):
        return Softmax(batch=batch, name=f"softmax-b{batch}")


    TASK = Softmax()
    tasks = type("Namespace", (), {"make": staticmethod(make_task)})
    NOT_A_TASK = 3


    def not_a_factory():
        return "a string"


    class NoMetric:
        name, steps_per_epoch, default_epochs, weight_decay = "no-metric", 5, 4, 0.0

        def init(self, key):
            return {"w": jnp.zeros(3)}, ()

        def train_loss(self, params, state, step, data_key):
            return (params["w"] ** 2).sum(), state


    class VectorMetric(Softmax):
        def metric(self, params, state, split):
            return params["w"].sum(axis=0)  # one per class: no scalar


    class ValLoss(Softmax):
        metric_name = "val_loss"


    class Spaced(Softmax):
        metric_name = "val accuracy"  # no identifier: trackers refuse it
    """
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``my_tasks`` in a directory on sys.path, and one that fails to import."""
    (tmp_path / "my_tasks.py").write_text(MODULE)
    (tmp_path / "broken_tasks.py").write_text("import no_such_dependency_xyz\n")
    # A missing module whose name is a prefix of the user's: still the user's
    # module's own import, not the user's module missing.
    (tmp_path / "my_tasks_extra.py").write_text("import my_tasks_ex\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_tasks"
    for name in ("my_tasks", "broken_tasks", "my_tasks_extra"):
        sys.modules.pop(name, None)


def test_an_import_path_builds_the_users_task(user_module):
    built = get_task("my_tasks:make_task", batch=10)
    assert isinstance(built, Task)
    assert (built.name, built.batch) == ("softmax-b10", 10)
    # A class is a factory too; a task object is taken as it is; an attribute
    # path reaches into the module.
    assert get_task("my_tasks:Softmax", batch=7).batch == 7
    import my_tasks

    assert get_task("my_tasks:TASK") is my_tasks.TASK
    assert get_task("my_tasks:tasks.make").name == "softmax-b20"
    # Registered names are still what they were.
    assert get_task("nqm", dim=4).name == "nqm"


@pytest.mark.parametrize(
    "path, kwargs, error, message",
    [
        ("nowhere_xyz:make", {}, ImportError, "no module 'nowhere_xyz' on sys.path"),
        ("my_tasks:missing", {}, ImportError, "has no attribute 'missing'"),
        ("my_tasks:TASK", {"batch": 3}, TypeError, "takes no keyword arguments"),
        (
            "my_tasks:NOT_A_TASK",
            {},
            TypeError,
            "neither a task nor a factory .* of type int",
        ),
        (
            "my_tasks:not_a_factory",
            {},
            TypeError,
            "returned str, not a Task: .* it has no name",
        ),
        ("my_tasks:NoMetric", {}, TypeError, "NoMetric, not a Task: .* has no metric"),
        (
            "my_tasks:make_task",
            {"size": 3},
            TypeError,
            "'my_tasks:make_task' takes no keyword argument 'size'; it takes batch$",
        ),
        ("my_tasks:", {}, KeyError, "an import path reads 'module:attribute'"),
        ("my tasks:make", {}, KeyError, "an import path reads"),
        ("not-registered", {}, KeyError, "or your own as 'module:factory'"),
    ],
)
def test_a_bad_import_path_says_what_is_wrong(
    user_module, path, kwargs, error, message
):
    with pytest.raises(error, match=message):
        get_task(path, **kwargs)


def test_a_module_missing_its_own_dependency_is_not_called_absent(user_module):
    # The user's module exists: the missing name is its import's, said as is.
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        get_task("broken_tasks:make")
    with pytest.raises(ModuleNotFoundError, match="No module named 'my_tasks_ex'"):
        get_task("my_tasks_extra:make")


def test_cli_sweeps_a_task_from_the_current_directory(
    user_module, tmp_path, monkeypatch, capsys
):
    """A console script's sys.path does not hold the current directory: the
    command puts it first, as ``python -m`` does, and sweeps the task as
    ``run_sweep`` does."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "cwd_tasks.py").write_text(MODULE)
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    monkeypatch.delitem(sys.modules, "cwd_tasks", raising=False)
    out = tmp_path / "runs.parquet"
    argv = [
        "sweep",
        *("--task", "cwd_tasks:make_task", "--task-arg", "batch=10"),
        *("--out", str(out), "--shapes", "constant,cosine", "--lrs", "0.1"),
        *("--seeds", "1", "--epochs", "3", "--no-progress"),
    ]
    assert main(argv) == 0
    assert "wrote 2 runs x 3 ticks of softmax-b10" in capsys.readouterr().out
    runs = Trajectories.from_parquet(out)
    assert runs.steps_per_tick == 5
    import cwd_tasks

    same = run_sweep(
        cwd_tasks.make_task(batch=10),
        shapes=["constant", "cosine"],
        lrs=[0.1],
        seeds=1,
        epochs=3,
    )
    np.testing.assert_array_equal(runs.loss, same.loss)
    np.testing.assert_array_equal(runs.metric, same.metric)
    sys.modules.pop("cwd_tasks", None)


def test_cli_says_a_missing_module_in_one_line(tmp_path, capsys):
    out = tmp_path / "runs.parquet"
    assert main(["sweep", "--task", "nowhere_xyz:make", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optax-lode sweep: task 'nowhere_xyz:make': no module")
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--task", "my_tasks:VectorMetric"],
            "--task my_tasks:VectorMetric: task 'my-softmax': metric(params, state, "
            "'val') returned float32[3]",
        ),
        (["--task", "my_tasks:NoMetric"], "--task my_tasks:NoMetric: factory"),
        (
            ["--task", "nqm", "--epochs", "1"],
            "runs of 1 tick (--epochs 1 x --ticks-per-epoch 1) are too short",
        ),
    ],
)
def test_cli_refuses_a_task_or_clock_it_cannot_sweep_in_one_line(
    user_module, tmp_path, capsys, argv, message
):
    out = tmp_path / "runs.parquet"
    assert main(["sweep", *argv, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optax-lode sweep: ") and message in err
    assert "--task-arg" not in err  # none was given
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "runs.parquet.chunks").exists()


def test_cli_refuses_an_out_that_names_a_directory(tmp_path, capsys):
    out = f"{tmp_path / 'runs.parquet'}/"
    assert main(["sweep", "--task", "nqm", "--out", out]) == 2
    assert "names a directory; give a file" in capsys.readouterr().err
    assert not (tmp_path / "runs.parquet").exists()


def test_a_metric_named_like_a_loss_is_warned_about(user_module):
    from optax_lode.tasks import check_task

    with pytest.warns(UserWarning, match="metric_name 'val_loss' reads as a lower"):
        check_task(get_task("my_tasks:ValLoss"))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_task(get_task("my_tasks:make_task"))  # accuracy
        check_task(get_task("nqm"))  # neg_log_loss
        check_task(get_task("my_tasks:Spaced"))  # sweeps; only trackers need it


def test_run_sweep_warns_of_runs_too_short_to_fit():
    with pytest.warns(UserWarning, match="runs of 2 ticks"):
        runs = run_sweep(get_task("nqm", dim=4), shapes=["constant"], lrs=[0.1],
                         seeds=1, epochs=2)  # fmt: skip
    assert runs.num_ticks == 2


def test_demo_says_it_runs_registered_tasks_only(capsys):
    assert main(["demo", "--task", "my_tasks:make_task", "--fast"]) == 2
    err = capsys.readouterr().err
    assert "the demo runs the registered tasks only" in err
    assert "optax-lode sweep --task my_tasks:make_task" in err


@pytest.mark.parametrize(
    ("name", "warned"),
    [
        *((n, True) for n in ("val_loss", "nll", "val_nll", "cross_entropy")),
        *((n, True) for n in ("xent", "ppl", "top1_err", "bits_per_byte")),
        *((n, True) for n in ("valloss", "val-loss", "valLoss", "error_rate")),
        *((n, False) for n in ("accuracy", "neg_nll", "metric", "top1_acc")),
        *((n, False) for n in ("f1", "auc", "interval", "entropy_bonus")),
    ],
)
def test_loss_like_metric_names(name, warned):
    """nll, cross_entropy, ppl, top1_err, valloss... were not warned about,
    and tune then picked the rate of the highest loss."""
    import warnings

    from optax_lode.tasks._protocol import _warn_if_named_lower_is_better

    task = type("Named", (), {"metric_name": name})()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _warn_if_named_lower_is_better(task, "task")
    assert bool(said) == warned
