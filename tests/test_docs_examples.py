"""Every ```python block of README.md and docs/*.md runs as written.

The blocks are read from the markdown itself (CommonMark fenced code blocks),
never copied here, so an edited example is tested as edited. Each block is run
in a fresh temporary working directory, in a namespace holding only the names
it expects from its surroundings (the user's ``params``, ``grads``,
``train_step``, ... and, for a block that continues an earlier one of the same
page, that block's imports), set up by the fixture named in :data:`BLOCKS`:
small real models, runs and stores, jitted code as users run it, no mocks.

Every block found must match exactly one entry of :data:`BLOCKS` (by file and a
substring of its first lines), and every entry exactly one block: a new or
edited example fails loudly until it is listed. An entry either runs the block
(``Run``, possibly marked slow) or says why the default and slow suites cannot
(``NotRun``, with its reason).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _lode_helpers import mlp_problem, small_model

import optax_lode
from optax_lode.runs import synthetic_sweep

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A block is identified by a substring of its first HEAD_LINES non-blank lines.
HEAD_LINES = 3


# -- reading the blocks -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DocBlock:
    """One ```python block: its file (relative to the repository), the line of
    its first code line (1-based) and its code, de-indented like the fence."""

    file: str
    line: int
    code: str

    @property
    def head(self) -> str:
        lines = [line for line in self.code.splitlines() if line.strip()]
        return "\n".join(lines[:HEAD_LINES])

    @property
    def name(self) -> str:
        return f"{self.file}:{self.line}"


_OPEN = re.compile(r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
# Pygments' names of Python source (not ``pycon``: console sessions).
PYTHON = ("python", "py", "python3", "py3")


def parse_python_blocks(text: str, file: str) -> list[DocBlock]:
    """The fenced code blocks of ``text`` whose language is Python.

    As CommonMark and pymdownx.superfences read them: a fence is 3+ backticks
    or tildes, at any indentation (superfences nests blocks in admonitions and
    list items); it is closed by a fence of the same character at least as
    long with nothing after it, or by the end of the document; the opening
    fence's indentation is removed from the content lines. Fences inside
    another fenced block (of any language) are content. The language is the
    info string's first word (``python title="x"``, ``{.python}`` too).
    """
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if m is None or (m["fence"][0] == "`" and "`" in m["info"]):
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        words = m["info"].replace("{", " ").split()
        lang = words[0].lstrip(".").lower() if words else ""
        close = re.compile(rf"^[ ]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        if lang in PYTHON:
            body = [_dedent(line, indent) for line in lines[i + 1 : j]]
            blocks.append(DocBlock(file, i + 2, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def _dedent(line: str, n: int) -> str:
    k = len(line) - len(line.lstrip(" "))
    return line[min(k, n) :]


def doc_blocks() -> list[DocBlock]:
    return [
        block
        for path in DOC_FILES
        for block in parse_python_blocks(
            path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix()
        )
    ]


def shown_output(code: str) -> list[str]:
    """The block's trailing ``# ...`` comment lines: the output it shows."""
    out = []
    for line in reversed(code.rstrip().splitlines()):
        if not line.startswith("# "):
            break
        out.append(line[2:])
    return out[::-1]


# -- what to do with each block -----------------------------------------------


@dataclasses.dataclass(frozen=True)
class Run:
    """Run the block in the namespace ``fixture`` returns; then ``check(ns, out)``
    with the namespace after the block and what it printed."""

    fixture: str
    check: Callable[[dict[str, Any], str], None] | None = None
    slow: bool = False


@dataclasses.dataclass(frozen=True)
class NotRun:
    reason: str


def _check_step(ns, out):
    assert ns["k"] == 50  # the clock the model's runs recorded
    lr = optax.tree.get(ns["opt_state"], "learning_rate")
    assert np.isfinite(lr) and lr > 0
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(ns["updates"]))


def _check_baseline(ns, out):
    assert np.isfinite(ns["lr_now"]) and ns["lr_now"] > 0
    assert np.isfinite(ns["acc"])


def _check_sharpness(ns, out):
    res = ns["res"]
    assert bool(res.converged) and float(res.eigenvalue) > 0


def _check_comparison(ns, out):
    assert ns["comp"].verdict in ("wins", "ties", "loses")
    assert "| LODE |" in out


def _check_ranks(ns, out):
    # LODE is the sharper on every seed pair against "flat", the flatter
    # against "sharp"; Holm keeps both significant among two rivals.
    assert out.splitlines() == [
        "flat: LODE flatter in 0% of seed pairs, p = 0.016",
        "sharp: LODE flatter in 100% of seed pairs, p = 0.016",
    ]


def _check_fit(ns, out):
    assert ns["model"].T == 20 and ns["report"]["num_runs"] == ns["test"].num_runs
    assert np.isfinite(ns["report"]["metric"])


def _check_nqm(ns, out):
    # The block shows its output in comments: it must be what it prints.
    printed = out.strip().splitlines()
    shown = shown_output(ns["__doc_block__"].code)
    assert len(printed) == len(shown), (printed, shown)
    for p, s in zip(printed, shown, strict=True):
        assert s.startswith(p.rstrip()), f"the docs show {s!r}; it prints {p!r}"


def _check_read_runs(ns, out):
    assert (ns["runs"].num_runs, ns["runs"].num_ticks) == (16, 10)


def _check_from_arrays(ns, out):
    runs = ns["runs"]
    assert runs.num_runs == 16 and not runs.mask[0, 7:].any()
    assert runs.info["schedule"].iloc[0] == "constant"


def _check_split(ns, out):
    assert ns["train"].num_runs + ns["held_out"].num_runs == 16
    assert ns["best"].num_runs == 1 and ns["subset"].num_runs == 8


def _check_synthetic(ns, out):
    assert ns["runs"].num_runs == 4 * 4 * 2 and ns["loss"].shape == (100,)


def _check_own_task(ns, out):
    runs = ns["runs"]
    assert (runs.num_runs, runs.num_ticks, runs.steps_per_tick) == (8, 20, 10)
    assert out.split() == ["8", "20", "10"]
    # The task learns: the best run ends well above chance (1/3).
    assert np.nanmax(runs.metric[:, -1]) > 0.7


def _check_schedule_loop(ns, out):
    state = ns["opt_state"][1]
    assert int(state.decisions) > 0
    assert np.isfinite(ns["lr"]) and ns["lr"] > 0


def _check_explain(ns, out):
    ex = ns["ex"]
    assert ex.trajectories.shape[0] == ns["cfg"].n
    ns["plt"].close("all")


def _check_replay(ns, out):
    assert int(ns["ex"].decision.accepted) > 0  # a decision, not the held rate
    np.testing.assert_array_equal(ns["ex"].decision.segment, ns["after"].segment)


def _check_sweep(ns, out):
    assert ns["traj"].num_runs == 100


def _check_train_run(ns, out):
    result = ns["result"]
    assert result.lr.shape == (ns["T"],)
    assert np.all(np.isfinite(result.lr)) and np.all(result.lr > 0)


def _check_task(ns, out):
    assert 0.0 <= float(ns["acc"]) <= 1.0 and np.isfinite(ns["loss"])
    assert "mnist1d-mlp" in out


def _check_nnx(ns, out):
    assert ns["losses"].shape == (ns["num_runs"],)
    # The block's `apply` under jit and vmap updates each run's batch statistics.
    apply = functools.partial(ns["apply"], train=True, key=None)
    x = ns["batch"][0]
    logits, state = jax.jit(jax.vmap(apply, in_axes=(0, 0, None)))(
        ns["params"], ns["state"], x
    )
    assert logits.shape == (ns["num_runs"], x.shape[0], 3)
    old, new = ns["state"]["norm"]["mean"], state["norm"]["mean"]
    assert old.shape == new.shape and not np.allclose(old, new)


def _check_tracker_import(ns, out):
    runs = ns["runs"]  # TensorBoard's, read last
    assert (runs.num_runs, runs.num_ticks) == (2, 6)


def _check_keras_import(ns, out):
    runs = ns["runs"]
    assert runs.run_ids == ("run-a", "run-b") and runs.num_ticks == 5
    assert runs.steps_per_tick == 390
    np.testing.assert_allclose(runs.metric[1], 0.5 + 0.1 * np.arange(5), rtol=1e-6)


def _check_diagnostics(ns, out):
    import mlflow

    run = mlflow.last_active_run()
    assert "lode/learning_rate" in run.data.metrics
    assert list(Path("logs/lode-run").glob("events.out.tfevents.*"))


def _check_vmapped_runs(ns, out):
    state = optax.tree.get(ns["opt_state"], "LodeState")
    # Every run decided at ticks mu, 2 mu, ... (mu = 2: 11 of them in T = 24),
    # each its own way.
    assert np.all(np.asarray(state.decisions) == 11)
    lr = np.asarray(state.learning_rate)
    assert lr.shape == (3,) and np.all(lr > 0) and len(set(lr.tolist())) == 3


def _check_train_state(ns, out):
    """The block's TrainState runs the jitted steps of the functional loop."""
    import chex

    params, loss_fn, (x, y) = mlp_problem()
    tx = optax.chain(
        optax.adamw(1.0),
        optax_lode.lode_schedule(small_model(T=24), total_steps=24, mu=3),
    )
    state = ns["LodeTrainState"].create(apply_fn=None, params=params, tx=tx)

    @jax.jit
    def step(state):
        loss, grads = jax.value_and_grad(loss_fn)(state.params, x, y)
        return state.apply_gradients(grads=grads, value=loss, val_metric=1.0 - loss)

    @jax.jit
    def reference(p, s):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        u, s = tx.update(grads, s, p, value=loss, val_metric=1.0 - loss)
        return optax.apply_updates(p, u), s

    p, s = params, tx.init(params)
    for _ in range(8):
        state = step(state)
        p, s = reference(p, s)
    assert int(state.step) == 8 and int(state.opt_state[1].decisions) == 2
    chex.assert_trees_all_equal(state.params, p)


BLOCKS: dict[tuple[str, str], Run | NotRun] = {
    ("README.md", 'load_model("sweep.lode")'): Run("step_names", _check_step),
    ("docs/index.md", 'load_model("sweep.lode")'): Run("step_names", _check_step),
    ("docs/baselines.md", "make_baseline, eval_params"): Run(
        "baseline_names", _check_baseline
    ),
    ("docs/baselines.md", "import tune_all"): NotRun(
        "tunes all 11 baselines on MNIST-1D (a learning-rate grid each, then 10 "
        "seeds at the tuned rate, 60 epochs a run): minutes of training; "
        "tune_all itself runs on the NQM in tests/test_baselines_tuning.py"
    ),
    ("docs/demo.md", "import default_config, run_demo"): NotRun(
        "the whole default demo with 10 seeds (a 100-run MNIST-1D sweep, a "
        "3000-step fit, LODE and 11 tuned baselines): minutes of training; "
        "run_demo itself runs at reduced size in tests/test_demo_pipeline.py"
    ),
    ("docs/evaluation.md", "optax_lode.evaluation as ev"): Run(
        "sharpness_names", _check_sharpness
    ),
    ("docs/evaluation.md", "import compare_methods"): Run(
        "comparison_names", _check_comparison
    ),
    ("docs/evaluation.md", "import holm, rank_test"): Run("rank_names", _check_ranks),
    ("docs/model.md", 'from_parquet("sweep.parquet")'): Run(
        "parquet_sweep",
        _check_fit,
        slow=True,  # a real fit: ~10 s
    ),
    ("docs/nqm.md", "from optax_lode.tasks.nqm import ("): Run(
        "no_names",
        _check_nqm,
        slow=True,  # three optimisations: ~7 s
    ),
    ("docs/runs.md", 'from_csv("sweep.csv")'): Run("table_names", _check_read_runs),
    ("docs/runs.md", "Trajectories.from_arrays("): Run(
        "array_names", _check_from_arrays
    ),
    ("docs/runs.md", 'runs.to_parquet("sweep.parquet")'): Run(
        "runs_names", _check_split
    ),
    ("docs/runs.md", "import synthetic_sweep, simulate_curve"): Run(
        "no_names", _check_synthetic
    ),
    ("docs/schedule.md", "import functools"): Run(
        "schedule_loop_names",
        _check_schedule_loop,
        slow=True,  # 30,000 steps: ~6 s
    ),
    ("docs/schedule.md", "import jax, matplotlib.pyplot as plt"): Run(
        "explain_names", _check_explain
    ),
    ("docs/schedule.md", "import jax, jax.numpy as jnp, optax_lode"): Run(
        "replay_names", _check_replay
    ),
    ("docs/schedule.md", "import jax, optax, optax_lode"): Run(
        "vmap_names", _check_vmapped_runs
    ),
    ("docs/schedule.md", "from flax.training import train_state"): Run(
        "no_names", _check_train_state
    ),
    ("docs/sweep.md", "from optax_lode.sweep import run_sweep"): Run(
        "task_extras",
        _check_sweep,
        slow=True,  # the paper's 100-run sweep: ~40 s
    ),
    ("docs/sweep.md", "from optax_lode import lode_schedule"): Run(
        "train_run_names", _check_train_run
    ),
    ("docs/tasks.md", "import TASKS, get_task"): Run(
        "task_extras",
        _check_task,
        slow=True,  # builds MNIST-1D: ~6 s
    ),
    ("docs/tasks.md", "from flax import nnx"): Run("nnx_names", _check_nnx),
    ("docs/tasks.md", "import jax.numpy as jnp"): Run("no_names", _check_own_task),
    ("docs/tracking.md", "Trajectories.from_mlflow("): Run(
        "tracker_stores", _check_tracker_import
    ),
    ("docs/tracking.md", "run_depth=1,"): Run("keras_logs", _check_keras_import),
    ("docs/tracking.md", "import mlflow"): Run("diagnostics_names", _check_diagnostics),
}


def spec_of(block: DocBlock) -> tuple[tuple[str, str], Run | NotRun] | None:
    found = [
        (key, spec)
        for key, spec in BLOCKS.items()
        if key[0] == block.file and key[1] in block.head
    ]
    return found[0] if len(found) == 1 else None


def _params():
    out = []
    for block in doc_blocks():
        match = spec_of(block)
        marks = []
        if match is not None and isinstance(match[1], NotRun):
            marks.append(pytest.mark.skip(reason=f"not run: {match[1].reason}"))
        elif match is not None and match[1].slow:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(block, id=block.name, marks=marks))
    return out


# -- the tests ----------------------------------------------------------------


def test_every_block_is_run_or_listed():
    blocks = doc_blocks()
    assert blocks, "no ```python block found: is the parser broken?"
    for block in blocks:
        keys = [key for key in BLOCKS if key[0] == block.file and key[1] in block.head]
        assert len(keys) == 1, (
            f"{block.name}: its first lines match {len(keys)} entries of BLOCKS "
            f"({keys}); list it exactly once, to run or with the reason it is "
            f"not run. Its first lines:\n{block.head}"
        )
    for key in BLOCKS:
        hits = [b.name for b in blocks if b.file == key[0] and key[1] in b.head]
        assert len(hits) == 1, (
            f"BLOCKS entry {key} matches {len(hits)} blocks ({hits}): the docs "
            "changed; update the entry."
        )


