"""``helm-optimizer sweep`` and ``helm-optimizer validate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from helm_optimizer.cli._common import console, setup_logging

HELP = (
    "Run a whole sweep from one config file: optimize every scenario x model x optimizer, evaluate the baseline, "
    "zero-shot DSPy programs and every agent inside HELM on the same test instances, run helm-summarize, and "
    "write the report. Resumable: re-run the same command after an interruption."
)
VALIDATE_HELP = "Check a sweep config (keys, scenarios, optimizers, key variables, paths) without any LM call."


def sweep(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="Sweep config (.yaml or .toml).")],
    executor: Annotated[str, typer.Option("--executor", help="local (this machine) or ray.")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (default: start a local "
                                                "Ray instance).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="CPUs of the local Ray instance.")] = None,
    output_dir: Annotated[Path | None, typer.Option("--output-dir", help="Override output_dir.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0.001, help="Seconds to wait for each LM "
                                                  "reply before retrying it, for every model (overrides the "
                                                  "models' timeout).")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    from helm_optimizer.errors import ConfigError
    from helm_optimizer.sweep.config import load_sweep_config, validate_sweep, with_timeout

    if executor not in ("local", "ray"):
        raise ConfigError(f"Unknown executor '{executor}'; use local or ray.")
    config = load_sweep_config(config_path)
    if output_dir is not None:
        config = config.model_copy(update={"output_dir": output_dir})
    if timeout is not None:
        config = with_timeout(config, timeout)
    log_path = setup_logging(config.output_dir / "logs", verbose=verbose)
    validate_sweep(config, source=config_path)
    from helm_optimizer.cli.progress import SweepProgress
    from helm_optimizer.cli.summary import print_result_summary, sweep_rows
    from helm_optimizer.sweep.run import run_sweep

    with SweepProgress(sweep_rows(config)) as progress:
        result = run_sweep(config, executor=executor, address=address, num_workers=workers, progress=progress)
    calls = sum(int(c.get("lm_calls") or 0) for c in result.cells.values())
    retries = sum(int(c.get("retries") or 0) for c in result.cells.values())
    console.print(f"{len(result.cells)} cells, {calls} LM calls, {retries} retried attempts, "
                  f"{len(result.failed)} failed.", highlight=False)
    if result.summarize_path:
        console.print(f"HELM leaderboard data: {result.summarize_path} "
                      f"(view: helm-server --output-path {config.output_dir / 'helm' / 'benchmark_output'} "
                      f"--suite {config.suite})", highlight=False)
    print_result_summary(result.report_html, console)
    if log_path:
        console.print(f"Log: {log_path}", highlight=False)
    if result.failed:
        from helm_optimizer.errors import HelmOptimizerError

        first = result.failed[0]
        cause = str(result.cells.get(first, {}).get("error") or "see the log").rstrip(".")
        where = f"; see {log_path}" if log_path else ""
        raise HelmOptimizerError(
            f"{len(result.failed)} of {len(result.cells)} cells failed, first {first}: {cause}{where}. "
            "Fix that and run the same command again; finished cells are kept."
        )


def validate(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG")],
) -> None:
    setup_logging(None)
    from helm_optimizer.sweep.config import load_sweep_config, validate_sweep
    from helm_optimizer.sweep.run import plan_cells

    config = load_sweep_config(config_path)
    validate_sweep(config, source=config_path)
    optimize_cells, evaluate_cells = plan_cells(config)
    console.print(f"{config_path}: OK — {len(optimize_cells)} optimization cells, {len(evaluate_cells)} "
                  f"evaluation cells, output in {config.output_dir}.", highlight=False)
