"""Sharpness by power iteration against explicitly formed Hessians."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from optax_lode.evaluation import hessian_max_eigenvalue, hessian_vector_product


def _quadratic(params, a):
    x, _ = ravel_pytree(params)
    return 0.5 * x @ a @ x


@given(seed=st.integers(0, 2**31 - 1), dim=st.integers(2, 8))
def test_matches_explicit_psd_hessian(seed, dim):
    rng = np.random.default_rng(seed)
    # Well-separated top eigenvalue so that 200 iterations converge to 1e-3.
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    eig = np.sort(rng.uniform(0.0, 1.0, size=dim))
    eig[-1] = eig[-2] * 1.5 + 0.5
    a = jnp.asarray((q * eig) @ q.T, jnp.float32)
    params = {"w": jnp.zeros(dim - 1), "b": jnp.zeros(())}
    res = hessian_max_eigenvalue(
        _quadratic, params, a, key=jax.random.key(seed), num_iters=200, rtol=1e-7
    )
    np.testing.assert_allclose(float(res.eigenvalue), eig[-1], rtol=1e-3)
    assert int(res.iterations) <= 200


def test_nonquadratic_network_loss_matches_jax_hessian():
    # A small tanh network: the Hessian depends on the point and is indefinite
    # away from a minimum; the result is its largest eigenvalue all the same.
    key = jax.random.key(1)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    params = {
        "w1": 0.5 * jax.random.normal(k1, (3, 4)),
        "w2": 0.5 * jax.random.normal(k2, (4, 1)),
    }
    x = jax.random.normal(k3, (16, 3))
    y = jax.random.normal(k4, (16, 1))

    def loss(p, x, y):
        return jnp.mean((jnp.tanh(x @ p["w1"]) @ p["w2"] - y) ** 2)

    flat, unravel = ravel_pytree(params)
    h = jax.jit(jax.hessian(lambda f: loss(unravel(f), x, y)))(flat)
    eig = np.linalg.eigvalsh(np.asarray(h, np.float64))
    assert eig[0] < 0 < eig[-1]  # indefinite
    res = hessian_max_eigenvalue(
        loss, params, x, y, key=jax.random.key(0), num_iters=500, rtol=1e-7
    )
    np.testing.assert_allclose(float(res.eigenvalue), eig[-1], rtol=5e-3)
    assert float(res.residual) < 1e-2 * abs(eig[-1])


def test_hvp_equals_hessian_times_vector():
    a = jnp.array([[2.0, 1.0], [1.0, 3.0]])
    v = jnp.array([1.0, -2.0])

    def f(x):
        return 0.5 * x @ a @ x + jnp.sum(x**3)

    x = jnp.array([0.3, -0.1])
    hv = jax.jit(hessian_vector_product, static_argnums=0)(f, x, v)
    np.testing.assert_allclose(hv, jax.jit(jax.hessian(f))(x) @ v, rtol=1e-5)


def test_batch_as_argument_does_not_recompile():
    def loss(w, x):
        return jnp.mean((x @ w) ** 2)

    w = jnp.ones(3)
    xs = [jax.random.normal(jax.random.key(i), (8, 3)) for i in range(3)]
    hessian_max_eigenvalue(loss, w, xs[0], key=jax.random.key(0))
    with jax.log_compiles():
        import logging

        records = []
        handler = logging.Handler()
        handler.emit = records.append
        logging.getLogger("jax").addHandler(handler)
        try:
            for x in xs[1:]:
                hessian_max_eigenvalue(loss, w, x, key=jax.random.key(0))
        finally:
            logging.getLogger("jax").removeHandler(handler)
    compiles = [r for r in records if "_power_iteration" in r.getMessage()]
    assert not compiles, [r.getMessage() for r in compiles]


def test_zero_hessian_gives_zero_not_nan():
    res = hessian_max_eigenvalue(
        lambda w: jnp.sum(w), jnp.ones(4), key=jax.random.key(0)
    )
    assert float(res.eigenvalue) == 0.0


@pytest.mark.parametrize(
    ("params", "kwargs", "match"),
    [
        (jnp.ones(3), {"num_iters": 0}, "num_iters"),
        (jnp.ones(3), {"rtol": 0.0}, "rtol"),
        ({}, {}, "no array leaves"),
        (jnp.ones(3, jnp.int32), {}, "floating point"),
    ],
)
def test_bad_input(params, kwargs, match):
    with pytest.raises(ValueError, match=match):
        hessian_max_eigenvalue(lambda p: 0.0, params, key=jax.random.key(0), **kwargs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_dominant_negative_or_mirrored_eigenvalue_is_not_taken_for_the_largest(
    seed,
):
    """Power iteration finds the eigenvalue of largest magnitude: -5 here, or,
    for +2 and -2, a mix of their eigenvectors whose Rayleigh quotient can
    settle anywhere in between (the relative change alone once stopped it at a
    confident wrong value). The shifted second pass finds the largest, 1 and
    2, and the residual vouches for it."""
    for spectrum, largest in (
        ([1.0, -5.0, 0.5, 0.1], 1.0),
        ([2.0, -2.0, 0.5, 0.1], 2.0),
    ):
        a = jnp.diag(jnp.array(spectrum))
        res = hessian_max_eigenvalue(
            _quadratic, {"x": jnp.zeros(4)}, a, key=jax.random.key(seed), num_iters=100
        )
        assert bool(res.converged) and float(res.residual) < 1e-2 * largest
        np.testing.assert_allclose(float(res.eigenvalue), largest, rtol=1e-3)
    well = jnp.diag(jnp.array([2.0, -1.0, 0.5, 0.1]))
    res = hessian_max_eigenvalue(
        _quadratic, {"x": jnp.zeros(4)}, well, key=jax.random.key(seed)
    )
    assert bool(res.converged) and int(res.iterations) < 100  # one pass
    np.testing.assert_allclose(float(res.eigenvalue), 2.0, rtol=1e-4)


@given(seed=st.integers(0, 2**31 - 1), dim=st.integers(2, 8))
def test_matches_the_largest_eigenvalue_of_an_indefinite_hessian(seed, dim):
    """Any signs, the most negative eigenvalue up to 4x the largest in
    magnitude: a converged result is the largest eigenvalue."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    eig = np.sort(rng.uniform(-1.0, 1.0, size=dim))
    eig[-1] = max(eig[-2], 0.0) + 0.5  # a gap at the top
    eig[0] = min(eig[0], -rng.uniform(0.0, 4.0) * eig[-1])
    a = jnp.asarray((q * eig) @ q.T, jnp.float32)
    res = hessian_max_eigenvalue(
        _quadratic, {"w": jnp.zeros(dim)}, a, key=jax.random.key(seed), num_iters=500
    )
    assert bool(res.converged)
    np.testing.assert_allclose(float(res.eigenvalue), eig[-1], rtol=2e-2)