@pytest.mark.parametrize("block", _params())
def test_doc_block(block: DocBlock, request, capsys):
    match = spec_of(block)
    assert match is not None, f"{block.name} is not in BLOCKS (see the test above)"
    spec = match[1]
    ns = dict(request.getfixturevalue(spec.fixture))
    ns.update(__name__="__doc_block__", __doc_block__=block)
    # Padded so that tracebacks point at the block's lines in the markdown file.
    source = "\n" * (block.line - 1) + block.code
    code = compile(source, str(ROOT / block.file), "exec")
    capsys.readouterr()
    exec(code, ns)
    out = capsys.readouterr().out
    if spec.check is not None:
        spec.check(ns, out)


def test_parser_reads_fenced_blocks_as_mkdocs_does():
    text = "\n".join(
        [
            "````markdown",
            "```python",
            "not a block: inside another fence",
            "```",
            "````",
            "  ```python title='x'",
            "  a = 1",
            "   b = 2",
            "  ```",
            "~~~py",
            "c = 3",
            "~~~",
            "!!! note",
            "    ``` { .python }",
            "    d = 4",
            "    ```",
            "```bash",
            "echo",
            "```",
            "```pycon",
            ">>> 1",
            "```",
            "```python",
            "e = 5",
        ]
    )
    blocks = parse_python_blocks(text, "x.md")
    assert [(b.line, b.code) for b in blocks] == [
        (7, "a = 1\n b = 2\n"),
        (11, "c = 3\n"),
        (15, "d = 4\n"),
        (24, "e = 5\n"),
    ]
    assert shown_output("print(1)\n# 1\n# 2\n") == ["1", "2"]


