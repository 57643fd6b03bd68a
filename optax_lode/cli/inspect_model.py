"""``optax-lode inspect``: print a model file's header in readable form."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    """Adds the ``inspect`` subcommand."""
    p = subparsers.add_parser(
        "inspect",
        help="print a model file's header",
        description=(
            "Validate a model file (format version, checksums, array shapes) and "
            "print its header: T, the runs' steps per tick, mu, features, "
            "normalisation, learning-rate range, "
            "hyperparameters and training summary, and the model's content digest."
        ),
    )
    p.add_argument("model", type=Path, help="model file written by fit/save_model")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the raw JSON header instead (no content digest: "
        "optax_lode.model.model_digest computes it)",
    )
    p.set_defaults(func=run)


def _fmt(values, digits=4) -> str:
    return "[" + ", ".join(f"{v:.{digits}g}" for v in values) + "]"


def format_header(header: dict, digest: str | None = None) -> str:
    """The header as aligned ``key: value`` lines (and the model's content
    digest, :func:`optax_lode.model.model_digest`, when given)."""
    hp = header["hyperparameters"]
    norm = header["normalisation"]
    path = header["best_lr_path"]
    training = dict(header.get("training") or {})
    history = training.pop("history", [])
    clock = training.pop("steps_per_tick", None)
    negated = training.pop("metric_negated", False)
    lines = [
        ("format", f"{header['kind']} v{header['format_version']}"),
        # Not needed to load the model, so a (hand-made) header may lack it.
        ("written by", f"optax-lode {header.get('library_version', '(not recorded)')}"),
        ("features", ", ".join(header["features"])),
        ("T (ticks per run)", header["T"]),
        (
            "steps per tick",
            "(not recorded: lode_schedule cannot check the clock; record it "
            "with model.with_steps_per_tick(k), or fit with "
            "--optimizer-steps-per-tick K)"
            if clock is None
            else f"{clock} (lode_schedule(..., steps_per_tick={clock}))",
        ),
        (
            "metric",
            "negated before the fit (a lower-is-better metric): pass "
            "lode_schedule's update val_metric=-<your metric>"
            if negated
            else "as given to fit (higher is better)",
        ),
        ("mu (window, ticks)", header["mu"]),
        (
            "model",
            f"latent {hp['latent_size']}, hidden {hp['hidden_size']}, "
            f"depth {hp['depth']}, solver {hp['solver']}, "
            f"{hp.get('ticks_per_step', 1)} tick(s) per step",
        ),
        ("normalisation mean", _fmt(norm["mean"]) + "  (log loss, metric, log lr)"),
        ("normalisation std", _fmt(norm["std"])),
        ("lr range", _fmt(header["lr_range"])),
        (
            "best run's lr path",
            f"{len(path)} ticks, first {path[0]:.4g}, min {min(path):.4g}, "
            f"max {max(path):.4g}, last {path[-1]:.4g}",
        ),
        ("arrays", f"{len(header['leaves'])} leaves, {header['payload_bytes']} bytes"),
    ]
    if digest is not None:
        lines.append(("model digest", digest))
    for key in sorted(training):
        value = training[key]
        if isinstance(value, list) and len(value) > 6:
            value = f"{len(value)} items"
        lines.append((f"training.{key}", value))
    if history:
        lines.append(("training.history", f"{len(history)} evaluations"))
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in lines)


def run(args: argparse.Namespace) -> int:
    """Runs ``optax-lode inspect``."""
    from optax_lode.model import load_model, model_digest, read_header

    try:
        header = read_header(args.model)
        model = load_model(args.model)  # also checks the arrays against the header
    except (ValueError, FileNotFoundError) as err:
        print(f"optax-lode inspect: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(header, indent=2))
    else:
        print(format_header(header, model_digest(model)))
    return 0
