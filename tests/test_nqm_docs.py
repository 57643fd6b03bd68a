"""docs/nqm.md states the minibatch targets the code uses."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from optax_lode.tasks.nqm import NoisyQuadratic

DOC = Path(__file__).resolve().parents[1] / "docs" / "nqm.md"


def test_the_documented_minibatch_targets_give_the_documented_gradient():
    """``1/2 sum h (theta - xi)^2`` has gradient ``H theta + eps`` only for
    ``xi = -eps / h``; the page said ``xi = eps / h``."""
    text = " ".join(DOC.read_text().split())
    assert re.search(r"`xi = -eps / h`", text), "docs/nqm.md: xi = -eps / h"
    assert "`xi = eps / h`" not in text
    # The value is that of the documented targets, xi = -eps / h.
    task = NoisyQuadratic(dim=5, report="minibatch")
    theta, key, step = jnp.arange(1.0, 6.0), jax.random.key(3), 7
    h = jnp.asarray(task.curvature)
    eps = jax.grad(lambda p: task.train_loss(p, (), step, key)[0])(theta) - h * theta
    xi = -eps / h
    value = float(task.train_loss(theta, (), step, key)[0])
    np.testing.assert_allclose(
        value, 0.5 * float(jnp.sum(h * (theta - xi) ** 2)), rtol=1e-5
    )