# -- the names each block expects ---------------------------------------------


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained LatentODE of T = 24 ticks (a real one: random weights)."""
    return small_model(T=24)


@pytest.fixture
def no_names():
    return {}


@pytest.fixture
def task_extras():
    """Nothing to define; the built-in tasks need the `tasks` extra."""
    for module in ("flax", "sklearn", "mnist1d"):
        pytest.importorskip(module)
    return {}


@pytest.fixture
def step_names():
    """``sweep.lode`` (fitted to runs of 50 steps per tick) and one step's
    ``params``, ``grads``, ``loss``, ``acc``."""
    clocked = small_model(T=24, training_summary={"steps_per_tick": 50})
    optax_lode.save_model("sweep.lode", clocked)
    params, loss_fn, (x, y) = mlp_problem()
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    return dict(params=params, grads=grads, loss=loss, acc=jnp.float32(0.5))


@pytest.fixture
def baseline_names():
    params, loss_fn, (x, y) = mlp_problem()
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)

    def evaluate(p):
        return 1.0 / (1.0 + loss_fn(p, x, y))

    return dict(
        total_steps=100,
        params=params,
        grads=grads,
        loss=loss,
        acc=0.5,
        evaluate=evaluate,
    )


@pytest.fixture
def sharpness_names():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)

    def model_apply(params, x):
        return jnp.tanh(x @ params["w1"]) @ params["w2"]

    def cross_entropy(logits, y):
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    params = {
        "w1": 0.5 * jax.random.normal(k1, (8, 16)),
        "w2": 0.5 * jax.random.normal(k2, (16, 3)),
    }
    x = jax.random.normal(k3, (256, 8))
    y = jnp.argmax(x[:, :3], axis=1)
    return dict(
        params=params,
        model_apply=model_apply,
        cross_entropy=cross_entropy,
        x256=x,
        y256=y,
    )


@pytest.fixture
def rank_names():
    pytest.importorskip("scipy")
    return dict(
        lode_eigs=[5.0, 6.0, 7.0, 8.0, 40.0],
        baseline_eigs={
            "flat": [0.5, 0.6, 0.7, 0.8, 0.9],
            "sharp": [50.0, 60.0, 70.0, 80.0, 9000.0],
        },
    )


@pytest.fixture
def comparison_names():
    pytest.importorskip("scipy")
    return dict(
        lode_acc=[0.91, 0.92, 0.90, 0.93, 0.92],
        cos_acc=[0.90, 0.91, 0.89, 0.90, 0.91],
        oc_acc=[0.88, 0.90, 0.89, 0.90, 0.88],
    )


@pytest.fixture
def parquet_sweep():
    synthetic_sweep(ticks=20, seeds=(0,)).to_parquet("sweep.parquet")
    return {}


@pytest.fixture
def table_names():
    """``sweep.csv``, and ``df`` with other column names than the defaults."""
    import gzip
    import pathlib

    runs = synthetic_sweep(ticks=10, seeds=(0,))
    runs.to_csv("sweep.csv")
    pathlib.Path("sweep.csv.gz").write_bytes(
        gzip.compress(pathlib.Path("sweep.csv").read_bytes())
    )
    df = runs.to_dataframe().rename(
        columns={"run": "trial", "tick": "epoch", "metric": "val_acc"}
    )
    df = df.rename(columns={"lr": "learning_rate"})
    return dict(df=df)


@pytest.fixture
def array_names():
    """Ragged runs padded with NaN (run 0 ends after 7 ticks), as the text says."""
    runs = synthetic_sweep(ticks=10, seeds=(0,))
    loss, metric, lr = (a.copy() for a in (runs.loss, runs.metric, runs.lr))
    mask = runs.mask.copy()
    mask[0, 7:] = False
    for a in (loss, metric, lr):
        a[0, 7:] = np.nan
    return dict(
        optax_lode=optax_lode,  # imported by the page's first block
        loss=loss,
        metric=metric,
        lr=lr,
        mask=mask,
        ids=list(runs.run_ids),
        shapes=list(runs.info["schedule"]),
        seeds=list(runs.info["seed"]),
    )


@pytest.fixture
def runs_names():
    return dict(runs=synthetic_sweep(ticks=10, seeds=(0,)))


@pytest.fixture
def schedule_loop_names():
    """A model of T = 600 ticks (the block's run: 600 ticks of 50 steps), a
    regression MLP and its data stream."""
    optax_lode.save_model("sweep.lode", small_model(T=600))
    params, loss_fn, batch = mlp_problem()
    eval_loss = jax.jit(loss_fn)

    def evaluate(p):
        return 1.0 / (1.0 + eval_loss(p, *batch))

    return dict(
        params=params,
        loss_fn=lambda p, b: loss_fn(p, *b),
        batches=itertools.repeat(batch),
        evaluate=evaluate,
    )


@pytest.fixture
def vmap_names(tiny_model):
    """A model of T = 24 ticks, and 3 runs' parameters of a regression MLP."""
    params, loss_fn, batch = mlp_problem()
    keys = jax.random.split(jax.random.key(5), 3)
    stacked = jax.vmap(
        lambda k: jax.tree.map(
            lambda p: p + 0.3 * jax.random.normal(k, p.shape), params
        )
    )(keys)
    return dict(
        model=tiny_model,
        params=stacked,
        loss_fn=lambda p, b: loss_fn(p, *b),
        batch=batch,
        evaluate=lambda p: 1.0 / (1.0 + loss_fn(p, *batch)),
    )


@pytest.fixture
def explain_names(tiny_model):
    """A model, and the raw records of the ``mu`` ticks before tick 8 of a run."""
    pytest.importorskip("matplotlib")
    run = synthetic_sweep(ticks=tiny_model.T, seeds=(0,))
    t_star = 8
    window = run.features()[0, t_star - tiny_model.mu : t_star]
    return dict(model=tiny_model, window=window, t_star=t_star)


@pytest.fixture
def replay_names(tiny_model):
    """A jitted run's state before and after its second decision, the metric
    that update got (new: it completes the last record, and a replay without
    it differs), and the schedule's DecisionConfig."""
    tol = 1e3  # an untrained model: accept every member, so the segment is drawn
    tx = optax_lode.lode_schedule(
        tiny_model, total_steps=2 * tiny_model.T, steps_per_tick=2, tol=tol
    )
    p = {"w": jnp.ones(3)}
    step = jax.jit(lambda s, loss, acc: tx.update(p, s, p, value=loss, val_metric=acc))
    s = tx.init(p)
    for i in range(2 * tiny_model.T):
        # measured on a tick's first step, "nothing new" (NaN) on its second
        acc = jnp.float32(0.1 + i / 100) if i % 2 == 0 else jnp.float32(jnp.nan)
        if int(s.decisions) >= 1 and int(s.tick) % tiny_model.mu == 0:
            acc = jnp.float32(0.9)  # the next decision's update: a new metric
        before = s
        s = step(s, jnp.float32(1 / (i + 1)), acc)[1]
        if int(s.decisions) == 2:
            break
    assert int(s.decisions) == 2 and acc == jnp.float32(0.9)
    cfg = optax_lode.DecisionConfig.from_model(tiny_model, tol=tol)
    return dict(model=tiny_model, before=before, after=s, acc=acc, cfg=cfg)


@pytest.fixture
def train_run_names():
    """The NQM (50 steps an epoch) for 2 epochs of 5 ticks, and a model of T = 10."""
    epochs, ticks_per_epoch = 2, 5
    return dict(
        task=optax_lode.get_task("nqm"),
        epochs=epochs,
        ticks_per_epoch=ticks_per_epoch,
        model=small_model(T=epochs * ticks_per_epoch),
    )


@pytest.fixture
def nnx_names():
    nnx = pytest.importorskip("flax.nnx")

    class Net(nnx.Module):  # with batch statistics, so `state` is not empty
        def __init__(self, rngs):
            self.linear = nnx.Linear(4, 8, rngs=rngs)
            self.norm = nnx.BatchNorm(8, rngs=rngs)
            self.out = nnx.Linear(8, 3, rngs=rngs)

        def __call__(self, x, *, train=False, key=None):
            h = self.norm(self.linear(x), use_running_average=not train)
            return self.out(jax.nn.relu(h))

    def loss_fn(params, state, batch):  # the user's; the block defines `apply`
        x, y = batch
        w = params["out"]["kernel"]
        return optax.softmax_cross_entropy_with_integer_labels(
            x[:, :3] @ w[:3], y
        ).mean()

    x = jax.random.normal(jax.random.key(1), (16, 4))
    return dict(
        make_model=Net,
        key=jax.random.key(0),
        num_runs=3,
        loss_fn=loss_fn,
        batch=(x, jnp.zeros(16, jnp.int32)),
    )


MLFLOW_TICKS = 6
STEPS_PER_TICK = 50


@pytest.fixture(scope="module")
def tracker_template(tmp_path_factory):
    """An MLflow SQLite store with experiment ``resnet-sweep`` and TensorBoard
    logs under ``logs/sweep``: the same 2 runs, loss logged every 10 steps,
    validation accuracy at each tick's last step, the rate at its first.
    Built once (MLflow's migrations take seconds); copied for each test."""
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("tensorboard")
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
    from tensorboard.summary import Writer

    root = tmp_path_factory.mktemp("trackers")
    runs = synthetic_sweep(
        ticks=MLFLOW_TICKS,
        schedules=("constant", "cosine"),
        peak_lrs=(1e-2,),
        seeds=(0,),
    )
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.create_experiment("resnet-sweep")
    for i, run_id in enumerate(runs.run_ids):
        series = []
        for t in range(runs.num_ticks):
            first = STEPS_PER_TICK * t
            series += [
                ("train_loss", runs.loss[i, t], s) for s in range(first, first + 50, 10)
            ]
            series.append(("lr", runs.lr[i, t], first))
            series.append(("val_accuracy", runs.metric[i, t], first + 49))
        run = client.create_run(exp, run_name=run_id)
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id, metrics=[Metric(k, float(v), now, s) for k, v, s in series]
        )
        client.set_terminated(run.info.run_id)
        tags = {"train_loss": "train/loss", "val_accuracy": "eval/accuracy", "lr": "lr"}
        writer = Writer(str(root / "logs" / "sweep" / run_id))
        for k, v, s in series:
            writer.add_scalar(tags[k], float(v), s)
        writer.close()
    return root


