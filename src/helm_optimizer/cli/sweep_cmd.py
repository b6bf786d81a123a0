"""``helm-optimizer sweep`` and ``helm-optimizer validate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from helm_optimizer.cli._common import console, setup_logging

HELP = (
    "Run a whole sweep from one config file: optimize every scenario x model x optimizer, evaluate the baseline, "
    "zero-shot DSPy programs and every agent inside HELM on the same test instances, run helm-summarize, and "
    "write the report. Resumable: re-run the same command after an interruption."
)
VALIDATE_HELP = "Check a sweep config (keys, scenarios, optimizers, key variables, paths) without any LM call."


def _show_estimate(estimate: Any, as_json: bool) -> None:
    """The pre-flight estimate: JSON on stdout, or a table per cell and per endpoint."""
    if as_json:
        typer.echo(json.dumps(estimate.as_json(), indent=2))
        return
    from rich.table import Table

    def num(value: float | None, digits: int = 0) -> str:
        return "unknown" if value is None else f"{value:,.{digits}f}"

    cells = Table(title="Estimate per cell", show_lines=False)
    for column in ("cell", "LM calls", "prompt tokens", "completion tokens", "cost $"):
        cells.add_column(column, justify="left" if column == "cell" else "right")
    for cell in estimate.cells:
        cells.add_row(cell.label + (f" ({cell.note})" if cell.note else ""), num(cell.lm_calls),
                      num(cell.prompt_tokens), num(cell.completion_tokens), num(cell.cost, 4))
    console.print(cells)
    endpoints = Table(title="Endpoints")
    for column in ("model", "LM calls", "tokens", "latency s", "concurrency", "wall s"):
        endpoints.add_column(column, justify="left" if column == "model" else "right")
    for name, e in estimate.endpoints.items():
        endpoints.add_row(name, num(e["lm_calls"]), num(e["tokens"]), f"{e['latency_s']:g}", str(e["max_concurrency"]),
                          num(e["wall_s"], 1))
    console.print(endpoints)
    console.print(f"Total: {num(estimate.lm_calls)} LM calls, cost ${num(estimate.cost, 4)}, wall time "
                  f"{num(estimate.wall_s, 1)} s under the declared limits.", highlight=False)
    console.print("Assumes " + "; ".join(estimate.assumptions) + ".", highlight=False)


def sweep(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="Sweep config (.yaml or .toml).")],
    executor: Annotated[str, typer.Option("--executor", help="local (this machine: one scheduler for every cell), "
                                          "ray (a Ray cluster), or serial (one cell after another).")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (default: start a local "
                                                "Ray instance).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="CPUs of the local Ray instance.")] = None,
    output_dir: Annotated[Path | None, typer.Option("--output-dir", help="Override output_dir.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0.001, help="Seconds to wait for each LM "
                                                  "reply before retrying it, for every model (overrides the "
                                                  "models' timeout).")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Estimate LM calls, tokens, cost and wall time per "
                                          "cell; make no LM call and write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --dry-run: the estimate as JSON.")] = False,
) -> None:
    from helm_optimizer.errors import ConfigError
    from helm_optimizer.sweep.config import load_sweep_config, validate_sweep, with_timeout

    if executor not in ("local", "ray", "serial"):
        raise ConfigError(f"Unknown executor '{executor}'; use local or ray (or serial: one cell at a time).")
    if as_json and not dry_run:
        raise ConfigError("--json goes with --dry-run (the sweep itself writes its results to files).")
    if executor == "local" and not dry_run:
        from helm_optimizer.sweep.scheduler import warm_up

        warm_up()  # the workers' template loads HELM and DSPy while this process reads and validates the config
    config = load_sweep_config(config_path)
    if output_dir is not None:
        config = config.model_copy(update={"output_dir": output_dir})
    if timeout is not None:
        config = with_timeout(config, timeout)
    if dry_run:
        setup_logging(None, verbose=verbose)
        validate_sweep(config, source=config_path)
        from helm_optimizer.sweep.estimate import estimate_sweep

        _show_estimate(estimate_sweep(config, write_cache=False), as_json)
        return
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
    for name, e in ((result.limits or {}).get("endpoints") or {}).items():
        if e.get("throttled") or e.get("backoff_s"):
            console.print(f"{name}: {e['throttled']} answers 429, {e['backoff_s']:.1f} s paused (Retry-After, "
                          "back-off).", highlight=False)
    if result.estimate_md:
        console.print(f"Estimate vs actual: {result.estimate_md}", highlight=False)
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
    estimate: Annotated[bool, typer.Option("--estimate", help="Also estimate LM calls, tokens, cost and wall "
                                           "time (as sweep --dry-run).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --estimate: the estimate as JSON.")] = False,
) -> None:
    setup_logging(None)
    from helm_optimizer.sweep.config import load_sweep_config, validate_sweep
    from helm_optimizer.sweep.run import plan_cells

    config = load_sweep_config(config_path)
    validate_sweep(config, source=config_path)
    if estimate:
        from helm_optimizer.sweep.estimate import estimate_sweep

        _show_estimate(estimate_sweep(config, write_cache=False), as_json)
        if as_json:
            return
    optimize_cells, evaluate_cells = plan_cells(config)
    console.print(f"{config_path}: OK — {len(optimize_cells)} optimization cells, {len(evaluate_cells)} "
                  f"evaluation cells, output in {config.output_dir}.", highlight=False)
