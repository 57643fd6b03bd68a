"""The latent ODE of training dynamics, its fit, its artifact and its evaluation."""

from optax_lode.model._artifact import (
    load_model,
    model_digest,
    read_header,
    save_model,
)
from optax_lode.model._evaluate import evaluate, spearman
from optax_lode.model._fit import fit
from optax_lode.model._latent_ode import SOLVERS, LatentODE, default_ticks_per_step
from optax_lode.model._normalisation import FEATURES, Normalisation

__all__ = [
    "FEATURES",
    "SOLVERS",
    "LatentODE",
    "Normalisation",
    "default_ticks_per_step",
    "evaluate",
    "fit",
    "load_model",
    "model_digest",
    "read_header",
    "save_model",
    "spearman",
]
