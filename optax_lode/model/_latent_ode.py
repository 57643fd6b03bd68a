"""The latent ODE of training dynamics: ODE-RNN encoder, autonomous vector field,
decoder.

Time is measured in ticks scaled by ``T``: one tick is ``1/T`` of ODE time, so a
whole run spans ODE time ``[0, 1)`` whatever its length.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from optax_lode._jax_defaults import default_numerics
from optax_lode._whole import whole
from optax_lode.model._normalisation import FEATURES, Normalisation

SOLVERS: tuple[str, ...] = ("euler", "heun", "rk4", "tsit5")
"""Solvers ``LatentODE`` accepts. The fixed-step ones take one step per
``ticks_per_step`` ticks in a ``lax.scan`` (their step count is bounded by
construction; see :func:`default_ticks_per_step`); ``tsit5``
is diffrax's adaptive Tsit5 with a PID controller and bounded ``max_steps``.
``benchmarks/solver_choice.py`` measures them; ``euler`` is the default.
"""
Solver = Literal["euler", "heun", "rk4", "tsit5"]

# Adaptive solves may take at most this many steps per tick before giving up.
_MAX_STEPS_PER_TICK = 16
# Unrolling the per-step scan amortises XLA's loop overhead, which dominates the
# cost of a step of this tiny MLP (measured in benchmarks/solver_choice.py).
_UNROLL = 8
# Default resolution of fixed-step solvers: at least this many steps per run of
# T ticks, i.e. ``ticks_per_step = max(1, T // _STEPS_PER_RUN)``. On 600-tick
# runs, benchmarks/solver_choice.py measured the same held-out errors for 1 to 8
# ticks per step (75 steps per run); this keeps a factor of 2 from that.
_STEPS_PER_RUN = 150


def rows_finite(x: Float[Array, "*rows k"]) -> Bool[Array, " *rows"]:
    """Whether every entry of each row (last axis, a few features) is finite.

    Written as ``k`` elementwise ANDs rather than ``jnp.all``: inside a
    jitted training step every reduction costs the CPU runtime about 1 us on
    each call of the step, even in a ``lax.cond`` branch that never runs.

    Args:
        x: rows of ``k >= 1`` entries on the last axis.

    Returns:
        ``x.shape[:-1]`` booleans, ``jnp.all(jnp.isfinite(x), axis=-1)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> rows_finite(jnp.array([[1.0, 2.0], [1.0, jnp.nan]])).tolist()
        [True, False]
    """
    ok = jnp.isfinite(x[..., 0])
    for j in range(1, x.shape[-1]):
        ok = ok & jnp.isfinite(x[..., j])
    return ok


def _num_ticks(num_ticks: int) -> int:
    """``num_ticks`` as an int, refused below 1 (it fixes an output shape)."""
    num_ticks = int(num_ticks)
    if num_ticks < 1:
        raise ValueError(f"num_ticks must be at least 1; got {num_ticks}.")
    return num_ticks


def default_ticks_per_step(T: int, solver: str = "euler") -> int:
    """Ticks per solver step that :class:`LatentODE` uses unless told otherwise.

    One step per tick for the adaptive ``tsit5`` and for runs of fewer than
    300 ticks; otherwise ``T // 150``, so that every run is integrated with at
    least 150 steps (a step of at most ``1/150`` of a run).

    Args:
        T: ticks in a whole run.
        solver: the solver, one of :data:`SOLVERS`.

    Returns:
        Ticks per solver step, at least 1.

    Examples:
        >>> tuple(default_ticks_per_step(T) for T in (60, 299, 300, 600, 1000))
        (1, 1, 2, 4, 6)
    """
    if solver == "tsit5":
        return 1
    return max(1, int(T) // _STEPS_PER_RUN)


class TanhMLP(eqx.Module):
    """MLP with ``depth`` tanh hidden layers of ``width`` and a linear output.

    Equivalent to ``eqx.nn.MLP(..., activation=jnp.tanh)``, but with no function
    stored as a pytree leaf, so a ``LatentODE`` is a pytree of arrays only and can
    be passed straight through ``jax.jit``, ``jax.tree.map`` or ``optax``.
    """

    layers: tuple[eqx.nn.Linear, ...]

    def __init__(
        self, in_size: int, out_size: int, width: int, depth: int, *, key: PRNGKeyArray
    ):
        """``depth`` hidden layers of ``width`` between ``in_size`` inputs and
        ``out_size`` outputs, float32 weights initialised from ``key``."""
        sizes = [in_size] + [width] * depth + [out_size]
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(
            eqx.nn.Linear(a, b, key=k, dtype=jnp.float32)
            for a, b, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        )

    def __call__(self, x: Float[Array, " in"]) -> Float[Array, " out"]:
        for layer in self.layers[:-1]:
            x = jnp.tanh(layer(x))
        return self.layers[-1](x)

    def batched(self, x: Float[Array, "batch in"]) -> Float[Array, "batch out"]:
        """The same MLP on a batch of rows, as plain matrix products.

        Inside a ``lax.scan`` on CPU this is about 1.5x faster than ``vmap`` of
        :meth:`__call__` (``benchmarks/rollout_latency.py``).
        """
        first = self.layers[0]
        return self.after_first(x @ first.weight.T + first.bias)

    def after_first(
        self, pre: Float[Array, "batch width"], *, nan_rows: bool = False
    ) -> Float[Array, "batch out"]:
        """:meth:`batched` from the first layer's pre-activation on (what a
        rollout that carries that pre-activation has, see
        :func:`_euler_paths_folded`).

        With ``nan_rows`` a row with a non-finite entry gives NaN in every
        output (``tanh(inf)`` alone is finite); the others are unchanged, bit
        for bit.
        """
        x = pre
        for i, layer in enumerate(self.layers[1:]):
            h = jnp.tanh(x)
            if nan_rows and i == 0:
                # x - x is 0 where x is finite and NaN where not; the next
                # product spreads a NaN to every output of its row. Fused
                # with the tanh, unlike a separate mask over the rows.
                h = h * ((x - x) + 1.0)
            x = _affine(h, layer.weight.T, layer.bias)
        return x


def _affine(x: Array, w: Array, b: Array) -> Array:
    """``x @ w + b`` under a user's ``jax_numpy_rank_promotion="raise"`` too:
    the bias lifted to ``y``'s rank as jnp's implicit promotion lifts it, so
    the program (and a fit's gradients) stay the same bit for bit."""
    y = x @ w
    return y + jax.lax.broadcast_to_rank(b, y.ndim)


def _fixed_step(solver: str, f: Callable, dt: float) -> Callable:
    """One step of size ``dt`` of a fixed-step solver for ``dz/dt = f(z)``."""
    if solver == "euler":
        return lambda z: z + dt * f(z)
    if solver == "heun":

        def heun(z):
            k1 = f(z)
            k2 = f(z + dt * k1)
            return z + 0.5 * dt * (k1 + k2)

        return heun

    def rk4(z):
        k1 = f(z)
        k2 = f(z + 0.5 * dt * k1)
        k3 = f(z + 0.5 * dt * k2)
        k4 = f(z + dt * k3)
        return z + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

    return rk4


def _fixed_path(
    solver: str,
    f: Callable,
    dt: float,
    z0: Array,
    num_ticks: int,
    unroll: int,
    ticks_per_step: int = 1,
) -> Array:
    """States at ticks ``0 .. num_ticks - 1`` from ``z0`` (row 0 = ``z0``), one
    fixed step of ``ticks_per_step`` ticks per scan iteration (leading axis:
    ticks). Ticks inside a step are linearly interpolated between its ends,
    which for Euler is exactly Euler's own dense output."""
    s = int(ticks_per_step)
    advance = _fixed_step(solver, f, s * dt)
    # One step per tick has no rows to interpolate; its own scan also keeps the
    # concatenation below out of fit()'s backward pass (20-40% slower with it,
    # measured ad hoc on CPU).
    if s == 1:
        _, zs = jax.lax.scan(
            lambda z, _: (advance(z), z), z0, None, length=num_ticks, unroll=unroll
        )
        return zs
    frac = (jnp.arange(1, s, dtype=z0.dtype) / s).reshape(s - 1, *([1] * z0.ndim))

    def step(z, _):
        z_next = advance(z)
        # Row 0 is z itself, so a step that overflows cannot poison it.
        head = z[None]
        # z + frac * (z_next - z), lifted to frac's rank as jnp's implicit
        # promotion does and in its order (z's cotangents sum in trace order),
        # so fits stay the same bit for bit and rank_promotion="raise" holds.
        lerp = frac * jax.lax.broadcast_to_rank(z_next - z, frac.ndim)
        lerp = jax.lax.broadcast_to_rank(z, frac.ndim) + lerp
        return z_next, jnp.concatenate([head, lerp])

    steps = -(-num_ticks // s)
    _, zs = jax.lax.scan(step, z0, None, length=steps, unroll=unroll)
    return zs.reshape(steps * s, *z0.shape)[:num_ticks]


def _euler_paths_folded(
    mlp: TanhMLP,
    dt: float,
    z0s: Array,
    num_ticks: int,
    unroll: int,
    ticks_per_step: int = 1,
    readout: eqx.nn.Linear | None = None,
    valid_ticks: Int[Array, ""] | int | None = None,
    with_end: bool = False,
) -> Array | tuple[Array, Array]:
    """Euler paths of a batch under a :class:`TanhMLP` vector field, with one
    matrix product per step fewer than :func:`_fixed_path`.

    The first layer's pre-activation ``a = z W1' + b1`` is carried next to
    ``z``: both are linear in the last layer's output, so one product with the
    stacked ``[dt W3', dt W3' W1']`` advances both (``W'`` the transpose). On
    CPU the cost of a step is the number of XLA operations, not arithmetic,
    so two products per step instead of three are ~10% faster. ``a`` is
    recomputed from ``z`` at the start of every block of ``unroll`` steps,
    so rounding cannot drift further than ``unroll`` steps' worth. A step spans
    ``ticks_per_step`` ticks (rows in between: ``z + j dt f(z)``, Euler's dense
    output). Rows are ticks, as in :func:`_fixed_path`.

    With a ``readout`` layer the rows are ``z R' + r`` instead of ``z``
    (a decoder's first pre-activation), carried the same way: the same one
    product per step also advances it, so decoding skips that layer's product
    over every row.

    With ``valid_ticks`` (may be traced) the loop stops once rows
    ``0 .. valid_ticks - 1`` are computed; the rows after them are NaN. A
    decision reads far fewer rows late in a run than early, and its shapes
    must not change.

    With ``with_end`` (static rollouts only) it also returns the batch's
    latents after the last block, at tick ``blocks * unroll * ticks_per_step``:
    a rollout started there continues this one bit for bit, since every block
    starts from the latent alone.
    """
    first, *middle, last = mlp.layers
    w1, b1 = first.weight.T, first.bias
    w3, b3 = last.weight.T, last.bias
    mats, offs = [dt * w3, dt * (w3 @ w1)], [dt * b3, dt * (b3 @ w1)]
    if readout is not None:
        wr, br = readout.weight.T, readout.bias
        mats.append(dt * (w3 @ wr))
        offs.append(dt * (b3 @ wr))
    step_w, step_b = jnp.concatenate(mats, axis=1), jnp.concatenate(offs)
    latent, hidden, s = w3.shape[1], w1.shape[1], int(ticks_per_step)
    # Columns of the carry: z, then a, then the readout's pre-activation.
    out = slice(0, latent) if readout is None else slice(latent + hidden, None)
    blocks = -(-num_ticks // (unroll * s))

    def block(z, _):
        parts = [z, _affine(z, w1, b1)]
        if readout is not None:
            parts.append(_affine(z, wr, br))
        carry = jnp.concatenate(parts, axis=1)
        ys, dys = [], []
        for _ in range(unroll):
            h = jnp.tanh(carry[:, latent : latent + hidden])
            for layer in middle:
                h = jnp.tanh(_affine(h, layer.weight.T, layer.bias))
            d = _affine(h, step_w, step_b)  # one tick's worth of the step
            ys.append(carry[:, out])
            dys.append(d[:, out])
            carry = carry + s * d
        return carry[:, :latent], (jnp.stack(ys), jnp.stack(dys))

    if with_end and valid_ticks is not None:
        raise ValueError("with_end needs a rollout of static length (no valid_ticks)")
    if valid_ticks is None:
        z_end, (ys, dys) = jax.lax.scan(block, z0s, None, length=blocks)
    else:
        ys, dys = _run_blocks(block, z0s, blocks, unroll * s, valid_ticks, s > 1)
    if s > 1:
        # The rows inside a step, after the scan in one vectorised op: built
        # inside it they were one XLA op per row per step. Row 0 is y itself,
        # so a step that overflows cannot poison it (0 * inf).
        j = jnp.arange(1, s, dtype=ys.dtype)[:, None, None]
        y, dy = ys[:, :, None], dys[:, :, None]
        ys = jnp.concatenate(
            [y, y + jax.lax.broadcast_to_rank(j, dy.ndim) * dy], axis=2
        )
    rows = ys.reshape(blocks * unroll * s, *ys.shape[-2:])[:num_ticks]
    return (rows, z_end) if with_end else rows


def _zeros_as(ref: Array, shape: tuple[int, ...], dtype: Any) -> Array:
    """Zeros of ``shape`` typed like ``ref`` but for its shape: on its mesh
    (``jax.make_mesh``'s Explicit axes: a loop's carry or an updated buffer
    must match what it is updated with) and varying over the ``shard_map``
    axes it varies over. ``jnp.zeros`` would have no mesh, and
    ``zeros_like(ref, shape=...)`` drops it."""
    zero = jnp.zeros_like(ref, dtype).reshape(-1)[0]
    return jnp.broadcast_to(zero, shape)


def _run_blocks(
    block: Callable,
    z0s: Array,
    blocks: int,
    ticks_per_block: int,
    valid_ticks: Int[Array, ""] | int,
    with_slopes: bool,
) -> tuple[Array, Array | None]:
    """``lax.scan(block, z0s, None, length=blocks)``'s stacked outputs, but
    running only the blocks that rows ``0 .. valid_ticks - 1`` need (a
    ``fori_loop`` with a traced trip count, none if ``valid_ticks <= 0``); the
    other blocks' rows are NaN.
    ``with_slopes=False`` drops the per-row slopes (unused at one tick per
    step) from the loop's carry."""
    run = jnp.clip(
        (jnp.asarray(valid_ticks, jnp.int32) + ticks_per_block - 1) // ticks_per_block,
        0,
        blocks,
    )
    y_shape = jax.eval_shape(lambda z: block(z, None)[1], z0s)
    empty = [_zeros_as(z0s, (blocks, *a.shape), a.dtype) for a in y_shape]
    if not with_slopes:
        empty = empty[:1]

    def body(i, carry):
        z, *bufs = carry
        z, outs = block(z, None)
        bufs = [
            jax.lax.dynamic_update_index_in_dim(b, o, i, 0)
            for b, o in zip(bufs, outs, strict=False)
        ]
        return (z, *bufs)

    _, *bufs = jax.lax.fori_loop(0, run, body, (z0s, *empty))
    ran = (jnp.arange(blocks) < run).reshape(blocks, *([1] * (bufs[0].ndim - 1)))
    ys = jnp.where(ran, bufs[0], jnp.nan)
    return ys, (bufs[1] if with_slopes else None)


def _networks(model: LatentODE) -> tuple:
    """The trainable parts of a model (everything else is data about the runs)."""
    return (
        model.encoder_cell,
        model.encoder_field,
        model.encoder_out,
        model.vector_field,
        model.decoder,
    )


def _check_positive(name: str, value: Array, hint: str) -> None:
    """Finite and positive in float32, as the artifact stores it (a NaN would
    also make the saved header non-standard JSON, and the file unloadable)."""
    if isinstance(value, jax.core.Tracer):
        return
    a = np.asarray(value)
    ok = np.isfinite(a) & (a > 0)
    if not ok.all():
        raise ValueError(
            f"{name} must be finite and positive; got {a[~ok][:3].tolist()} ({hint})."
        )


class LatentODE(eqx.Module):
    """Latent ODE of ``(loss, metric, lr)`` training curves (Sampson & Melchior 2025).

    * **Encoder**: an ODE-RNN (Rubanova et al. 2019) read backwards in time over the
      window: starting from the latest tick, a GRU cell absorbs each valid tick and
      a hidden-state ODE (one Euler step per tick) carries the state one tick back.
      Its final state gives the latent at the window's first tick, which the latent
      ODE then carries forward to the window's last (current) tick. Deterministic:
      no variational term.
    * **Vector field**: autonomous MLP ``dz/dt = f(z)`` (``depth`` tanh layers of
      ``hidden_size``; the paper's A.3 uses latent 20, 2 x 20, tanh).
    * **Decoder**: MLP from the latent to the three normalised features.

    Normalised features are ``((log loss - m0)/s0, (metric - m1)/s1,
    (log lr - m2)/s2)`` with the statistics in ``normalisation``.

    Attributes:
        T: ticks in a whole training run.
        mu: window (ticks) used in training and the default decision period.
        latent_size: dimension of the latent state.
        hidden_size: width of every hidden layer and of the encoder's state.
        depth: hidden layers of the vector field.
        solver: one of :data:`SOLVERS`.
        ticks_per_step: ticks per step of a fixed-step solver (1 for ``tsit5``).
        normalisation: feature statistics of the training runs.
        lr_range: raw (min, max) learning rate seen in the training runs.
        best_lr_path: raw learning rate per tick of the best training run.
        latent_scale: per-dimension std of the encoded training latents (ones
            when untrained); the scheduler's ensemble noise is in these units.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> model = LatentODE(T=100, key=jax.random.key(0))
        >>> z0 = model.encode(jnp.zeros((5, 3)))
        >>> model.decode(z0, 50).shape
        (50, 3)

    References:
        Sampson & Melchior, *Dynamics of Learning: Generative Schedules from Latent
        ODEs*, 2025 (Section 3.1, Appendix A.3).
        Rubanova, Chen & Duvenaud, *Latent ODEs for Irregularly-Sampled Time
        Series*, 2019.
    """

    encoder_cell: eqx.nn.GRUCell
    encoder_field: TanhMLP
    encoder_out: eqx.nn.Linear
    vector_field: TanhMLP
    decoder: TanhMLP
    normalisation: Normalisation
    lr_range: Float[Array, " 2"]
    best_lr_path: Float[Array, " T"]
    latent_scale: Float[Array, " latent"]
    T: int = eqx.field(static=True)
    mu: int = eqx.field(static=True)
    latent_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    solver: str = eqx.field(static=True)
    ticks_per_step: int = eqx.field(static=True)
    # JSON text, so that the model stays hashable; read it via training_summary.
    _training: str = eqx.field(static=True)

    def __init__(
        self,
        *,
        T: int,
        key: PRNGKeyArray,
        latent_size: int = 20,
        hidden_size: int = 20,
        depth: int = 2,
        mu: int | None = None,
        normalisation: Normalisation | None = None,
        lr_range: Float[ArrayLike, " 2"] | None = None,
        best_lr_path: Float[ArrayLike, " T"] | None = None,
        latent_scale: Float[ArrayLike, " latent"] | None = None,
        solver: Solver = "euler",
        ticks_per_step: int | None = None,
        training_summary: Mapping[str, Any] | None = None,
    ):
        """Builds an untrained model (``fit`` returns a trained one).

        Args:
            T: ticks in a whole run (at least 3, the shortest run a schedule
                can decide in).
            key: PRNG key for the weights.
            latent_size: latent dimension (paper: 20).
            hidden_size: hidden width (paper: 20).
            depth: hidden layers of the vector field (paper: 2).
            mu: training window in ticks; default 5% of ``T``, at least 2.
            normalisation: feature statistics; default
                :meth:`Normalisation.identity` (learning rate centred on 1e-2).
            lr_range: raw (min, max) learning rate; default ``exp(m2 -+ 2 s2)`` of
                the normalisation.
            best_lr_path: ``(T,)`` raw learning rates; default constant
                ``exp(m2)``.
            latent_scale: ``(latent_size,)``; default ones.
            solver: one of :data:`SOLVERS`.
            ticks_per_step: ticks covered by one step of a fixed-step solver;
                ticks inside a step are interpolated linearly (Euler's own dense
                output). Default :func:`default_ticks_per_step`: one per tick for
                runs under 300 ticks, else at least 150 steps per run. ``tsit5``
                chooses its own steps and takes only 1.
            training_summary: JSON-serialisable facts about the fit (``fit`` sets
                it; ``save_model`` stores it in the header). Its
                ``steps_per_tick``, if any, must be an int >= 1 or None, and
                ``metric_negated``, if any, a bool.

        Raises:
            ValueError: ``T``, ``latent_size``, ``hidden_size``, ``depth`` or
                ``mu`` is not a whole number; ``T < 3``; an unknown
                ``solver``; a ``ticks_per_step`` that is not a positive integer,
                or other than 1 for ``tsit5``; ``mu`` outside ``[1, T]``;
                ``latent_size`` or ``hidden_size`` below 1 or ``depth`` below
                0; ``lr_range``, ``best_lr_path`` or ``latent_scale`` of
                another shape than ``(2,)``, ``(T,)``, ``(latent_size,)``, or
                (when concrete) with an entry that is not finite and positive
                in float32; an ``lr_range`` whose min exceeds its max; or a
                ``training_summary`` whose ``steps_per_tick`` is not an int
                >= 1 or None, or whose ``metric_negated`` is not a bool.

        Examples:
            >>> import jax
            >>> model = LatentODE(T=600, key=jax.random.key(0), solver="heun")
            >>> model.mu, model.ticks_per_step, model.steps_per_tick
            (30, 4, None)
        """
        T, latent_size, hidden_size, depth = (
            whole(name, v)
            for name, v in (
                ("T", T),
                ("latent_size", latent_size),
                ("hidden_size", hidden_size),
                ("depth", depth),
            )
        )
        mu = None if mu is None else whole("mu", mu)
        # A model exists to be scheduled: a decision needs a window of
        # 2 <= mu < T ticks (lode_schedule refuses shorter runs), so T >= 3.
        if T < 3:
            raise ValueError(
                f"T (ticks in a run) must be at least 3; got {T}: a schedule "
                "decides from a window of mu ticks with 2 <= mu < T. Pass T >= 3 "
                "(or fit runs logged with at least 3 ticks)."
            )
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}; got {solver!r}.")
        if ticks_per_step is None:
            ticks_per_step = default_ticks_per_step(T, solver)
        if int(ticks_per_step) != ticks_per_step or ticks_per_step < 1:
            raise ValueError(
                f"ticks_per_step must be a positive integer; got {ticks_per_step!r}."
            )
        if solver == "tsit5" and ticks_per_step != 1:
            raise ValueError(
                "ticks_per_step applies to fixed-step solvers; tsit5 chooses its "
                f"own steps, so pass ticks_per_step=1 (got {ticks_per_step})."
            )
        if mu is None:
            mu = max(2, round(0.05 * T))
        if not 1 <= mu <= T:
            raise ValueError(f"mu must be in [1, T={T}]; got {mu}.")
        for name, v in (("latent_size", latent_size), ("hidden_size", hidden_size)):
            if v < 1:
                raise ValueError(f"{name} must be positive; got {v}.")
        if depth < 0:
            raise ValueError(f"depth must be non-negative; got {depth}.")
        if normalisation is None:
            normalisation = Normalisation.identity()
        m2, s2 = float(normalisation.mean[2]), float(normalisation.std[2])
        if lr_range is None:
            lr_range = np.exp([m2 - 2 * s2, m2 + 2 * s2])
        if best_lr_path is None:
            best_lr_path = np.full((T,), np.exp(m2))
        if latent_scale is None:
            latent_scale = np.ones((latent_size,))
        lr_range = jnp.asarray(lr_range, jnp.float32)
        best_lr_path = jnp.asarray(best_lr_path, jnp.float32)
        latent_scale = jnp.asarray(latent_scale, jnp.float32)
        if lr_range.shape != (2,):
            raise ValueError(f"lr_range must have shape (2,); got {lr_range.shape}.")
        if best_lr_path.shape != (T,):
            raise ValueError(
                f"best_lr_path must have shape (T,) = ({T},); got {best_lr_path.shape}."
            )
        if latent_scale.shape != (latent_size,):
            raise ValueError(
                f"latent_scale must have shape ({latent_size},); "
                f"got {latent_scale.shape}."
            )
        rates = "a learning rate below ~1e-38 underflows to 0 in float32"
        _check_positive("lr_range", lr_range, rates)
        _check_positive(
            "best_lr_path", best_lr_path, rates + "; fill the ticks after a run "
            "ended (forward-fill) before passing its path"
        )  # fmt: skip
        _check_positive("latent_scale", latent_scale, "a per-dimension std")
        if not isinstance(lr_range, jax.core.Tracer) and lr_range[0] > lr_range[1]:
            raise ValueError(
                f"lr_range must be (min, max); got {np.asarray(lr_range).tolist()}."
            )
        # float32 whatever the user's jax_enable_x64: the artifact, the encoder's
        # float32 carry and the training step all assume it. The same weights
        # for a key whatever the user's jax_threefry_partitionable.
        f32 = jnp.float32
        with default_numerics():
            k = jax.random.split(key, 5)
            self.encoder_cell = eqx.nn.GRUCell(
                len(FEATURES), hidden_size, key=k[0], dtype=f32
            )
            self.encoder_field = TanhMLP(
                hidden_size, hidden_size, hidden_size, 1, key=k[1]
            )
            self.encoder_out = eqx.nn.Linear(
                hidden_size, latent_size, key=k[2], dtype=f32
            )
            self.vector_field = TanhMLP(
                latent_size, latent_size, hidden_size, depth, key=k[3]
            )
            self.decoder = TanhMLP(latent_size, len(FEATURES), hidden_size, 1, key=k[4])
        self.normalisation = normalisation
        self.lr_range = lr_range
        self.best_lr_path = best_lr_path
        self.latent_scale = latent_scale
        self.T = T
        self.mu = mu
        self.latent_size = latent_size
        self.hidden_size = hidden_size
        self.depth = depth
        self.solver = solver
        self.ticks_per_step = int(ticks_per_step)
        summary = dict(training_summary or {})
        clock = summary.get("steps_per_tick")
        if clock is not None and not (
            isinstance(clock, int) and not isinstance(clock, bool) and clock >= 1
        ):
            raise ValueError(
                "training_summary['steps_per_tick'] must be an int >= 1 or None "
                f"(unknown), got {clock!r}"
            )
        if not isinstance(summary.get("metric_negated", False), bool):
            raise ValueError(
                "training_summary['metric_negated'] must be a bool, got "
                f"{summary['metric_negated']!r}"
            )
        self._training = json.dumps(summary, sort_keys=True)

    def with_solver(
        self, solver: Solver, *, ticks_per_step: int | None = None
    ) -> LatentODE:
        """The same model (weights, metadata) integrated with another solver.

        Nothing is refitted: a model fitted with one solver predicts a little
        differently with another (``benchmarks/solver_choice.py`` compares
        them).

        Args:
            solver: one of :data:`SOLVERS`.
            ticks_per_step: ticks per step of a fixed-step solver; default
                this model's (1 for ``tsit5``, which takes only 1).

        Returns:
            A new model with the same weights, data and training summary.

        Raises:
            ValueError: an unknown ``solver``, or a ``ticks_per_step`` that is
                not a positive integer (or other than 1 for ``tsit5``).

        Examples:
            >>> import jax
            >>> model = LatentODE(T=50, key=jax.random.key(0))
            >>> rk4 = model.with_solver("rk4", ticks_per_step=2)
            >>> rk4.solver, rk4.ticks_per_step, model.solver
            ('rk4', 2, 'euler')
        """
        if ticks_per_step is None:
            ticks_per_step = 1 if solver == "tsit5" else self.ticks_per_step
        return self._rebuilt(solver, ticks_per_step, self.training_summary)

    def with_steps_per_tick(self, steps_per_tick: int | None) -> LatentODE:
        """The same model (weights, everything else) recording another clock
        for its runs, or none (``None``).

        For a model whose runs' clock was not recorded (runs from a CSV file
        or arrays) or was recorded wrongly (a tracker whose step is not the
        optimizer step): :func:`~optax_lode.lode_schedule` checks a live run
        against it. Nothing is refitted; ``model_digest`` is unchanged.

        Args:
            steps_per_tick: optimizer steps per tick of the runs, a whole
                number >= 1, or ``None`` for unknown.

        Returns:
            A new model whose training summary records ``steps_per_tick``.

        Raises:
            ValueError: ``steps_per_tick`` is neither a whole number >= 1 nor
                ``None``.

        Examples:
            >>> import jax
            >>> model = LatentODE(T=50, key=jax.random.key(0))
            >>> model.steps_per_tick, model.with_steps_per_tick(31).steps_per_tick
            (None, 31)
        """
        if steps_per_tick is not None:
            try:
                k = whole("steps_per_tick", steps_per_tick)
            except ValueError:
                k = 0
            if k < 1:  # as Trajectories.with_steps_per_tick says it
                raise ValueError(
                    "steps_per_tick must be a whole number >= 1, or None when "
                    f"unknown; got {steps_per_tick!r}."
                )
            steps_per_tick = k
        summary = {**self.training_summary, "steps_per_tick": steps_per_tick}
        return self._rebuilt(self.solver, self.ticks_per_step, summary)

    def _rebuilt(self, solver, ticks_per_step, training_summary) -> LatentODE:
        """This model's weights and data with other settings."""
        other = LatentODE(
            T=self.T,
            key=jax.random.key(0),
            latent_size=self.latent_size,
            hidden_size=self.hidden_size,
            depth=self.depth,
            mu=self.mu,
            normalisation=self.normalisation,
            lr_range=self.lr_range,
            best_lr_path=self.best_lr_path,
            latent_scale=self.latent_scale,
            solver=solver,
            ticks_per_step=ticks_per_step,
            training_summary=training_summary,
        )
        return eqx.tree_at(_networks, other, _networks(self))

    @property
    def training_summary(self) -> dict[str, Any]:
        """Facts about the fit that produced this model (empty if untrained)."""
        return json.loads(self._training)

    @property
    def steps_per_tick(self) -> int | None:
        """Optimizer steps per tick of the runs the model was fitted to
        (``Trajectories.steps_per_tick``), or ``None`` when they did not say.
        :func:`~optax_lode.lode_schedule` refuses a run on another clock."""
        return self.training_summary.get("steps_per_tick")

    @property
    def metric_negated(self) -> bool:
        """Whether the runs' metric was a lower-is-better one negated before
        the fit (``Trajectories.with_negated_metric``, ``optax-lode fit
        --lower-is-better``): the model then predicts the negated metric, and a
        live run passes ``val_metric=-val_loss`` to
        :func:`~optax_lode.lode_schedule`'s update."""
        return bool(self.training_summary.get("metric_negated", False))

    # -- encoder -----------------------------------------------------------------

    def encode_start(
        self, window: Float[Array, "ticks 3"], mask: Bool[Array, " ticks"] | None = None
    ) -> Float[Array, " latent"]:
        """Latent state at the window's FIRST tick (the ODE-RNN's output).

        Rows that are masked out or hold a non-finite value are skipped by the GRU
        (the hidden ODE still carries the state across them). :meth:`encode`
        carries it on to the window's last tick.

        Args:
            window: ``(ticks, 3)`` NORMALISED features, oldest first.
            mask: ``(ticks,)`` booleans, False for a missing tick; ``None``
                means all valid.

        Returns:
            The ``(latent_size,)`` latent at the window's first row.

        Raises:
            ValueError: ``window`` is not ``(ticks, 3)``, or ``mask`` is not
                ``(ticks,)``.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> model = LatentODE(T=20, key=jax.random.key(0))
            >>> model.encode_start(jnp.zeros((4, 3))).shape
            (20,)
        """
        window = jnp.asarray(window)
        if window.ndim != 2 or window.shape[-1] != len(FEATURES):
            raise ValueError(
                f"window must have shape (ticks, 3) with features {FEATURES}; "
                f"got {window.shape}."
            )
        valid = rows_finite(window)
        if mask is not None:
            mask = jnp.asarray(mask)
            if mask.shape != window.shape[:1]:
                raise ValueError(
                    f"mask must have shape ({window.shape[0]},); got {mask.shape}."
                )
            valid = valid & mask.astype(bool)
        # Zero the skipped rows so a NaN cannot leak through the discarded branch's
        # gradient.
        x = jnp.where(valid[:, None], window, 0.0).astype(jnp.float32)
        dt = 1.0 / self.T

        def step(h, inputs):
            xi, vi = inputs
            h = jnp.where(vi, self.encoder_cell(xi, h), h)
            # One Euler step of the hidden ODE, one tick back in time.
            h = h - dt * self.encoder_field(h)
            return h, None

        h0 = _zeros_as(x, (self.hidden_size,), jnp.float32)
        # Read from the latest tick backwards; the last step's ODE move (past the
        # first row) is undone by not applying it: handle the first row separately.
        h, _ = jax.lax.scan(step, h0, (x[:0:-1], valid[:0:-1]))
        h = jnp.where(valid[0], self.encoder_cell(x[0], h), h)
        return self.encoder_out(h)

    def encode(
        self, window: Float[Array, "ticks 3"], mask: Bool[Array, " ticks"] | None = None
    ) -> Float[Array, " latent"]:
        """Latent state at the window's LAST tick (the current tick).

        Args:
            window: ``(ticks, 3)`` NORMALISED features, oldest first; the last row
                is the current tick. Any length from 1 to ``T`` (and beyond).
            mask: ``(ticks,)`` booleans, False for a missing tick; ``None`` means
                all valid. Non-finite rows are treated as missing.

        Returns:
            ``z0``, the ``(latent_size,)`` state to :meth:`decode` from.

        Raises:
            ValueError: as :meth:`encode_start`.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> model = LatentODE(T=20, key=jax.random.key(0))
            >>> mask = jnp.array([False, True, True, True])  # tick 0 missing
            >>> z0 = model.encode(jnp.zeros((4, 3)), mask)
            >>> z0.shape
            (20,)
        """
        z_start = self.encode_start(window, mask)
        n = jnp.asarray(window).shape[0]
        if n == 1:
            return z_start
        return self.latent_path(z_start, n)[-1]

    # -- latent dynamics and decoder ---------------------------------------------

    def latent_path(
        self, z0: Float[Array, " latent"], num_ticks: int, *, unroll: int = _UNROLL
    ) -> Float[Array, "num_ticks latent"]:
        """Latent states at ticks ``0 .. num_ticks - 1`` after ``z0`` (row 0 = z0).

        A failed adaptive solve makes every row NaN; it never raises under ``jit``.

        Args:
            z0: the latent at row 0.
            num_ticks: rows of the path (a Python int, >= 1: it fixes the
                shape).
            unroll: fixed-step solvers' steps per loop iteration; trades
                compile time for run time.

        Returns:
            ``(num_ticks, latent_size)``: row ``k`` is ``k`` ticks after ``z0``.

        Raises:
            ValueError: ``num_ticks`` is below 1.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> model = LatentODE(T=20, key=jax.random.key(0))
            >>> model.latent_path(jnp.zeros(20), 5).shape
            (5, 20)
        """
        num_ticks = _num_ticks(num_ticks)
        z0 = jnp.asarray(z0, jnp.float32)
        if self.solver == "tsit5":
            return self._adaptive_path(z0, num_ticks)
        f, dt = self.vector_field, 1.0 / self.T
        return _fixed_path(
            self.solver, f, dt, z0, num_ticks, unroll, self.ticks_per_step
        )

    def latent_paths(
        self, z0s: Float[Array, "n latent"], num_ticks: int, *, unroll: int = _UNROLL
    ) -> Float[Array, "n num_ticks latent"]:
        """:meth:`latent_path` of many initial latents at once (an ensemble).

        Fixed-step solvers advance the whole batch in one scan with batched
        matrix products, which is faster on CPU than ``vmap`` of
        :meth:`latent_path` (Euler also folds the first layer into the step:
        :func:`_euler_paths_folded`); the adaptive solver is vmapped. Equal
        to ``vmap`` of :meth:`latent_path` up to float rounding.

        Args:
            z0s: ``(n, latent_size)`` latents, one per path.
            num_ticks: rows of each path (a Python int, >= 1).
            unroll: fixed-step solvers' steps per loop iteration.

        Returns:
            ``(n, num_ticks, latent_size)``: ``[i, k]`` is ``k`` ticks after
            ``z0s[i]``.

        Raises:
            ValueError: ``num_ticks`` is below 1.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> model = LatentODE(T=20, key=jax.random.key(0))
            >>> model.latent_paths(jnp.zeros((3, 20)), 5).shape
            (3, 5, 20)
        """
        return jnp.swapaxes(self._paths_by_tick(z0s, num_ticks, unroll), 0, 1)

    def _paths_by_tick(self, z0s, num_ticks: int, unroll: int = _UNROLL) -> Array:
        """:meth:`latent_paths` with ticks as the LEADING axis, as scans emit them."""
        num_ticks = _num_ticks(num_ticks)
        z0s = jnp.asarray(z0s, jnp.float32)
        if self.solver == "tsit5":
            return jax.vmap(lambda z: self._adaptive_path(z, num_ticks), out_axes=1)(
                z0s
            )
        f, dt = self.vector_field.batched, 1.0 / self.T
        s = self.ticks_per_step
        if self._folds_euler:
            return _euler_paths_folded(self.vector_field, dt, z0s, num_ticks, unroll, s)
        return _fixed_path(self.solver, f, dt, z0s, num_ticks, unroll, s)

    @property
    def _folds_euler(self) -> bool:
        """Euler with a vector-field layer to fold (:func:`_euler_paths_folded`)."""
        return self.solver == "euler" and self.depth >= 1

    def _adaptive_path(self, z0, num_ticks):
        ts = jnp.arange(num_ticks, dtype=jnp.float32) / self.T
        # t1 is the last save time itself: a separately rounded (num_ticks - 1)
        # / T can fall below it in float32, which diffrax rejects.
        t1 = ts[-1]
        if num_ticks == 1:
            return z0[None]
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, z, args: self.vector_field(z)),
            diffrax.Tsit5(),
            t0=0.0,
            t1=t1,
            dt0=1.0 / self.T,
            y0=z0,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=1e-4, atol=1e-6),
            max_steps=_MAX_STEPS_PER_TICK * num_ticks,
            throw=False,
        )
        ok = sol.result == diffrax.RESULTS.successful
        return jnp.where(ok, sol.ys, jnp.nan)

    def decode_latents(
        self, zs: Float[Array, "num_ticks latent"]
    ) -> Float[Array, "num_ticks 3"]:
        """Decoder applied per row; rows with a non-finite latent become NaN.

        Args:
            zs: latents, one per row (e.g. a :meth:`latent_path`).

        Returns:
            ``(num_ticks, 3)`` NORMALISED features, NaN in every entry of a row
            whose latent is not finite.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> model = LatentODE(T=20, key=jax.random.key(0))
            >>> zs = jnp.zeros((3, 20)).at[1, 0].set(jnp.inf)
            >>> jnp.isnan(model.decode_latents(zs)).all(axis=1).tolist()
            [False, True, False]
        """
        out = jax.vmap(self.decoder)(jnp.where(jnp.isfinite(zs), zs, 0.0))
        finite = rows_finite(zs)[..., None]
        return jnp.where(finite, out, jnp.nan)

    def decode(
        self, z0: Float[Array, " latent"], num_ticks: int
    ) -> Float[Array, "num_ticks 3"]:
        """Predicted NORMALISED features on the tick grid from ``z0``.

        Args:
            z0: latent state at the current tick (from :meth:`encode`).
            num_ticks: rows to predict (a Python int: it fixes the output shape).

        Returns:
            ``(num_ticks, 3)``: row 0 is the current tick, row ``k`` is ``k`` ticks
            later. A failed or non-finite solve yields NaN rows, never an
            exception under ``jit``; callers test ``jnp.isfinite``.

        Raises:
            ValueError: ``num_ticks`` is below 1.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> model = LatentODE(T=20, key=jax.random.key(0))
            >>> model.decode(jnp.zeros(20), 5).shape
            (5, 3)
        """
        return self.decode_latents(self.latent_path(z0, num_ticks))

    def decode_many(
        self, z0s: Float[Array, "n latent"], num_ticks: int
    ) -> Float[Array, "n num_ticks 3"]:
        """:meth:`decode` of many latents at once (an ensemble rollout).

        Equal to ``jax.vmap(lambda z: model.decode(z, num_ticks))(z0s)`` up to
        float rounding, and faster on CPU (one batched scan; with Euler the
        scan also advances the decoder's first layer, see
        :func:`_euler_paths_folded`). Same as
        ``decode_rollout(rollout(z0s, num_ticks))`` with ticks moved second.

        Args:
            z0s: ``(n, latent_size)`` latents at the current tick.
            num_ticks: rows to predict for each (a Python int, >= 1).

        Returns:
            ``(n, num_ticks, 3)`` NORMALISED features: ``[i, k]`` is ``k``
            ticks after ``z0s[i]``; NaN rows where a solve failed.

        Raises:
            ValueError: ``num_ticks`` is below 1.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> model = LatentODE(T=20, key=jax.random.key(0))
            >>> model.decode_many(jnp.zeros((3, 20)), 5).shape
            (3, 5, 3)
        """
        return jnp.swapaxes(self.decode_rollout(self.rollout(z0s, num_ticks)), 0, 1)

    def rollout(
        self,
        z0s: Float[Array, "n latent"],
        num_ticks: int,
        *,
        valid_ticks: Int[Array, ""] | int | None = None,
        with_end: bool = False,
    ) -> (
        Float[Array, "num_ticks n state"]
        | tuple[Float[Array, "num_ticks n state"], Float[Array, "n latent"]]
    ):
        """The ensemble's rollout before decoding, ticks first: the input of
        :meth:`decode_rollout`, which decodes any subset of its rows.

        For Euler (the default solver) a row is the decoder's first
        pre-activation, which the scan carries (:func:`_euler_paths_folded`);
        for the other solvers it is the latent. Decoding only the rows one
        needs is what makes :func:`optax_lode.decide` cheap.

        Args:
            z0s: initial latents, one per row.
            num_ticks: rows of the rollout (a Python int: it fixes the shape).
            valid_ticks: optional, possibly traced: only rows
                ``0 .. valid_ticks - 1`` are needed. With Euler the loop stops
                after them and later rows are NaN; other solvers compute
                every row.
            with_end: also return the latents at tick ``num_ticks``, from
                which ``rollout`` continues this rollout bit for bit (a
                decision rolls out the rows it must decode first, then only as
                far as its scores read). Needs a :attr:`rollout_block_ticks`
                multiple for ``num_ticks`` and no ``valid_ticks``.

        Returns:
            ``(num_ticks, n, state)``: row ``k`` is ``k`` ticks after ``z0s``
            (with ``with_end``, a tuple of that and the ``(n, latent)`` end).

        Raises:
            ValueError: ``num_ticks`` is below 1, or ``with_end`` without the
                Euler solver, with a ``num_ticks`` that is not a multiple of
                :attr:`rollout_block_ticks`, or with ``valid_ticks``.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> model = LatentODE(T=20, key=jax.random.key(0))
            >>> states, end = model.rollout(jnp.zeros((3, 20)), 16, with_end=True)
            >>> model.rollout_block_ticks, states.shape, end.shape
            (8, (16, 3, 20), (3, 20))
            >>> model.decode_rollout(states[::5]).shape  # rows 0, 5, 10, 15
            (4, 3, 3)
        """
        z0s = jnp.asarray(z0s, jnp.float32)
        if with_end:
            block = self.rollout_block_ticks
            if block is None or num_ticks % block or valid_ticks is not None:
                raise ValueError(
                    "rollout(with_end=True) needs the Euler solver, num_ticks a "
                    f"multiple of rollout_block_ticks ({block}) and no "
                    f"valid_ticks; got solver={self.solver!r}, "
                    f"num_ticks={num_ticks}, valid_ticks={valid_ticks!r}."
                )
        if not self._folds_euler:
            return self._paths_by_tick(z0s, num_ticks)
        return _euler_paths_folded(
            self.vector_field,
            1.0 / self.T,
            z0s,
            _num_ticks(num_ticks),
            _UNROLL,
            self.ticks_per_step,
            readout=self.decoder.layers[0],
            valid_ticks=valid_ticks,
            with_end=with_end,
        )

    @property
    def rollout_block_ticks(self) -> int | None:
        """Ticks of one block of :meth:`rollout`'s loop: a rollout of a multiple
        of this many ticks can end and resume exactly (``with_end``). ``None``
        for solvers whose rollouts cannot (all but Euler)."""
        return _UNROLL * self.ticks_per_step if self._folds_euler else None

    def decode_rollout(
        self, states: Float[Array, "*rows state"]
    ) -> Float[Array, "*rows 3"]:
        """Predicted NORMALISED features of rows of :meth:`rollout` (any
        leading shape, e.g. a gather of a few rows); non-finite rows give NaN.

        Args:
            states: rows of a :meth:`rollout` of this model, the state on the
                last axis.

        Returns:
            The features of each row, ``states.shape[:-1] + (3,)``.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> model = LatentODE(T=20, key=jax.random.key(0))
            >>> states = model.rollout(jnp.zeros((2, 20)), 8)
            >>> model.decode_rollout(states[jnp.array([0, 7])]).shape
            (2, 2, 3)
        """
        if not self._folds_euler:
            flat = states.reshape(-1, states.shape[-1])
            return self.decode_latents(flat).reshape(*states.shape[:-1], -1)
        # A non-finite latent has a non-finite pre-activation (inf * 0 is
        # NaN), so every row decode_latents masks is masked here too.
        return self.decoder.after_first(states, nan_rows=True)

    def predict(
        self,
        window: Float[Array, "ticks 3"],
        num_ticks: int,
        mask: Bool[Array, " ticks"] | None = None,
    ) -> Float[Array, "num_ticks 3"]:
        """``decode(encode(window, mask), num_ticks)`` (normalised units).

        For raw values, normalise the window first and invert the prediction:
        ``norm.inverse(model.predict(norm.forward(raw), k))`` with ``norm =
        model.normalisation``.

        Args:
            window: ``(ticks, 3)`` NORMALISED features, oldest first; the last
                row is the current tick.
            num_ticks: rows to predict (a Python int, >= 1).
            mask: ``(ticks,)`` booleans, False for a missing tick; ``None``
                means all valid.

        Returns:
            ``(num_ticks, 3)`` NORMALISED features: row 0 is the window's last
            tick, row ``k`` is ``k`` ticks later.

        Raises:
            ValueError: as :meth:`encode` and :meth:`decode`.

        Examples:
            >>> import jax, jax.numpy as jnp
            >>> model = LatentODE(T=20, key=jax.random.key(0))
            >>> model.predict(jnp.zeros((4, 3)), 10).shape
            (10, 3)
        """
        return self.decode(self.encode(window, mask), num_ticks)
