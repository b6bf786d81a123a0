"""``run_benchmark()``: what ``helm-run`` does, callable from Python.

HELM's guide to custom modules tells wrapper scripts to call ``helm.benchmark.run.run_benchmark()``,
which HELM 0.5.16 does not have. This function takes what ``helm-run`` takes, loads configs and
plugins the way ``helm-run`` does (but fails on a plugin that does not import), runs HELM's own
``Runner`` and returns the paths and stats of every run. Results land in HELM's standard
``<output_path>/runs/<suite>/`` layout, so ``helm-summarize`` and ``helm-server`` read them.

A script beside a local plugin module can simply do::

    from helm_optimizer import run_benchmark
    run_benchmark(["my_custom_run_spec:model=openai/gpt-4o"], plugins=["my_plugin"], suite="tutorial",
                  max_eval_instances=10)

because Python puts the script's directory on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_optimizer._io import damaged_sqlite_files, move_aside
from helm_optimizer.errors import ConfigError, HelmOptimizerError, HelmRunError

__all__ = ["BenchmarkResult", "BenchmarkRun", "quarantine_damaged_caches", "quiet_stdout", "run_benchmark"]

logger = logging.getLogger(__name__)


_quiet_lock = threading.Lock()
_quiet: list[Any] = []  # [saved stdout, buffer, depth] while any thread is inside quiet_stdout()


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Swallow HELM's bare ``print`` calls (e.g. ``Looking in path: ...``) and send them to the log.

    ``sys.stdout`` is one per process: threads inside at once share one redirection, undone by the
    last to leave (nested ``redirect_stdout`` calls from several threads would restore each other's
    buffers and leave stdout redirected for good).
    """
    with _quiet_lock:
        if not _quiet:
            _quiet.extend([sys.stdout, io.StringIO(), 0])
            sys.stdout = _quiet[1]
        _quiet[2] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet[2] -= 1
            if _quiet[2] == 0:
                saved, buffer, _ = _quiet
                _quiet.clear()
                sys.stdout = saved
                text = buffer.getvalue().strip()
                if text:
                    logger.debug("HELM printed: %s", text[:2000])


@dataclass(frozen=True)
class BenchmarkRun:
    name: str
    path: Path
    stats: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def stat(self, name: str, split: str = "test") -> dict[str, Any] | None:
        for stat in self.stats:
            metric = stat.get("name", {})
            if metric.get("name") == name and metric.get("split") == split and not metric.get("perturbation"):
                return stat
        return None


@dataclass(frozen=True)
class BenchmarkResult:
    suite: str
    output_path: Path
    runs: list[BenchmarkRun]

    @property
    def suite_path(self) -> Path:
        return self.output_path / "runs" / self.suite


def _read_run(path: Path, name: str) -> BenchmarkRun:
    stats_path = path / "stats.json"
    try:
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HelmRunError(f"HELM run {name} wrote no readable stats.json in {path}: {exc}") from exc
    return BenchmarkRun(name=name, path=path, stats=stats)


def quarantine_damaged_caches(cache_dir: Path) -> list[Path]:
    """Move HELM request-cache files under ``cache_dir`` that SQLite cannot read aside, with a warning each.

    HELM opens one SQLite file per client and fails every request of a run in worker threads when
    one is damaged (a copy cut short, a full disk). A damaged file is renamed, never deleted; HELM
    starts a fresh one, and only the requests it held are asked again. Returns the new paths.
    """
    moved = []
    for path, problem in damaged_sqlite_files(cache_dir, "*.sqlite"):
        target = move_aside(path)
        logger.warning("The HELM request cache %s is damaged (%s); moved it aside to %s and continuing with a "
                       "fresh one (its requests are made again).", path, problem, target.name)
        moved.append(target)
    return moved


def run_benchmark(
    run_entries: Sequence[str] = (),
    *,
    run_specs: Sequence[Any] = (),
    suite: str = "default",
    max_eval_instances: int | None = None,
    plugins: Sequence[str] = (),
    output_path: str | os.PathLike[str] = "benchmark_output",
    local_path: str | os.PathLike[str] = "prod_env",
    num_threads: int = 4,
    models_to_run: Sequence[str] | None = None,
    num_train_trials: int | None = None,
    skip_completed_runs: bool = False,
    exit_on_error: bool = True,
    disable_cache: bool = False,
    dry_run: bool = False,
) -> BenchmarkResult:
    """Run HELM on ``run_entries`` (``helm-run --run-entries`` syntax) and/or ready ``run_specs``."""
    from helm_optimizer.helm.loading import prepare_helm, validate_run_spec_classes

    if not run_entries and not run_specs:
        raise ConfigError("run_benchmark needs run entries (e.g. 'mmlu:subject=anatomy,model=openai/gpt2') "
                          "or run specs.")
    prepare_helm(plugins=plugins, local_path=local_path)

    from helm.benchmark.presentation.run_entry import RunEntry
    from helm.benchmark.run import run_benchmarking, run_entries_to_run_specs
    from helm.benchmark.runner import RunnerError, set_benchmark_output_path
    from helm.common.authentication import Authentication

    output_path = Path(output_path)
    output_path.mkdir(parents=True, exist_ok=True)
    Path(local_path).mkdir(parents=True, exist_ok=True)
    set_benchmark_output_path(str(output_path))

    specs = list(run_specs)
    if run_entries:
        entries = [RunEntry(description=d, priority=1, groups=None) for d in run_entries]
        for entry in run_entries:
            if "model=" not in entry and not models_to_run:
                raise ConfigError(f"Run entry '{entry}' names no model; add ',model=...' or pass models_to_run.")
        try:
            specs.extend(run_entries_to_run_specs(entries, max_eval_instances=max_eval_instances,
                                                  num_train_trials=num_train_trials,
                                                  models_to_run=list(models_to_run) if models_to_run else None))
        except HelmOptimizerError:
            raise
        except ValueError as exc:
            raise ConfigError(f"HELM could not build the run entries: {exc}") from exc
    if not specs:
        raise ConfigError("The run entries produced no run specs (all filtered out by models_to_run?).")
    for spec in specs:
        validate_run_spec_classes(spec)
    if not disable_cache:
        quarantine_damaged_caches(Path(local_path) / "cache")

    try:
        with quiet_stdout():
            run_benchmarking(
                run_specs=specs, auth=Authentication(""), url=None, local_path=str(local_path),
                num_threads=num_threads, output_path=str(output_path), suite=suite, dry_run=dry_run,
                skip_instances=False, cache_instances=False, cache_instances_only=False,
                skip_completed_runs=skip_completed_runs, exit_on_error=exit_on_error, runner_class_name=None,
                mongo_uri=None, disable_cache=disable_cache,
            )
    except RunnerError as exc:
        raise HelmRunError(f"HELM runs failed: {exc}; see the log for each run's error.") from exc
    except HelmOptimizerError:
        raise
    except Exception as exc:
        raise HelmRunError(f"HELM run failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc

    runs_dir = output_path / "runs" / suite
    runs = [_read_run(runs_dir / spec.name, spec.name) for spec in specs if (runs_dir / spec.name).is_dir()]
    return BenchmarkResult(suite=suite, output_path=output_path, runs=runs)
