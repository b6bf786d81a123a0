"""``helm-optimizer report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from helm_optimizer.cli._common import console, setup_logging

HELP = (
    "Build the results table (Markdown, CSV, JSON), the baseline-vs-optimized figure, the ranking figure and "
    "one self-contained HTML page from the evaluation records under OUTPUT_DIR."
)


def report(
    output_dir: Annotated[Path, typer.Argument(help="A sweep or evaluate output directory.")],
    out: Annotated[Path | None, typer.Option("--out", help="Where to write (default OUTPUT_DIR/report).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap resampling.")] = 0,
    resamples: Annotated[int, typer.Option("--resamples", min=100)] = 2000,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    from helm_optimizer.errors import ConfigError

    if not output_dir.is_dir():
        raise ConfigError(f"{output_dir} is not a directory; give the --output-dir of a sweep or evaluate run.")
    setup_logging(None, verbose=verbose)
    from helm_optimizer.report import build_report, summarize_for_console

    paths = build_report(output_dir, out_dir=out, seed=seed, resamples=resamples)
    print_summary(summarize_for_console(paths.rows))
    console.print(f"Report: {paths.html}", highlight=False)


def print_summary(rows: list[dict[str, str]]) -> None:
    from rich.table import Table

    if not rows:
        return
    table = Table()
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*row.values())
    console.print(table)