@pytest.fixture
def tracker_stores(tracker_template):
    shutil.copy(tracker_template / "mlflow.db", "mlflow.db")
    shutil.copytree(tracker_template / "logs", "logs")
    return {}


@pytest.fixture
def keras_logs():
    """``logs/<run>/train`` and ``logs/<run>/validation``, as Keras'
    TensorBoard callback writes them (one record an epoch), and the page's
    ``import optax_lode``."""
    pytest.importorskip("tensorboard")
    from tensorboard.summary import Writer

    for r, run in enumerate(("run-a", "run-b")):
        for part, tags in (
            ("train", {"epoch_loss": 1.0, "epoch_learning_rate": 0.01}),
            ("validation", {"epoch_loss": 1.2, "epoch_accuracy": 0.5 * r}),
        ):
            writer = Writer(f"logs/{run}/{part}")
            for epoch in range(5):
                for tag, value in tags.items():
                    step_value = value + (0.1 * epoch if tag == "epoch_accuracy" else 0)
                    writer.add_scalar(tag, step_value, epoch)
            writer.close()
    return {"optax_lode": optax_lode}


@pytest.fixture
def diagnostics_names(tracker_template, tiny_model, monkeypatch):
    """MLflow's default store (a copy, in the working directory) and a jitted
    LODE-scheduled ``train_step(params, opt_state, batch)`` for 24 ticks of 2
    steps."""
    import mlflow

    shutil.copy(tracker_template / "mlflow.db", "mlflow.db")
    monkeypatch.setenv(
        "MLFLOW_TRACKING_URI", f"sqlite:///{Path('mlflow.db').resolve()}"
    )
    params, loss_fn, batch = mlp_problem()
    total_steps = tiny_model.T * 2
    tx = optax.chain(
        optax.adamw(1.0),
        optax_lode.lode_schedule(tiny_model, total_steps=total_steps, steps_per_tick=2),
    )

    @jax.jit
    def train_step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
        updates, opt_state = tx.update(
            grads, opt_state, params, value=loss, val_metric=1.0 / (1.0 + loss)
        )
        return optax.apply_updates(params, updates), opt_state, loss

    yield dict(
        total_steps=total_steps,
        train_step=train_step,
        params=params,
        opt_state=tx.init(params),
        batch=batch,
    )
    with contextlib.suppress(Exception):
        mlflow.end_run()
