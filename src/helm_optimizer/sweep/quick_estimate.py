"""Quick estimates of the LM calls each sweep cell makes, from the config alone (no data loaded).

The full pre-flight estimate (``sweep --dry-run``: tokens, cost, wall time from the real prompts and
the endpoints' limits) is :mod:`helm_optimizer.sweep.estimate`; this one is instant, for the ETA.

The live display turns them into an ETA: calls still to make divided by the recent throughput.
Estimates count calls a run makes without any cache; answers already cached make a resumed run
quicker than estimated. Cross-fitted scenarios optimize once per fold, which the config does not
tell: their optimization cells are estimated for one fold. ``None`` means no estimate (a plugin's
optimizer, or an evaluation without ``eval_limit``).
"""

from __future__ import annotations

import math

from helm_optimizer.naming import METHOD_ZS_COT, METHOD_ZS_PREDICT
from helm_optimizer.sweep.config import SweepConfig

__all__ = ["estimate_calls", "optimization_sizes"]

# The dataset's defaults when the config sets neither ``limit`` nor sizes (scenarios.dataset).
_DEFAULT_VAL, _DEFAULT_TRAIN = 200, 500
# MIPROv2's ``auto`` settings (DSPy): candidate count and validation cap.
_MIPRO_AUTO = {"light": (6, 100), "medium": (12, 300), "heavy": (18, 1000)}


def optimization_sizes(config: SweepConfig) -> tuple[int, int]:
    """(training, validation) examples per optimization cell, as the dataset would split them at most."""
    if config.limit is not None:
        val = config.limit // 2
        return config.limit - val, val
    return (config.train_size or _DEFAULT_TRAIN, config.val_size or _DEFAULT_VAL)


def _bootstrap_calls(n_train: int, max_demos: int) -> int:
    """Calls to bootstrap one demo set: up to ``max_demos`` successes, a couple of misses per success."""
    return min(n_train, 2 * max_demos + 2)


def _compile_calls(config: SweepConfig, optimizer: str) -> int | None:
    n_train, n_val = optimization_sizes(config)
    options = config.optimizer_options.get(optimizer, {})
    demos = config.max_bootstrapped_demos
    if optimizer in (METHOD_ZS_PREDICT, METHOD_ZS_COT, "LabeledFewShot"):
        return 0
    if optimizer == "BootstrapFewShot":
        return _bootstrap_calls(n_train, demos)
    if optimizer == "BootstrapFewShotWithRandomSearch":
        candidates = int(options.get("num_candidate_programs", 16))
        # every candidate (3 fixed + N bootstrapped) scored on the validation set; N + 1 bootstraps
        return (candidates + 3) * n_val + (candidates + 1) * _bootstrap_calls(n_train, demos)
    if optimizer == "MIPROv2":
        if "num_candidates" in options:
            candidates, cap = int(options["num_candidates"]), n_val
        else:
            candidates, cap = _MIPRO_AUTO[config.auto or "light"]
        val = min(n_val, cap)
        trials = int(options.get("num_trials") or max(4 * math.log2(max(candidates, 2)), 1.5 * candidates))
        batch = min(int(options.get("minibatch_size", 35)), val)
        full_evals = trials // 5 + 1 if batch < val else 0
        proposals = candidates + 10  # instruction proposals, data and program summaries (prompt model)
        return candidates * _bootstrap_calls(n_train, demos) + proposals + trials * batch + full_evals * val
    return None


def estimate_calls(config: SweepConfig, kind: str, optimizer: str | None = None) -> int | None:
    """Estimated LM calls of one optimization (``kind="optimize"``) or evaluation (``"evaluate"``) cell."""
    if kind == "evaluate":
        if config.eval_limit is None:
            return None
        methods = dict.fromkeys([*config.methods, *config.optimizers])
        return config.eval_limit * len(methods)
    if optimizer is None:
        return None
    compile_calls = _compile_calls(config, optimizer)
    if compile_calls is None:
        return None
    _, n_val = optimization_sizes(config)
    return 2 * n_val + compile_calls  # validation before and after, plus the optimizer's own
