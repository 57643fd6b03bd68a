"""Property tests: the NQM recurrence against an independent matrix-form reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optax_lode.tasks.nqm import NoisyQuadratic, expected_loss

NUM_STEPS = 12
TASK = NoisyQuadratic(dim=6, batch_size=3, curvature_power=0.7, init_scale=1.5)


def _reference(task, rates, momentum):
    """E[L] by propagating each coordinate's 2x2 second-moment matrix of
    (theta, v) as S <- A S A^T + b b^T q, in float64 (no expanded algebra)."""
    h = task.curvature.astype(np.float64)
    q = task.noise_variance.astype(np.float64)
    total = 0.0
    for hi, qi in zip(h, q, strict=True):
        s = np.diag([task.init_scale**2, 0.0])
        for lr in rates:
            a = np.array([[1 - lr * hi, -lr * momentum], [hi, momentum]])
            b = np.array([[-lr], [1.0]])
            s = a @ s @ a.T + (b @ b.T) * qi
        total += 0.5 * hi * s[0, 0]
    return total


@given(
    rates=st.lists(
        st.floats(1e-3, 3.0, allow_nan=False), min_size=NUM_STEPS, max_size=NUM_STEPS
    ),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
)
def test_recurrence_matches_matrix_reference(rates, momentum):
    got = float(
        expected_loss(np.asarray(rates, np.float32), task=TASK, momentum=momentum)
    )
    ref = _reference(TASK, np.asarray(rates, np.float32).astype(np.float64), momentum)
    # float32 recurrence vs float64 reference; rates up to 3 (past the edge of
    # stability) make the loss grow by orders of magnitude: relative check.
    assert got == pytest.approx(ref, rel=2e-4)


@given(init_scale=st.floats(0.1, 3.0), batch_size=st.integers(1, 64))
def test_expected_loss_is_affine_in_init_variance(init_scale, batch_size):
    # E[L_T] = (init variance) * (deterministic part) + (noise part): affine.
    rates = np.full(NUM_STEPS, 0.4, np.float32)

    def e(scale):
        task = NoisyQuadratic(dim=6, batch_size=batch_size, init_scale=scale)
        return float(expected_loss(rates, task=task))

    e_small, e_one = e(1e-3), e(1.0)
    slope = (e_one - e_small) / (1.0 - 1e-6)
    expected = e_small + slope * (init_scale**2 - 1e-6)
    assert e(init_scale) == pytest.approx(expected, rel=1e-4)


def test_non_finite_rates_rejected():
    with pytest.raises(ValueError, match="non-finite"):
        expected_loss(np.array([0.1, np.nan]), task=TASK)
