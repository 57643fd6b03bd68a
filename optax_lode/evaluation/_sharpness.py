"""Sharpness: the largest Hessian eigenvalue of a loss at given parameters.

The paper's Table 2 measures how flat the minimum a schedule reaches is by the
largest eigenvalue of the loss Hessian at the end of training. The Hessian of a
network is never formed: power iteration only needs Hessian-vector products,
which forward-over-reverse differentiation (``jax.jvp`` of ``jax.grad``) gives
at about the cost of two gradients.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

PyTree = Any


class SharpnessResult(NamedTuple):
    """Outcome of :func:`hessian_max_eigenvalue`.

    Attributes:
        eigenvalue: the Rayleigh quotient ``v^T H v`` of the last iterate ``v``
            (unit norm): the largest Hessian eigenvalue once converged.
        residual: ``||H v - eigenvalue * v||``, how far ``v`` is from being an
            eigenvector (0 when exactly converged).
        iterations: power iterations performed (both passes, if shifted).
        converged: whether ``residual <= sqrt(rtol) * |eigenvalue|`` for the
            final estimate (the iterations stop when that holds and the
            estimate is steady to ``rtol``, or when they run out: a run out of
            iterations with a small residual is converged too). Then some
            eigenvalue lies within ``residual`` of the estimate, but power
            iteration cannot tell it is the largest. With top eigenvalues
            close together (relative to the gap that the iterations must
            resolve) it can settle near a lower one for many iterations and
            say converged; the estimate is still a lower bound of the largest.
            False: the eigenvalue is not to be trusted.
    """

    eigenvalue: Float[Array, ""]
    residual: Float[Array, ""]
    iterations: Int[Array, ""]
    converged: Bool[Array, ""]


def hessian_vector_product(
    loss_fn: Callable[[PyTree], Float[Array, ""]], params: PyTree, vector: PyTree
) -> PyTree:
    """``H(params) @ vector`` for the Hessian of ``loss_fn``, forward over reverse.

    Args:
        loss_fn: scalar function of the parameters.
        params: where the Hessian is taken.
        vector: a pytree with the structure of ``params``.

    Returns:
        The product, a pytree with the structure of ``params``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from optax_lode.evaluation import hessian_vector_product
        >>> a = jnp.array([[2.0, 1.0], [1.0, 3.0]])
        >>> hessian_vector_product(lambda x: 0.5 * x @ a @ x, jnp.zeros(2),
        ...                        jnp.array([1.0, 0.0])).tolist()
        [2.0, 1.0]
    """
    return jax.jvp(jax.grad(loss_fn), (params,), (vector,))[1]


def hessian_max_eigenvalue(
    loss_fn: Callable[..., Float[Array, ""]],
    params: PyTree,
    *args: Any,
    key: PRNGKeyArray,
    num_iters: int = 100,
    rtol: float = 1e-4,
) -> SharpnessResult:
    """Largest eigenvalue of the Hessian of ``loss_fn`` at ``params`` (the
    paper's lambda_max, sharpness).

    Power iteration ``v <- H v / ||H v||`` from a random unit vector, each product
    by forward-over-reverse differentiation, in one jitted ``lax.while_loop``. It
    stops when the Rayleigh quotient changes by less than ``rtol`` (relative)
    between iterations *and* ``v`` is nearly an eigenvector (residual at most
    ``sqrt(rtol)`` times the eigenvalue), or after ``num_iters`` iterations;
    ``converged`` says which. A converged estimate is within ``residual`` of
    *an* eigenvalue: with clustered top eigenvalues, possibly not the largest
    (:class:`SharpnessResult`).

    Power iteration converges to the eigenvalue of largest *magnitude*. Near a
    minimum the Hessian is close to positive semi-definite and that is the
    largest eigenvalue. Away from one (a run that has not converged, a network
    still learning) the most negative eigenvalue can dominate, or one of
    either sign and equal magnitude can mix with it; then a second power
    iteration (at most ``num_iters`` more) runs on ``H + r I``, ``r`` the
    spectral radius estimated by the first, whose spectrum is non-negative
    and whose top eigenvector is that of the largest eigenvalue. The second
    pass converges more slowly when the largest eigenvalue is close to the
    next (relative to ``r``): check ``converged`` before using the number.

    The computation is compiled once per ``(loss_fn, num_iters)`` and argument
    shapes: pass the batch through ``*args`` rather than closing over it in a
    fresh lambda, so that several models are measured without recompiling.

    Args:
        loss_fn: scalar loss ``loss_fn(params, *args)``; differentiated w.r.t.
            ``params`` only. The paper uses a fixed batch of 256 examples.
        params: parameters (any pytree of float arrays).
        *args: further (traced) arguments of ``loss_fn``, e.g. the batch.
        key: PRNG key for the starting vector.
        num_iters: maximum number of power iterations (>= 1).
        rtol: relative change of the eigenvalue estimate that counts as converged.

    Returns:
        A :class:`SharpnessResult`.

    Raises:
        ValueError: ``num_iters < 1``, ``rtol <= 0``, or ``params`` without
            leaves or with a non-floating leaf.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from optax_lode.evaluation import hessian_max_eigenvalue
        >>> a = jnp.diag(jnp.array([3.0, 1.0, 0.5]))
        >>> res = hessian_max_eigenvalue(
        ...     lambda x: 0.5 * x @ a @ x, jnp.ones(3), key=jax.random.key(0))
        >>> round(float(res.eigenvalue), 3), bool(res.converged)
        (3.0, True)

    References:
        Yao et al., "PyHessian: Neural Networks Through the Lens of the
        Hessian", 2020; Sampson & Melchior, "Dynamics of Learning: Generative
        Schedules from Latent ODEs", 2025, Table 2 (arXiv:2509.23052).
    """
    if int(num_iters) < 1:
        raise ValueError(f"num_iters must be >= 1, got {num_iters}.")
    if not float(rtol) > 0:
        raise ValueError(f"rtol must be > 0, got {rtol}.")
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError("params has no array leaves: nothing to take a Hessian of.")
    for leaf in leaves:
        if not jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating):
            raise ValueError(
                f"every leaf of params must be floating point, got {leaf.dtype}; "
                "differentiate w.r.t. the float parameters only."
            )
    return _power_iteration(loss_fn, int(num_iters), params, args, key, float(rtol))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _power_iteration(loss_fn, num_iters, params, args, key, rtol):
    flat, unravel = ravel_pytree(params)

    def grad_flat(x):
        return ravel_pytree(jax.grad(loss_fn)(unravel(x), *args))[0]

    def hvp(v):
        return jax.jvp(grad_flat, (flat,), (v,))[1]

    v0 = jax.random.normal(key, flat.shape, flat.dtype)
    v0 = v0 / jnp.linalg.norm(v0)
    rtol = jnp.asarray(rtol, flat.dtype)

    def close(lam, residual):
        # Relative change alone stops falsely when v mixes eigenvectors of
        # eigenvalues of equal magnitude (e.g. +2 and -2): the residual does not.
        return residual <= jnp.sqrt(rtol) * jnp.abs(lam)

    def iterate(shift):
        """Power iteration on ``H - shift I``; the estimate, residual and
        stopping test are of ``H`` itself (the same eigenvectors)."""

        def cond(carry):
            i, _, lam, lam_prev, residual = carry
            steady = jnp.abs(lam - lam_prev) <= rtol * jnp.abs(lam)
            return (i < num_iters) & ~(steady & close(lam, residual))

        def body(carry):
            i, v, lam, _, _ = carry
            hv = hvp(v)
            new_lam = jnp.vdot(v, hv)
            residual = jnp.linalg.norm(hv - new_lam * v)
            av = hv - shift * v
            norm = jnp.linalg.norm(av)
            # A null direction (A v = 0) keeps v rather than dividing by zero.
            new_v = jnp.where(norm > 0, av / jnp.where(norm > 0, norm, 1.0), v)
            return i + 1, new_v, new_lam, lam, residual

        nan = jnp.asarray(jnp.nan, flat.dtype)
        i, v, _, _, _ = jax.lax.while_loop(
            cond, body, (jnp.asarray(0, jnp.int32), v0, nan, nan, nan)
        )
        hv = hvp(v)
        lam = jnp.vdot(v, hv)
        return i, lam, jnp.linalg.norm(hv - lam * v), jnp.linalg.norm(hv)

    i, lam, residual, radius = iterate(jnp.zeros((), flat.dtype))
    # Power iteration finds the eigenvalue of largest magnitude. If that is
    # negative, or v mixes eigenvalues of one magnitude and both signs, shift
    # by minus the spectral radius (|H v| estimates it): the spectrum of
    # H + radius I is then non-negative and its top is the largest eigenvalue.
    again = (lam < 0) | ~close(lam, residual)
    i2, lam, residual, _ = jax.lax.cond(
        again,
        lambda: iterate(-radius),
        lambda: (jnp.asarray(0, jnp.int32), lam, residual, radius),
    )
    return SharpnessResult(lam, residual, i + i2, close(lam, residual))
