"""Feature normalisation of the ``(loss, metric, lr)`` tick records."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

FEATURES: tuple[str, str, str] = ("loss", "metric", "lr")
"""The model's three features, in column order."""

# The smallest normal float32: a std floor the float32 model can still divide by.
_TINY = float(np.finfo(np.float32).tiny)


class Normalisation(eqx.Module):
    """Standardisation of ``(log loss, metric, log lr)``.

    ``forward`` maps raw tick records ``(loss, metric, lr)`` to the model's
    normalised features ``((log loss - m0)/s0, (metric - m1)/s1, (log lr - m2)/s2)``;
    ``inverse`` maps them back. Loss and learning rate are log-transformed because
    both span orders of magnitude across a sweep.

    Attributes:
        mean: ``(3,)`` means of ``log loss``, ``metric``, ``log lr``.
        std: ``(3,)`` standard deviations of the same (strictly positive).

    Examples:
        >>> import numpy as np
        >>> norm = Normalisation(mean=np.zeros(3), std=np.ones(3))
        >>> x = norm.forward(np.array([1.0, 0.5, 1.0]))
        >>> np.allclose(norm.inverse(x), [1.0, 0.5, 1.0])
        True
    """

    mean: Float[Array, " 3"]
    std: Float[Array, " 3"]

    def __init__(self, mean: Float[ArrayLike, " 3"], std: Float[ArrayLike, " 3"]):
        """Normalisation with the given statistics (stored as float32).

        Args:
            mean: means of ``log loss``, ``metric`` and ``log lr``, finite.
            std: their standard deviations, finite and > 0.

        Raises:
            ValueError: ``mean`` or ``std`` is not of shape ``(3,)``, or (when
                concrete, not traced) not finite, or a std is not > 0.
        """
        mean = jnp.asarray(mean, dtype=jnp.float32)
        std = jnp.asarray(std, dtype=jnp.float32)
        if mean.shape != (3,) or std.shape != (3,):
            raise ValueError(
                f"Normalisation mean and std must have shape (3,) for {FEATURES}; "
                f"got {mean.shape} and {std.shape}."
            )
        try:
            m, s = np.asarray(mean), np.asarray(std)
        except jax.errors.TracerArrayConversionError:
            pass  # built under a transformation: checked where it was concrete
        else:
            # A zero std divides by zero; a negative one flips a feature's sign.
            if not (np.isfinite(m).all() and np.isfinite(s).all() and (s > 0).all()):
                raise ValueError(
                    f"Normalisation needs a finite mean and a finite std > 0 for "
                    f"each of {FEATURES}; got mean {m.tolist()}, std {s.tolist()}."
                )
        self.mean = mean
        self.std = std

    @classmethod
    def identity(cls, lr_center: float = 1e-2) -> Normalisation:
        """Unit statistics, the learning rate centred on ``lr_center`` (untrained).

        What an untrained :class:`~optax_lode.LatentODE` uses: mean 0 and std 1
        for ``log loss`` and ``metric``, mean ``log(lr_center)`` and std 1 for
        ``log lr``.

        Args:
            lr_center: the learning rate that normalises to 0, > 0.

        Returns:
            The normalisation.

        Raises:
            ValueError: ``lr_center`` is not finite and > 0 (its log is not
                finite).

        Examples:
            >>> norm = Normalisation.identity(1e-3)
            >>> [round(float(x), 4) for x in norm.forward([1.0, 0.5, 1e-3])]
            [0.0, 0.5, 0.0]
        """
        return cls(
            mean=np.array([0.0, 0.0, np.log(lr_center)]), std=np.ones(3, np.float32)
        )

    @classmethod
    def from_data(
        cls,
        raw: Float[ArrayLike, "*rows 3"],
        mask: Bool[ArrayLike, "*rows"] | None = None,
        *,
        min_std: float = 1e-6,
    ) -> Normalisation:
        """Statistics of the valid rows of ``raw`` (``(..., 3)`` loss, metric, lr).

        Args:
            raw: raw tick records; loss and lr must be positive where valid.
            mask: boolean, ``raw.shape[:-1]``; ``None`` means every row is valid.
            min_std: floor on the standard deviations, so a constant feature (a
                constant learning rate, say) does not divide by zero. The
                metric's, in its own units, is ``min_std`` times its largest
                magnitude: the same runs with the metric in other units
                normalise the same (the loss and lr enter as logs, unitless).

        Returns:
            The normalisation whose ``forward`` standardises those rows.

        Raises:
            ValueError: ``min_std`` is not finite and > 0, ``raw`` does not
                end in 3 features, no row is valid, a valid row is not finite,
                or a valid loss or learning rate is not > 0.

        Examples:
            >>> import numpy as np
            >>> raw = np.array([[1.0, 0.1, 1e-2], [np.e, 0.3, 1e-2]])
            >>> norm = Normalisation.from_data(raw)
            >>> [round(float(m), 3) for m in norm.mean]
            [0.5, 0.2, -4.605]
        """
        if not (math.isfinite(min_std) and min_std > 0):
            raise ValueError(f"min_std must be finite and > 0; got {min_std}.")
        raw = np.asarray(raw, dtype=np.float64)
        if raw.shape[-1] != 3:
            raise ValueError(f"raw must end in 3 features {FEATURES}; got {raw.shape}.")
        rows = raw.reshape(-1, 3)
        if mask is not None:
            rows = rows[np.asarray(mask, bool).reshape(-1)]
        if rows.shape[0] == 0:
            raise ValueError("Normalisation.from_data needs at least one valid row.")
        if not np.all(np.isfinite(rows)):
            raise ValueError("Normalisation.from_data got non-finite valid rows.")
        if np.any(rows[:, 0] <= 0) or np.any(rows[:, 2] <= 0):
            raise ValueError("loss and lr must be positive (they are log-transformed).")
        feats = np.stack([np.log(rows[:, 0]), rows[:, 1], np.log(rows[:, 2])], -1)
        # An absolute floor would let the metric's units decide whether its
        # spread is "constant" (a metric in units of 1e-7 would hit it). Tiny,
        # not 0, for a metric that is 0 throughout.
        metric_floor = max(min_std * np.abs(rows[:, 1]).max(), _TINY)
        floor = np.array([min_std, metric_floor, min_std])
        return cls(mean=feats.mean(0), std=np.maximum(feats.std(0), floor))

    def forward(self, raw: Float[ArrayLike, "... 3"]) -> Float[Array, "... 3"]:
        """Raw ``(loss, metric, lr)`` -> normalised features.

        Jittable and elementwise over the leading axes; a loss or rate of 0 or
        below gives a non-finite feature (it has no log), never an error.

        Args:
            raw: raw tick records, the features on the last axis.

        Returns:
            ``((log loss - m0)/s0, (metric - m1)/s1, (log lr - m2)/s2)``, of
            ``raw``'s shape.

        Examples:
            >>> import numpy as np
            >>> norm = Normalisation(mean=[0.0, 0.5, np.log(1e-2)], std=[1.0, 0.5, 2.0])
            >>> [round(float(x), 4) for x in norm.forward([np.e, 1.0, 1e-2])]
            [1.0, 1.0, 0.0]
        """
        raw = jnp.asarray(raw)
        feats = jnp.stack(
            [jnp.log(raw[..., 0]), raw[..., 1], jnp.log(raw[..., 2])], axis=-1
        )
        # Lifted to feats' rank as jnp's implicit promotion would (the same
        # program), so a user's jax_numpy_rank_promotion="raise" holds.
        mean, std = (_to_rank(v, feats.ndim) for v in (self.mean, self.std))
        return (feats - mean) / std

    def inverse(self, normalised: Float[ArrayLike, "... 3"]) -> Float[Array, "... 3"]:
        """Normalised features -> raw ``(loss, metric, lr)``; undoes :meth:`forward`.

        Args:
            normalised: normalised features, on the last axis.

        Returns:
            Raw ``(loss, metric, lr)`` of ``normalised``'s shape (loss and
            rate positive, or 0 or inf where their exponential under- or
            overflows).

        Examples:
            >>> import numpy as np
            >>> norm = Normalisation(mean=[0.0, 0.5, np.log(1e-2)], std=[1.0, 0.5, 2.0])
            >>> [round(float(x), 4) for x in norm.inverse([0.0, 1.0, 0.0])]
            [1.0, 1.0, 0.01]
        """
        feats = jnp.asarray(normalised)
        mean, std = (_to_rank(v, feats.ndim) for v in (self.mean, self.std))
        feats = feats * std + mean
        return jnp.stack(
            [jnp.exp(feats[..., 0]), feats[..., 1], jnp.exp(feats[..., 2])], axis=-1
        )


def _to_rank(v: Array, ndim: int) -> Array:
    return jax.lax.broadcast_to_rank(jnp.asarray(v), ndim)
