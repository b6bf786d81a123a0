"""A sweep's cost before it runs: LM calls per cell from each optimizer's settings, tokens, price, wall time.

``helm-optimizer sweep CONFIG --dry-run`` (and ``validate --estimate``) loads each scenario's real
optimization and test data (no LM call) and counts, per cell:

* optimization: the validation score before (once per scenario and model: the second optimizer
  finds it in the LM cache) and after; then the optimizer's own calls — bootstraps (examples tried
  until enough pass, at an assumed share of right answers, ``estimate_accuracy``), random search's
  candidates × validation size, MIPROv2's preset (demo sets, instruction proposals, dataset
  summary, trials over instruction × demo-set pairs, repeats answered from the cache), GEPA's metric
  budget, SIMBA's steps;
* evaluation: one call per evaluated test instance and method (HELM's baseline: per train trial).

Tokens come from the real prompts (characters ÷ 4 of the adapter's messages for a sample of the
examples, with and without demos); cost from the model's configured prices, else litellm's offline
price map (unknown stays unknown); wall time from the declared limits: for each endpoint, the most
of calls × latency ÷ concurrency, calls ÷ requests per minute and tokens ÷ tokens per minute; the
sweep as long as its slowest endpoint. Optimizers this module does not know are counted as unknown.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_optimizer.sweep.cells import Cell
from helm_optimizer.sweep.config import ModelSpec, SweepConfig

__all__ = ["CellEstimate", "SweepEstimate", "estimate_sweep"]

logger = logging.getLogger(__name__)

_SAMPLE = 8  # examples formatted per scenario for token counts
_REASONING_TOKENS = 60  # a chain of thought's length, assumed
_PROPOSE_PROMPT, _PROPOSE_COMPLETION = 1500, 150  # instruction proposals, summaries, reflections
_MIPRO_PRESETS = {"light": (6, 100), "medium": (12, 300), "heavy": (18, 1000)}
_TPE_STARTUP = 10


@dataclass(frozen=True)
class _Fold:
    train: int
    val: int
    eval: int


@dataclass
class _Scenario:
    folds: list[_Fold]
    baseline_calls_per_instance: int
    # tokens of one program call: (prompt without demos, per demo, completion), by program kind
    tokens: dict[str, tuple[float, float, float]]
    baseline_prompt: float
    baseline_completion: float


@dataclass
class CellEstimate:
    label: str
    kind: str
    scenario: str
    model: str
    lm_calls: float | None
    prompt_tokens: float | None
    completion_tokens: float | None
    cost: float | None
    by_method: dict[str, float] = field(default_factory=dict)
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        def r(value: float | None, digits: int = 1) -> float | None:
            return None if value is None else round(value, digits)

        return {"cell": self.label, "kind": self.kind, "scenario": self.scenario, "model": self.model,
                "lm_calls": r(self.lm_calls), "prompt_tokens": r(self.prompt_tokens, 0),
                "completion_tokens": r(self.completion_tokens, 0), "cost": r(self.cost, 6),
                "by_method": {k: round(v, 1) for k, v in self.by_method.items()}, "note": self.note}


@dataclass
class SweepEstimate:
    cells: list[CellEstimate]
    endpoints: dict[str, dict[str, Any]]
    assumptions: list[str]

    @property
    def lm_calls(self) -> float | None:
        values = [c.lm_calls for c in self.cells]
        return None if any(v is None for v in values) else sum(v for v in values if v is not None)

    @property
    def cost(self) -> float | None:
        values = [c.cost for c in self.cells]
        return None if any(v is None for v in values) else sum(v for v in values if v is not None)

    @property
    def wall_s(self) -> float | None:
        walls = [e["wall_s"] for e in self.endpoints.values()]
        return None if any(w is None for w in walls) else max(walls, default=0.0)

    def cell(self, label: str) -> CellEstimate | None:
        return next((c for c in self.cells if c.label == label), None)

    def as_json(self) -> dict[str, Any]:
        calls, cost, wall = self.lm_calls, self.cost, self.wall_s
        return {"estimated_lm_calls": None if calls is None else round(calls),
                "estimated_cost": None if cost is None else round(cost, 4),
                "estimated_wall_s": None if wall is None else round(wall, 1),
                "endpoints": self.endpoints, "cells": [c.as_json() for c in self.cells],
                "assumptions": self.assumptions}


# ----------------------------------------------------------------------------------------------
# Optimizer call counts
# ----------------------------------------------------------------------------------------------
def bootstrap_attempts(n_train: int, wanted: int, p: float) -> float:
    """Expected examples a bootstrap tries: until ``wanted`` pass (each with probability ``p``) or none are left."""
    if wanted <= 0 or n_train <= 0:
        return 0.0

    def fewer_than_wanted(t: int) -> float:  # P(at most wanted - 1 passes among t tries)
        return sum(math.comb(t, j) * p**j * (1 - p) ** (t - j) for j in range(min(wanted, t + 1)))

    # attempt t + 1 happens iff fewer than `wanted` of the first t attempts passed
    return float(sum(fewer_than_wanted(t) for t in range(n_train)))


@dataclass(frozen=True)
class _Setting:
    train: int
    val: int
    max_bootstrapped: int
    max_labeled: int
    seed: int
    auto: str | None
    options: dict[str, Any]
    p: float


# Each formula returns [(calls, demos in the prompt or -1 for a proposal-sized prompt)], compile only.
_Formula = Callable[[_Setting], list[tuple[float, int]]]


def _random_search(s: _Setting) -> list[tuple[float, int]]:
    n = int(s.options.get("num_candidate_programs", 16))
    demos = s.max_labeled + s.max_bootstrapped
    attempts = bootstrap_attempts(s.train, s.max_bootstrapped, s.p)  # candidate -1: the unshuffled set
    for i in range(n):
        size = random.Random(i + s.seed).randint(1, max(1, s.max_bootstrapped))
        attempts += bootstrap_attempts(s.train, size, s.p)
    scored = n + 1 + (1 if s.max_labeled > 0 else 0)  # zero-shot (-3) is the "before" score, cached
    return [(attempts, s.max_labeled), (scored * s.val, demos)]


def _bootstrap(s: _Setting) -> list[tuple[float, int]]:
    return [(bootstrap_attempts(s.train, s.max_bootstrapped, s.p), s.max_labeled), (s.val, s.max_labeled)]


def _labeled(s: _Setting) -> list[tuple[float, int]]:
    return [(s.val, s.max_labeled)]  # the "after" score (demos differ from the "before" prompt)


def _mipro(s: _Setting) -> list[tuple[float, int]]:
    zeroshot = s.max_bootstrapped == 0 and s.max_labeled == 0
    if "num_candidates" in s.options or s.auto is None:
        n = int(s.options.get("num_candidates", 6))
        instruct, fewshot, val_cap = n, n, s.val
    else:
        n, val_cap = _MIPRO_PRESETS[s.auto]
        instruct, fewshot = (n if zeroshot else n // 2), n
    trials = int(s.options.get("num_trials") or max(2 * (1 if zeroshot else 2) * math.log2(n), 1.5 * n))
    v = min(s.val, val_cap)
    per_set = (1 + max(1, s.max_bootstrapped)) / 2
    boots = bootstrap_attempts(s.train, s.max_bootstrapped, s.p)
    boots += max(0, fewshot - 3) * bootstrap_attempts(s.train, round(per_set), s.p)
    summary = 0.0
    if s.options.get("data_aware_proposer", True):
        summary = 2 + min(max(0, math.ceil(s.train / 10) - 1), 9)
    per_proposal = 3 if s.options.get("program_aware_proposer", True) else 1
    proposals = max(0, min(instruct, fewshot) - 1) * per_proposal
    combos = max(1, instruct * fewshot)
    new = (combos - 1) * (1 - (1 - 1 / combos) ** trials)  # distinct pairs besides the default; repeats cached
    minibatch = s.options.get("minibatch", v > 50 if s.auto is not None else v > 35)
    if minibatch:
        batch = int(s.options.get("minibatch_size", min(35, v)))
        evals = min(trials * batch, new * v) + (trials // 5 + 1) * v * 0.5
    else:
        evals = new * v
    demos = s.max_labeled + s.max_bootstrapped
    return [(boots, s.max_labeled), (summary + proposals, -1), (evals, demos)]


def _gepa(s: _Setting) -> list[tuple[float, int]]:
    if "max_metric_calls" in s.options:
        budget = float(s.options["max_metric_calls"])
    elif "max_full_evals" in s.options:
        budget = float(s.options["max_full_evals"]) * (s.train + s.val)
    else:
        n = {"light": 6, "medium": 12, "heavy": 18}[s.auto or "light"]
        trials = int(max(2 * 2 * math.log2(n), 1.5 * n))
        budget = s.val + n * 5 + trials * 35 + ((trials + 1) // 5 + 1) * s.val
    rollouts = max(0.0, budget - s.val)  # the seed program's validation score is the cached "before"
    return [(rollouts, 0), (budget / 8, -1)]  # about one reflection per minibatch round


def _simba(s: _Setting) -> list[tuple[float, int]]:
    pool = s.train + s.val
    bsize = int(s.options.get("bsize", min(32, pool)))
    steps = int(s.options.get("max_steps", 4))
    candidates = int(s.options.get("num_candidates", 4))
    return [(steps * bsize * (candidates + 1), 1), (steps * candidates, -1), (s.val, 1)]


def _zero(s: _Setting) -> list[tuple[float, int]]:
    return []


FORMULAS: dict[str, _Formula] = {
    "BootstrapFewShotWithRandomSearch": _random_search, "BootstrapFewShot": _bootstrap,
    "LabeledFewShot": _labeled, "MIPROv2": _mipro, "GEPA": _gepa, "SIMBA": _simba,
    "ZeroShotPredict": _zero, "ZeroShotCoT": _zero,
}


# ----------------------------------------------------------------------------------------------
# The data: sizes and prompt lengths
# ----------------------------------------------------------------------------------------------
def _chars(messages: Any) -> int:
    total = 0
    for message in messages or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    return total


def _program_tokens(examples: list[Any], kind: str, adapter: Any, max_tokens: int | None) -> tuple[float, float, float]:
    """(prompt tokens without demos, tokens per demo, completion tokens) of one program call."""
    import dspy

    from helm_optimizer.agents.program import make_program

    signature = make_program(kind).predictors()[0].signature
    sample = examples[:_SAMPLE]
    if not sample:
        return 0.0, 0.0, 0.0
    zero = [_chars(adapter.format(signature, [], {"inputs": ex["inputs"]})) for ex in sample]
    demo = dspy.Example(inputs=sample[0]["inputs"], output=sample[0]["output"],
                        reasoning="x" * (_REASONING_TOKENS * 4)) if kind == "cot" else sample[0]
    with_one = _chars(adapter.format(signature, [demo], {"inputs": sample[0]["inputs"]}))
    per_demo = max(0.0, (with_one - zero[0]) / 4)
    answer = sum(len(str(ex["output"])) for ex in sample) / len(sample) / 4
    completion = answer + 15 + (_REASONING_TOKENS if kind == "cot" else 0)  # field markers or JSON keys
    if max_tokens is not None:
        completion = min(completion, float(max_tokens))
    return sum(zero) / len(zero) / 4, per_demo, completion


def _datasets(config: SweepConfig, index: int, cache_dir: Path | None) -> list[Any]:
    """The optimization data of a scenario, one dataset per fold, as the cells will load it."""
    from helm_optimizer.scenarios.dataset import load_dataset

    spec = config.scenarios[index]

    def load(fold: int | None) -> Any:
        return load_dataset(spec.entry, data_dir=spec.data_dir or config.data_dir, seed=config.seed,
                            limit=config.limit, val_size=config.val_size, train_size=config.train_size, fold=fold,
                            eval_limit=config.eval_limit, plugins=tuple(config.plugins), metric=spec.metric,
                            cache_dir=cache_dir, on_overlap=spec.on_overlap or config.on_overlap)

    first = load(None)
    return [first] + [load(k) for k in range(1, first.num_folds)]


def _scenario(datasets: list[Any], model: ModelSpec, eval_limit: int | None) -> _Scenario:
    from helm_optimizer.lm import adapter_for
    from helm_optimizer.scenarios.dataset import STRATEGY_SCENARIO

    first = datasets[0]
    # Without a subset (no eval_limit, no folds) HELM evaluates the scenario's valid split besides the test split.
    extra = int(first.counts.get("valid_pool", 0)) if first.num_folds == 1 and eval_limit is None and \
        first.strategy == STRATEGY_SCENARIO else 0
    folds = [_Fold(len(d.train), len(d.val), len(d.eval_ids) + (extra if i == 0 else 0))
             for i, d in enumerate(datasets)]
    examples = list(first.train) + list(first.val)
    lm = model.lm()
    adapter = adapter_for(lm)
    tokens = {kind: _program_tokens(examples, kind, adapter, lm.max_tokens) for kind in ("cot", "predict")}
    adapter_spec = first.scorer.task.adapter_spec if first.scorer is not None else None
    shots = int(getattr(adapter_spec, "max_train_instances", 0) or 0)
    trials = int(getattr(adapter_spec, "num_train_trials", 1) or 1)
    zero_prompt = tokens["predict"][0]
    answer = sum(len(str(ex["output"])) for ex in examples[:_SAMPLE]) / max(1, min(_SAMPLE, len(examples))) / 4
    return _Scenario(folds=folds, baseline_calls_per_instance=trials, tokens=tokens,
                     baseline_prompt=zero_prompt * (1 + shots), baseline_completion=answer + 2)


# ----------------------------------------------------------------------------------------------
# The sweep
# ----------------------------------------------------------------------------------------------
def _latency(model: ModelSpec) -> float:
    if model.limits.latency_s is not None:
        return model.limits.latency_s
    return 4.0 if model.model.startswith("local/") else 1.0


def _priced(calls: float, prompt: float, completion: float, parts: list[tuple[float, int]],
            tokens: tuple[float, float, float]) -> tuple[float, float, float]:
    base, per_demo, answer = tokens
    for n, demos in parts:
        calls += n
        if demos < 0:
            prompt += n * _PROPOSE_PROMPT
            completion += n * _PROPOSE_COMPLETION
        else:
            prompt += n * (base + demos * per_demo)
            completion += n * answer
    return calls, prompt, completion


def _program_kind(config: SweepConfig, method: str) -> str:
    from helm_optimizer.naming import METHOD_ZS_PREDICT, ZERO_SHOT_METHODS
    from helm_optimizer.optimizers import OPTIMIZERS

    if method in ZERO_SHOT_METHODS:
        return "predict" if method == METHOD_ZS_PREDICT else "cot"
    return getattr(OPTIMIZERS.get(method), "program", None) or config.program


def _optimize_cells(config: SweepConfig, data: _Scenario, s: int, m: int, prices: Any) -> list[CellEstimate]:
    cells = []
    scenario, model = config.scenarios[s].entry, config.models[m].model
    before_counted: set[str] = set()  # the unoptimized program's score: the second cell reads it from the cache
    seeds: list[int | None] = list(config.seeds) if config.seeds else [None]
    for optimizer, optimizer_seed in ((o, seed) for o in config.optimizers for seed in seeds):
        label = Cell("optimize", s, m, optimizer, optimizer_seed).label(config)
        formula = FORMULAS.get(optimizer)
        if formula is None:
            cells.append(CellEstimate(label, "optimize", scenario, model, None, None, None, None,
                                      note=f"no call model for optimizer {optimizer}"))
            continue
        kind = _program_kind(config, optimizer)
        totals = (0.0, 0.0, 0.0)
        for fold in data.folds:
            parts = [] if kind in before_counted else [(float(fold.val), 0)]
            setting = _Setting(fold.train, fold.val, config.max_bootstrapped_demos, config.max_labeled_demos,
                               config.seed if optimizer_seed is None else optimizer_seed, config.auto,
                               dict(config.optimizer_options.get(optimizer, {})), config.estimate_accuracy)
            totals = _priced(*totals, [*parts, *formula(setting)], data.tokens[kind])
        before_counted.add(kind)
        calls, prompt, completion = totals
        cells.append(CellEstimate(label, "optimize", scenario, model, calls, prompt, completion,
                                  prices.cost(round(prompt), round(completion))))
    return cells


def _evaluate_cell(config: SweepConfig, data: _Scenario, s: int, m: int, prices: Any) -> CellEstimate:
    from helm_optimizer.naming import METHOD_BASELINE, ZERO_SHOT_METHODS

    scenario, model = config.scenarios[s].entry, config.models[m].model
    n_eval = float(sum(f.eval for f in data.folds))
    per_seed = len(config.seeds) if config.seeds else 1  # an optimizer's method: one agent per optimizer seed
    by_method: dict[str, float] = {}
    prompt = completion = 0.0
    for method in dict.fromkeys([*config.methods, *config.optimizers]):
        if method == METHOD_BASELINE:
            n = n_eval * data.baseline_calls_per_instance
            prompt += n * data.baseline_prompt
            completion += n * data.baseline_completion
        else:
            demos = 0 if method in ZERO_SHOT_METHODS else config.max_labeled_demos + config.max_bootstrapped_demos
            runs = per_seed if method in config.optimizers else 1
            n, prompt, completion = _priced(0.0, prompt, completion, [(n_eval * runs, demos)],
                                            data.tokens[_program_kind(config, method)])
        by_method[method] = n
    return CellEstimate(Cell("evaluate", s, m).label(config), "evaluate", scenario, model, sum(by_method.values()),
                        prompt, completion, prices.cost(round(prompt), round(completion)), by_method=by_method)


def _endpoint(config: SweepConfig, model: ModelSpec, cells: list[CellEstimate]) -> dict[str, Any]:
    mine = [c for c in cells if c.model == model.model]
    calls = sum(c.lm_calls or 0.0 for c in mine)
    tokens = sum((c.prompt_tokens or 0.0) + (c.completion_tokens or 0.0) for c in mine)
    concurrency = model.limits.max_concurrency or config.num_threads
    latency = _latency(model)
    bounds = [calls * latency / concurrency]
    if model.limits.requests_per_minute:
        bounds.append(calls / model.limits.requests_per_minute * 60)
    if model.limits.tokens_per_minute:
        bounds.append(tokens / model.limits.tokens_per_minute * 60)
    unknown = any(c.lm_calls is None for c in mine)
    return {"lm_calls": round(calls), "tokens": round(tokens), "latency_s": latency, "max_concurrency": concurrency,
            "wall_s": None if unknown else round(max(bounds), 1)}


def estimate_sweep(config: SweepConfig, *, write_cache: bool = True) -> SweepEstimate:
    """Every cell's LM calls, tokens and cost, and the sweep's wall time under the declared limits.

    ``write_cache=False`` (a dry run) keeps the built datasets out of the sweep's output directory
    (they go to the user's cache instead).
    """
    from helm_optimizer.lm import prices_for

    cells: list[CellEstimate] = []
    loaded: dict[int, list[Any]] = {}
    for m, model in enumerate(config.models):
        prices = prices_for(model.lm())
        for s, spec in enumerate(config.scenarios):
            try:
                if s not in loaded:
                    loaded[s] = _datasets(config, s, config.output_dir / "cache" if write_cache else None)
                data = _scenario(loaded[s], model, config.eval_limit)
            except Exception as exc:  # the sweep reports the real error in its cell; the estimate says unknown
                first = str(exc).strip().splitlines()
                note = f"data not loaded: {first[0][:200] if first else type(exc).__name__}"
                seeds: list[int | None] = list(config.seeds) if config.seeds else [None]
                cells += [CellEstimate(Cell("optimize", s, m, o, seed).label(config), "optimize", spec.entry,
                                       model.model, None, None, None, None, note=note)
                          for o in config.optimizers for seed in seeds]
                cells.append(CellEstimate(Cell("evaluate", s, m).label(config), "evaluate", spec.entry, model.model,
                                          None, None, None, None, note=note))
                continue
            cells += _optimize_cells(config, data, s, m, prices)
            cells.append(_evaluate_cell(config, data, s, m, prices))
    endpoints = {model.model: _endpoint(config, model, cells) for model in config.models}
    assumptions = [
        f"{config.estimate_accuracy:.0%} of answers right while bootstrapping (estimate_accuracy)",
        "one LM call per program call: answers that fail to parse and retried attempts add calls",
        "answers already in the LM caches (a re-run) are counted as new calls",
        f"a chain of thought of ~{_REASONING_TOKENS} tokens; wall time = the slowest endpoint's calls x latency ÷ "
        "concurrency (or its per-minute limits), with latency_s from each model's limits (default 1 s; embedded 4 s)",
    ]
    return SweepEstimate(cells=cells, endpoints=endpoints, assumptions=assumptions)
