"""The one seed domain of runs, sweeps, fits and splits: [0, 2**32)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optax_lode._seeds import check_seed, check_seeds


@given(st.integers(0, 2**32 - 1))
def test_every_seed_in_the_domain_is_itself(seed):
    assert check_seed(seed) == seed and type(check_seed(seed)) is int
    assert check_seed(np.uint32(seed)) == seed
    assert check_seed(float(seed)) == seed  # a whole float is that int


@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32)))
def test_seeds_outside_the_domain_are_refused(seed):
    with pytest.raises(ValueError, match=r"whole number in \[0, 2\*\*32\); got"):
        check_seed(seed)


@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).filter(
            lambda x: not np.isfinite(x) or x != int(x)
        ),
        st.booleans(),
        st.text(),
        st.none(),
    )
)
def test_what_is_not_a_whole_number_is_refused(seed):
    with pytest.raises(ValueError, match=re.escape(f"got {seed!r}")):
        check_seed(seed)


def test_check_seeds_reads_any_iterable_once():
    assert check_seeds(iter([3, 1, 2])) == (3, 1, 2)
    assert check_seeds(range(0)) == ()
