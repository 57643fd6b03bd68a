"""Shared pytest configuration.

Hypothesis profiles:

- ``ci`` (default): derandomized, no deadline (JAX compiles on first call), a
  bounded number of examples, so a run is reproducible and bounded in time.
- ``dev``: randomized and more examples, for hunting bugs locally:
  ``pytest --hypothesis-profile=dev``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci")
