"""``helm-optimizer demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HELP = (
    "Run the bundled quick-start sweep offline on the embedded model (local/smollm2) and a bundled slice of "
    "HEAD-QA: optimize, evaluate baseline vs DSPy inside HELM, summarize, and write the report."
)


def demo(
    output_dir: Annotated[Path, typer.Option("--output-dir")] = Path("demo-output"),
    executor: Annotated[str, typer.Option("--executor", help="local or ray.")] = "local",
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    from importlib import resources

    from helm_optimizer.cli._common import console, setup_logging
    from helm_optimizer.sweep.config import load_sweep_config

    config_path = Path(str(resources.files("helm_optimizer") / "configs" / "demo.yaml"))
    data_dir = Path(str(resources.files("helm_optimizer") / "data" / "demo"))
    config = load_sweep_config(config_path).model_copy(update={"output_dir": output_dir, "data_dir": data_dir})
    log_path = setup_logging(output_dir / "logs", verbose=verbose)
    console.print(f"Demo: {config_path.name} -> {output_dir} (log: {log_path})", highlight=False)
    from helm_optimizer.cli.progress import SweepProgress
    from helm_optimizer.cli.summary import print_result_summary, sweep_rows
    from helm_optimizer.sweep.run import run_sweep

    with SweepProgress(sweep_rows(config)) as progress:
        result = run_sweep(config, executor=executor, progress=progress)
    console.print(f"HELM runs: {output_dir / 'helm' / 'benchmark_output' / 'runs' / config.suite}", highlight=False)
    print_result_summary(result.report_html, console)
    if result.failed:
        from helm_optimizer.errors import HelmOptimizerError

        raise HelmOptimizerError(f"{len(result.failed)} demo cell(s) failed: {', '.join(result.failed)}; "
                                 f"see {log_path}.")
