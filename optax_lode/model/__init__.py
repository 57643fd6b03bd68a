"""The latent ODE of training dynamics and its artifact."""

from optax_lode.model._latent_ode import SOLVERS, LatentODE
from optax_lode.model._normalisation import FEATURES, Normalisation

__all__ = ["FEATURES", "SOLVERS", "LatentODE", "Normalisation"]
