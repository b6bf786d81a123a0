"""Evaluating baseline and DSPy methods inside HELM, on the same test instances, with records for reports.

For one scenario and one model, each method is one HELM run (two for a cross-fitted optimizer,
one per fold) through HELM's own ``Runner``, adapter and metrics:

* ``baseline``: HELM's own run spec and prompt, through the model's HELM deployment;
* ``ZeroShotPredict`` / ``ZeroShotCoT``: the DSPy programs with no optimization;
* every optimizer: its saved agent.

DSPy methods see HELM's zero-shot prompt (``max_train_instances=0``): it is the prompt they were
optimized on, and the agent carries its own demos. Each finished run leaves an evaluation record
(written atomically), so an interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helm_optimizer._env import package_versions
from helm_optimizer._io import check_writable, file_lock, fingerprint, read_json
from helm_optimizer.config import LMConfig
from helm_optimizer.errors import ConfigError, DataError, HelmOptimizerError, HelmRunError, UnknownNameError
from helm_optimizer.ledger import LedgerTotals, UsageLedger
from helm_optimizer.naming import (
    METHOD_BASELINE,
    METHOD_ZS_COT,
    METHOD_ZS_PREDICT,
    ZERO_SHOT_METHODS,
    agent_deployment_name,
    agent_path,
    cell_lock_path,
    deployment_name,
    helm_run_name,
    parse_run_entry,
    record_path,
    scenario_key,
)
from helm_optimizer.records import (
    AgentMeta,
    EvaluationInputs,
    EvaluationRecord,
    HelmOfficial,
    Usage,
    read_record,
    write_record,
)
from helm_optimizer.replies import check_answering, heartbeat, reset_all

__all__ = ["EvaluationRequest", "EvaluationResult", "check_methods", "evaluate_methods"]

if TYPE_CHECKING:
    from helm_optimizer.lm import Prices

logger = logging.getLogger(__name__)

DEFAULT_METHODS = (METHOD_BASELINE, METHOD_ZS_PREDICT, METHOD_ZS_COT)


@dataclass(frozen=True)
class EvaluationRequest:
    scenario: str
    lm: LMConfig
    methods: tuple[str, ...]
    output_dir: Path
    suite: str = "helm-optimizer"
    seed: int = 0
    eval_limit: int | None = None
    data_dir: str | None = None
    plugins: tuple[str, ...] = ()
    num_threads: int = 4
    helm_deployment: str | None = None
    metric: str | None = None
    # -- issue 13: provenance, contamination, decoding, optimizer seeds --------------------------------
    on_overlap: str = "refuse"
    """What to do with an agent whose demos or instructions quote a test question: refuse or drop them."""
    optimizer_seeds: tuple[int, ...] | None = None
    """Optimizer seeds of a multi-seed sweep: one agent per seed (``<optimizer>.seed<s>.json``)."""
    allow_model_mismatch: bool = False
    """Evaluate even when ``helm_deployment`` serves another model than ``lm.model`` (recorded, flagged)."""
    cache_dir: Path | None = None
    """Instance cache (default: the package's cache root)."""

    @property
    def helm_output(self) -> Path:
        return self.output_dir / "helm" / "benchmark_output"

    @property
    def local_path(self) -> Path:
        return self.output_dir / "helm" / "prod_env"

    @property
    def agents_dir(self) -> Path:
        return self.output_dir / "agents"


def _agent_folds(req: EvaluationRequest, scenario: str, method: str, opt_seed: int | None = None
                 ) -> list[tuple[int | None, Path, AgentMeta | None]]:
    """The agent files of ``method`` with their metadata: one, or one per cross-fitting fold.

    Folds, seed and evaluation limit come from the agents' own metadata; an evaluation asking for
    another seed or limit than the agents were optimized under is refused (it would score
    instances the agents were optimized on). ``opt_seed`` picks the agents of one optimizer seed.
    """
    from helm_optimizer.agents.store import read_meta

    single = agent_path(req.agents_dir, scenario, req.lm.model, method, None, opt_seed)
    first_fold = agent_path(req.agents_dir, scenario, req.lm.model, method, 0, opt_seed)
    candidates: list[tuple[int | None, Path]]
    if single.is_file():
        candidates = [(None, single)]
    elif first_fold.is_file():
        meta0 = read_meta(first_fold)
        n = meta0.num_folds if meta0 is not None and meta0.num_folds > 1 else 2
        candidates = [(k, agent_path(req.agents_dir, scenario, req.lm.model, method, k, opt_seed)) for k in range(n)]
        missing = [str(path) for _, path in candidates if not path.is_file()]
        if missing:
            raise ConfigError(f"The {method} agents of '{scenario}' for {req.lm.model} are cross-fitted in {n} folds "
                              f"but {missing[0]} is missing; run `helm-optimizer optimize` again to write it.")
    else:
        seed_note = f" for optimizer seed {opt_seed}" if opt_seed is not None else ""
        raise ConfigError(
            f"No {method} agent{seed_note} for scenario '{scenario}' and model {req.lm.model} in {req.agents_dir}; "
            "run `helm-optimizer optimize` first (or drop the method)."
        )
    out: list[tuple[int | None, Path, AgentMeta | None]] = []
    for fold, path in candidates:
        meta = read_meta(path)
        seed = meta.seed if meta is not None else None
        limit = meta.data.eval_limit if meta is not None else None
        if fold is not None and seed is not None and int(seed) != req.seed:
            raise ConfigError(
                f"The {method} agent {path} was optimized with seed {seed} (its fold's held-out instances depend on "
                f"it); evaluate with --seed {seed}, or optimize again with --seed {req.seed}."
            )
        if fold is not None and meta is not None and limit != req.eval_limit:
            raise ConfigError(
                f"The {method} agent {path} was optimized for an evaluation limit of {limit}; evaluate with "
                f"--max-eval-instances {limit if limit is not None else '(none)'} or optimize again."
            )
        out.append((fold, path, meta))
    return out


def check_methods(methods: Sequence[str]) -> None:
    """Every method is ``baseline``, a zero-shot program or a registered optimizer; else a one-line error."""
    from helm_optimizer.optimizers import OPTIMIZERS
    from helm_optimizer.registry import did_you_mean

    if not methods:
        raise ConfigError("No methods to evaluate; pass --methods baseline,ZeroShotCoT (or optimizer names).")
    known = [*DEFAULT_METHODS, *OPTIMIZERS.names()]
    for method in methods:
        if method not in known:
            raise UnknownNameError(
                f"Unknown method '{method}'.{did_you_mean(method, known)} Use baseline, ZeroShotPredict, "
                "ZeroShotCoT or an optimizer name (see `helm-optimizer list methods`)."
            )
    duplicates = sorted({m for m in methods if list(methods).count(m) > 1})
    if duplicates:
        raise ConfigError(f"Method '{duplicates[0]}' is listed twice in --methods; list each method once.")


def _baseline_deployment(req: EvaluationRequest) -> str:
    from helm.benchmark.model_deployment_registry import ModelDeploymentNotFoundError, get_model_deployment

    from helm_optimizer.helm.deployments import baseline_deployment, register

    if req.helm_deployment:
        name = req.helm_deployment
    else:
        name = req.lm.model
        if req.lm.api_base:
            register(baseline_deployment(req.lm.public_dict()))
    try:
        deployment = get_model_deployment(name)
    except ModelDeploymentNotFoundError:
        raise ConfigError(
            f"HELM has no deployment named '{name}' for the baseline of {req.lm.model}; set api_base (an "
            "OpenAI-compatible endpoint) or helm_deployment (a HELM deployment name)."
        ) from None
    served = deployment.model_name or name
    if req.helm_deployment and served != req.lm.model:
        message = (f"The baseline deployment '{name}' serves {served} but the DSPy methods call {req.lm.model}, so "
                   "'Δ vs baseline' would compare two models")
        if not req.allow_model_mismatch:
            raise ConfigError(f"{message}; set helm_deployment to a deployment of {req.lm.model} (or model to "
                              f"{served}), or allow_model_mismatch: true to compare them anyway.")
        logger.warning("%s (allow_model_mismatch is set).", message)
    return name


def _run_spec(name: str, args: dict[str, str], deployment: str, *, data_dir: str | None) -> Any:
    from helm.benchmark.model_deployment_registry import get_model_deployment
    from helm.benchmark.run_spec_factory import construct_run_specs
    from helm.common.object_spec import parse_object_spec

    from helm_optimizer.helm.profiles import apply_profile

    model_name = get_model_deployment(deployment).model_name or deployment
    description = name + ":" + ",".join([*(f"{k}={v}" for k, v in args.items()), f"model={model_name}",
                                         f"model_deployment={deployment}"])
    specs = construct_run_specs(parse_object_spec(description))
    if len(specs) != 1:
        raise ConfigError(f"Run entry '{description}' expands to {len(specs)} run specs; give one variant.")
    spec, _, _, _ = apply_profile(name, specs[0], data_dir)
    return spec


def _zero_shot_prompt(run_spec: Any) -> Any:
    adapter = dataclasses.replace(run_spec.adapter_spec, max_train_instances=0, num_train_trials=1)
    return dataclasses.replace(run_spec, adapter_spec=adapter)


def _scenario_state_counts(run_dir: Path) -> dict[str, Any]:
    try:
        state = read_json(run_dir / "scenario_state.json")
    except (OSError, ValueError):
        return {}
    total = failed = cached = 0
    first_error = None
    for rs in state.get("request_states", []):
        total += 1
        result = rs.get("result") or {}
        if not result.get("success", True):
            failed += 1
            first_error = first_error or str(result.get("error") or "")[:300]
        if result.get("cached"):
            cached += 1
    return {"requests": total, "failed_requests": failed, "cached_requests": cached, "first_error": first_error}


@dataclass(frozen=True)
class EvaluationResult:
    """One HELM run's record, and whether it was reused (its inputs unchanged) rather than run now."""

    record: EvaluationRecord
    path: Path
    reused: bool


def evaluate_methods(req: EvaluationRequest, *, progress: Callable[[dict[str, Any]], None] | None = None,
                     force: bool = False) -> list[EvaluationResult]:
    """Run every method of ``req`` in HELM (skipping runs whose record is current); return the records.

    One evaluation per scenario, model and set of methods at a time: a second one fails at once
    instead of paying for the same calls; run again afterwards and it finds the records current.
    """
    key = scenario_key(req.scenario)
    cell = record_path(req.output_dir, key, req.lm.model, METHOD_BASELINE).parent
    methods = "methods-" + fingerprint(sorted(req.methods))[:16]  # runs of other methods may go side by side
    with file_lock(cell_lock_path(req.output_dir, "evaluate", key, req.lm.model, methods), what="evaluate",
                   target=cell):
        return _evaluate_methods(req, progress=progress, force=force)


def _evaluate_methods(req: EvaluationRequest, *, progress: Callable[[dict[str, Any]], None] | None,
                      force: bool) -> list[EvaluationResult]:
    from helm_optimizer.agents.store import agent_digest
    from helm_optimizer.helm.deployments import (
        agent_deployments,
        agent_file_deployment,
        attach_usage_ledger,
        register,
    )
    from helm_optimizer.helm.loading import prepare_helm
    from helm_optimizer.helm.runner import run_benchmark
    from helm_optimizer.helm.subsets import evaluation_run_spec
    from helm_optimizer.helm.task import build_task
    from helm_optimizer.lm import prices_for
    from helm_optimizer.scenarios.dataset import evaluation_data_fingerprint

    emit = progress or (lambda _e: None)
    reset_all()  # every endpoint is presumed to answer until a call shows otherwise
    check_methods(req.methods)
    check_writable(req.output_dir)  # fail before any LM call
    # The run's own prod_env first (as helm-run reads it), so that this run's deployments below win.
    prepare_helm(plugins=req.plugins, local_path=req.local_path if req.local_path.is_dir() else None)
    task = build_task(req.scenario, data_dir=req.data_dir, plugins=req.plugins, metric=req.metric)
    name, args = parse_run_entry(req.scenario)
    args = {k: v for k, v in args.items() if k not in ("model", "model_deployment")}
    lm_public = req.lm.public_dict()
    answer_settings = {k: v for k, v in lm_public.items() if k not in ("api_base", "timeout", "num_retries")}
    prices = prices_for(req.lm)
    data_fp = evaluation_data_fingerprint(task, req.output_dir / "cache")
    versions = package_versions()
    records: list[EvaluationResult] = []
    checks: dict[str, Any] = {}  # the test split (loaded once) and each agent's provenance checks
    for method in req.methods:
        # fold, folds, deployment, agent file evaluated (a checked copy under drop), opt seed, the agent file itself
        runs: list[tuple[int | None, int, str, Path | None, int | None, Path | None]]
        if method == METHOD_BASELINE:
            runs = [(None, 1, _baseline_deployment(req), None, None, None)]
        elif method in ZERO_SHOT_METHODS:
            register(agent_deployments(lm_public, [method], agents_dir=None))
            runs = [(None, 1, deployment_name(req.lm.model, method), None, None, None)]
        else:
            runs = []
            for opt_seed in req.optimizer_seeds or (None,):
                agents = _agent_folds(req, task.key, method, opt_seed)
                for fold, path, meta in agents:
                    checked = _checked_agent(req, task, method, fold, opt_seed, path, meta, len(agents), checks)
                    register(agent_file_deployment(lm_public, method, scenario=task.key, fold=fold, agent_file=checked,
                                                   seed=opt_seed))
                    runs.append((fold, len(agents) if fold is not None else 1,
                                 agent_deployment_name(req.lm.model, method, task.key, fold, opt_seed), checked,
                                 opt_seed, path))
        for fold, num_folds, deployment, agent_file, opt_seed, original in runs:
            target = record_path(req.output_dir, task.key, req.lm.model, method, fold, opt_seed)
            inputs = EvaluationInputs(
                run_entry=req.scenario, lm=answer_settings, method=method, fold=fold, num_folds=num_folds,
                seed=req.seed, eval_limit=req.eval_limit, helm_deployment=req.helm_deployment,
                metric=task.main_metric, suite=req.suite, data=data_fp, versions=versions,
                agent_sha256=agent_digest(original.read_bytes()) if original else None, optimizer_seed=opt_seed,
            )
            spec_id = fingerprint(inputs.model_dump(mode="json"))
            if target.is_file() and not force:
                reusable = _reusable(target, spec_id, req.output_dir)
                if reusable is not None:
                    emit({"stage": "up to date", "method": method, "fold": fold})
                    records.append(EvaluationResult(record=reusable, path=target, reused=True))
                    continue
            spec = _run_spec(name, args, deployment, data_dir=task.data_dir)
            if method != METHOD_BASELINE:
                spec = _zero_shot_prompt(spec)
            run_name = helm_run_name(name, args, deployment, eval_limit=req.eval_limit, seed=req.seed, fold=fold)
            spec = evaluation_run_spec(spec, name=run_name, seed=req.seed, eval_limit=req.eval_limit, fold=fold,
                                       num_folds=num_folds, main_split=task.main_split)
            emit({"stage": "evaluating", "method": method, "fold": fold, "run": run_name})
            ledger = UsageLedger(req.output_dir / "helm" / "usage" / f"{fingerprint(run_name)}.jsonl").start()
            counted = attach_usage_ledger(deployment, str(ledger.path))
            started = time.perf_counter()
            with heartbeat(emit):
                result = run_benchmark(run_specs=[spec], suite=req.suite, output_path=req.helm_output,
                                       local_path=req.local_path, num_threads=req.num_threads, exit_on_error=True)
            check_answering()  # a server that stopped answering fails the evaluation with one message
            wall = time.perf_counter() - started
            run = result.runs[0]
            stat = run.stat(task.main_metric, task.main_split)
            if stat is None:
                raise HelmOptimizerError(
                    f"HELM run {run_name} produced no '{task.main_metric}' on split '{task.main_split}'; "
                    f"see {run.path / 'stats.json'}."
                )
            counts = _scenario_state_counts(run.path)
            if counts.get("requests") and counts.get("failed_requests") == counts["requests"]:
                raise HelmRunError(
                    f"Every request of HELM run {run_name} failed (first error: {counts.get('first_error')}); "
                    f"no record written. Check the model's endpoint and key, then re-run; see {run.path}."
                )
            totals = ledger.totals()
            usage = _usage(method, totals, counts, run, prices)
            record = EvaluationRecord(
                scenario=task.key, run_entry=req.scenario, model=req.lm.model, method=method,
                fold=fold, num_folds=num_folds, suite=req.suite,
                run_dir=str(run.path.resolve().relative_to(req.output_dir.resolve()))
                if run.path.resolve().is_relative_to(req.output_dir.resolve()) else str(run.path.resolve()),
                main_metric=task.main_metric, split=task.main_split,
                mean=float(stat.get("mean", stat["sum"] / max(1, stat["count"]))),
                count=int(counts.get("requests") or stat["count"]),
                helm_official=_official(task, run), deployment=deployment,
                **usage, retries=totals.retries if counted else 0, wall_time_s=round(wall, 3), **counts,
                optimization=_optimization_usage(agent_file),
                spec_fingerprint=spec_id, inputs=inputs, optimizer_seed=opt_seed,
                decoding=_decoding(method, spec, req, deployment),
                mean_completion_tokens=_mean_completion_tokens(method, usage, run),
                **checks.get(str(agent_file), {}),
            )
            write_record(target, record)
            records.append(EvaluationResult(record=record, path=target, reused=False))
            emit({"stage": "evaluated", "method": method, "fold": fold, "mean": record.mean,
                  "lm_calls": record.lm_calls, "prompt_tokens": record.prompt_tokens,
                  "completion_tokens": record.completion_tokens, "cost": record.cost})
    return records


def _reusable(target: Path, spec_id: str, output_dir: Path) -> EvaluationRecord | None:
    """The record at ``target`` when its inputs are unchanged and HELM's output behind it is intact; else None.

    A record of other inputs (data, metric, suite, agent, settings, versions), a damaged record,
    or a HELM run directory that is gone or whose ``stats.json`` / ``per_instance_stats.json``
    no longer parse means the evaluation runs again (HELM's request cache makes that cheap).
    """
    try:
        existing = read_record(EvaluationRecord, target)
    except DataError as exc:
        logger.warning("Re-running the evaluation behind an unusable record: %s", exc)
        return None
    if existing.spec_fingerprint != spec_id:
        logger.info("Re-running %s: its inputs changed", target)
        return None
    run_dir = Path(existing.run_dir) if Path(existing.run_dir).is_absolute() else output_dir / existing.run_dir
    for name in ("stats.json", "per_instance_stats.json"):
        try:
            read_json(run_dir / name)
        except (OSError, ValueError) as exc:
            logger.warning("Re-running the evaluation of %s: HELM's %s is missing or damaged (%s)", target,
                           run_dir / name, type(exc).__name__)
            return None
    return existing


def _checked_agent(req: EvaluationRequest, task: Any, method: str, fold: int | None, opt_seed: int | None,
                   path: Path, meta: AgentMeta | None, num_folds: int, checks: dict[str, Any]) -> Path:
    """Check one agent against the instances its run scores (refuse, or drop what quotes a test question)."""
    from helm_optimizer.scenarios.dataset import default_cache_root
    from helm_optimizer.scenarios.provenance import check_agent_for_run, load_test_split

    if "split" not in checks:
        checks["split"] = load_test_split(task, req.cache_dir or default_cache_root())
    target, block = check_agent_for_run(
        checks["split"], agent=path,
        meta=meta.model_dump(mode="json") if meta is not None else None, agents_dir=req.agents_dir,
        output_dir=req.output_dir,
        seed=req.seed, eval_limit=req.eval_limit, fold=fold, num_folds=num_folds, model=req.lm.model,
        on_overlap=req.on_overlap, label=f"The {method} agent {path}")
    checks[str(target)] = block
    return target


def _decoding(method: str, spec: Any, req: EvaluationRequest, deployment: str) -> dict[str, Any]:
    """What the method decoded under: HELM's adapter settings for the baseline, the LM config for DSPy."""
    if method == METHOD_BASELINE:
        from helm.benchmark.model_deployment_registry import get_model_deployment

        adapter = spec.adapter_spec
        return {"source": "HELM adapter", "max_tokens": adapter.max_tokens, "temperature": adapter.temperature,
                "stop": list(adapter.stop_sequences), "deployment": deployment,
                "model": get_model_deployment(deployment).model_name or deployment}
    from helm_optimizer.lm import dspy_decoding

    return {**dspy_decoding(req.lm), "deployment": deployment, "model": req.lm.model}


def _mean_completion_tokens(method: str, usage: dict[str, Any], run: Any) -> float | None:
    """Mean completion tokens per LM call (HELM's num_output_tokens for the baseline); None if all cached."""
    if method == METHOD_BASELINE:
        stat = run.stat("num_output_tokens")
        return None if stat is None else round(float(stat.get("mean", 0.0)), 3)
    calls = int(usage.get("lm_calls") or 0)
    return round(int(usage.get("completion_tokens") or 0) / calls, 3) if calls else None


def _official(task: Any, run: Any) -> HelmOfficial | None:
    """HELM's own main metric for the run, when it differs from the one this package reports."""
    from helm.benchmark.scenarios.scenario import create_scenario

    try:
        official = create_scenario(task.run_spec.scenario_spec).get_metadata().main_metric
    except Exception:
        return None
    if official == task.main_metric:
        return None
    stat = run.stat(official, task.main_split)
    return None if stat is None else HelmOfficial(metric=official, mean=stat.get("mean"))


def _optimization_usage(agent_file: Path | None) -> Usage | None:
    from helm_optimizer.agents.store import read_meta

    meta = read_meta(agent_file) if agent_file is not None else None
    if meta is None:
        return None
    usage = meta.usage

    def count(key: str) -> int:
        return int(usage.get(key) or 0)

    cost = usage.get("cost")
    return Usage(lm_calls=count("lm_calls"), prompt_tokens=count("prompt_tokens"),
                 completion_tokens=count("completion_tokens"), cost=None if cost is None else float(cost),
                 wall_time_s=float(meta.wall_time_s or 0.0))


def _usage(method: str, totals: LedgerTotals, counts: dict[str, Any], run: Any, prices: Prices) -> dict[str, Any]:
    """Calls and tokens of one evaluation, priced with the model's prices (cost None where unknown).

    A DSPy method's calls and tokens are what its client counted in the run's ledger (answers
    from HELM's cache cost nothing); the baseline's are HELM's own: its requests that missed
    HELM's cache, with HELM's token counts.
    """
    if method == METHOD_BASELINE:
        calls = counts.get("requests", 0) - counts.get("cached_requests", 0)
        prompt = run.stat("num_prompt_tokens")
        output = run.stat("num_output_tokens")
        n = counts.get("requests", 0)
        usage = {"lm_calls": max(0, calls),
                 "prompt_tokens": round((prompt or {}).get("mean", 0) * n) if calls else 0,
                 "completion_tokens": round((output or {}).get("mean", 0) * n) if calls else 0}
    else:
        usage = {"lm_calls": totals.lm_calls, "prompt_tokens": totals.prompt_tokens,
                 "completion_tokens": totals.completion_tokens}
    return usage | {"cost": prices.cost(usage["prompt_tokens"], usage["completion_tokens"])}


def load_records(output_dir: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted((Path(output_dir) / "evaluations").rglob("*.json")):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            logger.warning("Skipping unreadable evaluation record %s", path)
    return out


def methods_for(optimizers: Sequence[str]) -> tuple[str, ...]:
    return (*DEFAULT_METHODS, *[o for o in optimizers if o not in DEFAULT_METHODS])
