"""``helm-optimizer optimize``: one scenario, one optimizer, one model -> saved agent(s).

Reproducible (every random choice takes the seed; LM answers are cached on disk per output
directory, so a repeated run makes no LM calls and writes byte-identical agents), budgeted
(``max_calls`` / ``max_cost`` stop the run before anything is written), and secret-free (keys are
read from the environment and never reach a file or a log).
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_optimizer._env import package_versions
from helm_optimizer._io import check_writable, file_lock, fingerprint, os_error
from helm_optimizer.config import OptimizeConfig
from helm_optimizer.errors import BudgetExceededError, DataError, HelmOptimizerError, ModelError, caused_by
from helm_optimizer.lm_cache import configure_response_cache
from helm_optimizer.naming import agent_path, cell_lock_path
from helm_optimizer.records import AgentData, AgentMeta, AgentScores
from helm_optimizer.replies import heartbeat, reset_all
from helm_optimizer.scenarios.provenance import optimized_on

__all__ = ["AgentResult", "OptimizeResult", "ProgressSink", "config_fingerprint", "optimize", "package_versions"]

logger = logging.getLogger(__name__)

ProgressSink = Callable[[dict[str, Any]], None]
_IRRELEVANT = {"num_threads", "cache", "max_calls", "max_cost", "fold"}
_IRRELEVANT_LM = {"api_base", "timeout", "num_retries", "api_key_env"}


def config_fingerprint(config: OptimizeConfig) -> str:
    """Hash of everything in the config that can change the agent (not threads, budgets or endpoints)."""
    data = config.public_dict()
    for key in _IRRELEVANT:
        data.pop(key, None)
    for lm_key in ("lm", "prompt_lm"):
        if data.get(lm_key):
            data[lm_key] = {k: v for k, v in data[lm_key].items() if k not in _IRRELEVANT_LM}
    data["data_dir"] = None  # where the files are does not matter; their content is in the data fingerprint
    return fingerprint(data)


@dataclass
class AgentResult:
    path: Path
    fold: int | None
    status: str  # "written" | "up to date"
    val_before: float | None
    val_after: float | None
    usage: dict[str, Any]
    wall_time_s: float
    meta: AgentMeta


@dataclass
class OptimizeResult:
    scenario: str
    model: str
    optimizer: str
    agents: list[AgentResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def lm_calls(self) -> int:
        return sum(int(a.usage.get("lm_calls") or 0) for a in self.agents if a.status == "written")


def _parse_failure_counter() -> Any:
    """A DSPy callback counting predictions whose answer the model did not format.

    One count per ``Predict`` call in which an adapter failed to parse the answer (even when the
    JSON fallback then recovered it) or that ended in ``AdapterParseError`` (including an empty
    answer, rejected before parsing). Each prediction counts once, however many parses failed.
    """
    import threading

    import dspy
    from dspy.utils.callback import BaseCallback
    from dspy.utils.exceptions import AdapterParseError

    class ParseFailures(BaseCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.count = 0
            self._lock = threading.Lock()
            self._local = threading.local()  # per thread: the stack of open predictions

        def _stack(self) -> list[list[Any]]:
            stack: list[list[Any]] | None = getattr(self._local, "stack", None)
            if stack is None:
                stack = self._local.stack = []
            return stack

        def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            if isinstance(instance, dspy.Predict):
                self._stack().append([call_id, False])

        def on_adapter_parse_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
            stack = self._stack()
            if exception is not None and stack:
                stack[-1][1] = True

        def on_module_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
            stack = self._stack()
            if not stack or stack[-1][0] != call_id:
                return
            _, misformatted = stack.pop()
            if misformatted or (exception is not None and caused_by(exception, AdapterParseError)):
                with self._lock:
                    self.count += 1

    return ParseFailures()


def _secrets(config: OptimizeConfig) -> list[str]:
    from helm_optimizer.lm import resolve_api_key

    out = []
    for lm in (config.lm, config.prompt_lm):
        if lm is None:
            continue
        key = resolve_api_key(lm)
        if key and len(key) >= 8 and key not in ("not-needed",):
            out.append(key)
    return out


def _evaluate(program: Any, devset: list[Any], metric: Any, num_threads: int) -> float | None:
    if not devset:
        return None
    from dspy.evaluate import Evaluate

    result = Evaluate(devset=devset, metric=metric, num_threads=num_threads, display_progress=False,
                      display_table=False)(program)
    return round(float(result.score) / 100.0, 6)


def optimize(config: OptimizeConfig, *, plugins: tuple[str, ...] = (), progress: ProgressSink | None = None,
             eval_limit: int | None = None) -> OptimizeResult:
    """Optimize ``config.scenario`` for ``config.lm`` with ``config.optimizer``; returns what was written."""
    from helm_optimizer.lm import UsageMeter, adapter_for, build_lm, resolve_api_key
    from helm_optimizer.optimizers import OPTIMIZERS

    emit = progress or (lambda _event: None)
    reset_all()  # every endpoint is presumed to answer until a call shows otherwise
    optimizer_cls = OPTIMIZERS.get(config.optimizer)  # unknown names fail before any work
    optimizer = optimizer_cls(config.optimizer_options)  # type: ignore[call-arg]
    resolve_api_key(config.lm)
    if config.prompt_lm is not None:
        resolve_api_key(config.prompt_lm)
    check_writable(config.output_dir)  # fail before any LM call, not when saving the agent

    emit({"stage": "loading data", "scenario": config.scenario})
    from helm_optimizer.scenarios.dataset import load_dataset

    def dataset_for(fold: int | None) -> Any:
        return load_dataset(
            config.scenario, data_dir=config.data_dir, seed=config.seed, limit=config.limit,
            val_size=config.val_size, train_size=config.train_size, fold=fold, eval_limit=eval_limit,
            plugins=plugins, metric=config.metric, cache_dir=config.resolved_cache_dir, on_overlap=config.on_overlap,
            optimizer_seed=config.optimizer_seed,
        )

    first = dataset_for(config.fold)
    folds = [first.fold] if (config.fold is not None or first.num_folds == 1) else list(range(first.num_folds))
    result = OptimizeResult(scenario=first.key, model=config.lm.model, optimizer=config.optimizer,
                            notes=list(dict.fromkeys(first.notes)))
    # One run per cell at a time: a second optimize (or a sweep's cell) of the same agent fails at once
    # instead of paying for the same calls; run again afterwards and it finds the agent up to date.
    target = agent_path(config.output_dir / "agents", first.key, config.lm.model, config.optimizer)
    # (one lock per optimizer seed: a seeds sweep optimizes the seeds of one cell side by side)
    lock = cell_lock_path(config.output_dir, "optimize", first.key, config.lm.model, config.optimizer,
                          seed=config.optimizer_seed)
    with file_lock(lock, what="optimize", target=target):
        for fold in folds:
            dataset = first if fold == first.fold else dataset_for(fold)
            result.agents.append(_optimize_one(config, optimizer, dataset, emit, UsageMeter, build_lm, adapter_for,
                                               eval_limit=eval_limit))
    return result


def _optimize_one(config: OptimizeConfig, optimizer: Any, dataset: Any, emit: ProgressSink, meter_cls: Any,
                  build_lm: Any, adapter_for: Any, *, eval_limit: int | None) -> AgentResult:
    import dspy

    from helm_optimizer.agents.program import make_program
    from helm_optimizer.agents.store import agent_path, meta_matches_agent, read_meta, save_agent, set_aside
    from helm_optimizer.optimizers.base import OptimizeContext

    agents_dir = config.output_dir / "agents"
    fold = dataset.fold if dataset.num_folds > 1 else None
    path = agent_path(agents_dir, dataset.key, config.lm.model, config.optimizer, fold, config.optimizer_seed)
    optimizer_seed = config.seed if config.optimizer_seed is None else config.optimizer_seed
    cfg_fp = config_fingerprint(config)
    data_fp = dataset.fingerprint
    stale_reason: str | None
    try:
        existing = read_meta(path) if path.exists() else None
    except DataError as exc:
        existing, stale_reason = None, f"its metadata is damaged ({exc})"
    else:
        stale_reason = None if existing is not None or not path.exists() else "it has no metadata"
    if existing is not None and not config.force:
        if not meta_matches_agent(path, existing):
            stale_reason = "the agent file does not match its metadata (an interrupted replacement?)"
        elif existing.config_fingerprint != cfg_fp:
            stale_reason = "it was written from a different configuration"
        elif existing.data.fingerprint != data_fp:
            stale_reason = "its optimization data changed"
        else:
            emit({"stage": "up to date", "path": str(path)})
            return AgentResult(path=path, fold=fold, status="up to date", val_before=existing.scores.val_before,
                               val_after=existing.scores.val_after, usage={"lm_calls": 0}, wall_time_s=0.0,
                               meta=existing)
    if stale_reason is not None and not config.force:
        kept = set_aside(path)
        logger.warning("Rebuilding the agent at %s: %s; the previous files are kept as %s (answers already paid "
                       "for come from the LM cache).", path, stale_reason, ", ".join(str(p) for p in kept) or "-")
        emit({"stage": "rebuilding", "path": str(path), "reason": stale_reason})
    _configure_cache(config)
    meter = meter_cls(max_calls=config.max_calls, max_cost=config.max_cost, concurrency=config.num_threads)
    task_lm = build_lm(config.lm, cache=config.cache, meter=meter, parallel=config.num_threads)
    prompt_lm = (build_lm(config.prompt_lm, cache=config.cache, meter=meter, parallel=config.num_threads)
                 if config.prompt_lm else task_lm)
    failures = _parse_failure_counter()
    kind = optimizer.program or config.program
    student = make_program(kind)
    metric = dataset.dspy_metric()
    started = time.perf_counter()

    def report(message: str) -> None:
        snap = meter.snapshot()
        emit({"stage": "compiling", "message": message, "elapsed": time.perf_counter() - started, **snap})

    context = OptimizeContext(
        metric=metric, feedback_metric=dataset.feedback_metric(), task_lm=task_lm, prompt_lm=prompt_lm,
        max_bootstrapped_demos=config.max_bootstrapped_demos, max_labeled_demos=config.max_labeled_demos,
        num_threads=config.num_threads, seed=optimizer_seed, auto=config.auto, options=dict(config.optimizer_options),
        progress=report,
    )
    try:
        with dspy.context(lm=task_lm, adapter=adapter_for(config.lm), usage_tracker=meter, track_usage=True,
                          callbacks=[failures], max_errors=10**9), heartbeat(emit):
            emit({"stage": "evaluating the unoptimized program", "fold": fold, **meter.snapshot()})
            val_before = _evaluate(student, dataset.val, metric, config.num_threads)
            meter.check()
            emit({"stage": f"compiling {config.optimizer}", "fold": fold, "score": val_before,
                  **meter.snapshot()})
            compiled = optimizer.compile(student, trainset=dataset.train, valset=dataset.val, context=context)
            meter.check()
            emit({"stage": "evaluating the optimized program", "fold": fold, **meter.snapshot()})
            val_after = _evaluate(compiled, dataset.val, metric, config.num_threads)
            meter.check()
    except BudgetExceededError as exc:
        raise BudgetExceededError(
            f"{exc} Stopped before writing the agent; completed LM calls are cached in {config.resolved_cache_dir}, "
            "so raising the limit and re-running resumes without paying for them again."
        ) from None
    except HelmOptimizerError:
        raise
    except Exception as exc:
        if meter.exceeded:
            raise BudgetExceededError(f"Budget exhausted: {meter.exceeded}. Nothing was written.") from exc
        if _is_connection_error(exc):
            raise ModelError(f"The model {config.lm.model} failed: {type(exc).__name__}: {_first_line(exc)}") from exc
        raise
    wall = time.perf_counter() - started
    # -- provenance (issue: evaluation bound to how the agent was made) --------------------------
    agent_check = _check_compiled(compiled, dataset, kind, config.on_overlap, path)
    # -----------------------------------------------------------------------------------------------
    usage = {**meter.snapshot(), "parse_failures": failures.count}
    if usage["failed_calls"] and not meter.answers:
        # Every call failed (wrong model name, endpoint refusing, replies without content, ...): an agent
        # built on nothing but errors would look like a real result; refuse to write it.
        raise ModelError(
            f"Every LM call to {config.lm.model} failed ({usage['failed_calls']} calls; last: {meter.last_error}); "
            "check the model name (litellm needs a provider prefix such as openai/), --api-base and the key. "
            "Nothing was written."
        )
    if dataset.val and failures.count and val_after == 0 and val_before == 0 and usage["lm_calls"] > 0:
        logger.warning("Validation scored 0 and %d answer(s) failed to parse; the model may not follow the "
                       "output format.", failures.count)
    elif failures.count or usage["failed_calls"]:
        logger.info("%d answer(s) failed to parse and %d LM call(s) failed; each scored 0 (see the agent's "
                    "metadata, usage).", failures.count, usage["failed_calls"])
    meta = AgentMeta(
        scenario=dataset.key, run_entry=config.scenario, model=config.lm.model, optimizer=config.optimizer,
        program=kind, fold=fold, num_folds=dataset.num_folds, seed=config.seed, optimizer_seed=config.optimizer_seed,
        config=config.public_dict(), config_fingerprint=config_fingerprint(config),
        data=AgentData(
            fingerprint=data_fp, train_size=len(dataset.train), val_size=len(dataset.val),
            strategy=dataset.strategy, provenance=dataset.provenance, notes=dataset.notes,
            main_metric=dataset.main_metric, eval_size=len(dataset.eval_ids),
            eval_ids_fingerprint=fingerprint(dataset.eval_ids), test_size=dataset.test_size, eval_limit=eval_limit,
        ),
        scores=AgentScores(metric=dataset.main_metric, val_before=val_before, val_after=val_after),
        optimized_on=optimized_on(dataset, seed=config.seed, optimizer_seed=optimizer_seed, eval_limit=eval_limit,
                                  model=config.lm.model,
                                  prompt_model=config.prompt_lm.model if config.prompt_lm else None),
        contamination={"optimization_data": dataset.contamination, "agent": agent_check.as_dict()},
        usage=usage, wall_time_s=round(wall, 3), versions=package_versions(),
        created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )
    emit({"stage": "saving", "path": str(path)})
    meta = save_agent(compiled, path, meta, force=True, secrets=_secrets(config))
    return AgentResult(path=path, fold=fold, status="written", val_before=val_before, val_after=val_after,
                       usage=usage, wall_time_s=wall, meta=meta)


def _check_compiled(compiled: Any, dataset: Any, kind: str, on_overlap: str, path: Path) -> Any:
    """The compiled program's demos and instructions must not quote a test question (refuse or drop)."""
    from helm_optimizer.agents.program import make_program
    from helm_optimizer.scenarios.provenance import check_agent_state

    default = make_program(kind).predictors()[0].signature.instructions
    check = check_agent_state(compiled.dump_state(), dataset.reference_questions, on_overlap=on_overlap,
                              default_instruction=default, where=f"The optimized agent for {path}")
    if check.cleaned is not None:
        compiled.load_state(check.cleaned)
    return check


_cache_configured: str | None = None


def _configure_cache(config: OptimizeConfig) -> None:
    """Point DSPy's response cache at ``<cache dir>/dspy`` (one cache per output directory).

    Damaged cache files are moved aside with a warning (see :mod:`helm_optimizer.lm_cache`).
    """
    global _cache_configured
    target = str((config.resolved_cache_dir / "dspy").resolve()) if config.cache else "off"
    if _cache_configured == target:
        return
    if config.cache:
        try:
            Path(target).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_error(target, exc) from exc
        configure_response_cache(Path(target))
    else:
        configure_response_cache(None)
    _cache_configured = target


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""


_CONNECTION_ERRORS = {"APIConnectionError", "ConnectError", "ConnectionError", "ServiceUnavailableError",
                      "AuthenticationError", "LMAuthenticationError", "NotFoundError", "Timeout", "ReadTimeout"}


def _is_connection_error(exc: BaseException) -> bool:
    return caused_by(exc, lambda e: type(e).__name__ in _CONNECTION_ERRORS or "Connection" in type(e).__name__)
