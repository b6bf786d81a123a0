"""``helm-optimizer scenarios list|show``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from helm_optimizer.cli._common import console, setup_logging

app = typer.Typer(help="Scenarios that can be optimized: HELM's, plugins', custom ones.", no_args_is_help=True,
                  add_completion=False)


@app.command("list")
def list_scenarios(
    plugins: Annotated[list[str] | None, typer.Option("--plugins", help="HELM plugin to load first.")] = None,
    grep: Annotated[str | None, typer.Option("--grep", help="Only names containing this text.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="helm | medical | plugin | custom")] = None,
) -> None:
    """List every run spec HELM knows (built-in and plugins) and every custom scenario."""
    setup_logging(None)
    from rich.table import Table

    from helm_optimizer.helm.loading import prepare_helm, run_spec_names
    from helm_optimizer.scenarios.custom import CUSTOM_SCENARIOS
    from helm_optimizer.scenarios.medical import MEDICAL_BENCHMARKS

    prepare_helm(plugins=tuple(plugins or ()))
    from helm.benchmark.run_spec import get_run_spec_function

    rows = []
    for name in run_spec_names():
        module = getattr(get_run_spec_function(name), "__module__", "?")
        if name in MEDICAL_BENCHMARKS:
            kind, note = "medical", "HELM run spec; local files with --data-dir; corrected metric added"
        elif module.startswith("helm_optimizer"):
            kind, note = "helm-optimizer", "evaluation variant with corrected metrics"
        elif module.startswith("helm.benchmark.run_specs"):
            kind, note = "helm", module.rsplit(".", 1)[-1]
        else:
            kind, note = "plugin", module
        rows.append((name, kind, note))
    for name in CUSTOM_SCENARIOS.names():
        rows.append((name, "custom", CUSTOM_SCENARIOS.origin(name)))
    if grep:
        rows = [r for r in rows if grep.lower() in r[0].lower()]
    if source:
        rows = [r for r in rows if r[1] == source]
    table = Table(title=f"{len(rows)} scenarios")
    for column in ("run entry name", "source", "note"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    counts = Counter(r[1] for r in rows)
    console.print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())), highlight=False)


@app.command("show")
def show(
    run_entry: Annotated[str, typer.Argument(help="e.g. head_qa or head_qa:language=en")],
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
    plugins: Annotated[list[str] | None, typer.Option("--plugins")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    metric: Annotated[str | None, typer.Option("--metric")] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir")] = None,
) -> None:
    """Instances per split, a sample prompt and gold answer, metrics, and how optimization data is chosen."""
    setup_logging(None)
    from helm_optimizer.scenarios.custom import CUSTOM_SCENARIOS
    from helm_optimizer.scenarios.dataset import default_cache_root, load_dataset

    plugin_list = tuple(plugins or ())
    ds = load_dataset(run_entry, data_dir=data_dir, seed=seed, plugins=plugin_list, metric=metric,
                      cache_dir=cache_dir or default_cache_root(), on_overlap="drop")
    console.rule(run_entry)
    if run_entry.split(":")[0] in CUSTOM_SCENARIOS:
        console.print(f"custom scenario: {len(ds.train)} train / {len(ds.val)} val examples", highlight=False)
        return
    from helm_optimizer.helm.task import build_task

    task = build_task(run_entry, data_dir=data_dir, plugins=plugin_list, metric=metric)
    console.print(f"run spec: {task.run_spec.name}   adapter: {task.adapter_spec.method}   "
                  f"scenario class: {task.scenario_spec.class_name}", highlight=False)
    console.print(f"instances: test {ds.test_size}; optimization pools {ds.counts}", highlight=False)
    console.print(f"metrics: {', '.join(s.class_name.rsplit('.', 1)[-1] for s in task.run_spec.metric_specs)}; "
                  f"optimized metric: {ds.main_metric}", highlight=False)
    console.print(f"optimization data: {ds.strategy} -> {len(ds.train)} train / {len(ds.val)} val by default",
                  highlight=False)
    for line in ds.provenance:
        console.print(f"  source: {line}", highlight=False)
    for note in dict.fromkeys(ds.notes):
        console.print(f"  note: {note}", highlight=False)
    if ds.sample is not None:
        console.rule("sample prompt (exactly what HELM sends)")
        console.print(ds.sample.inputs, highlight=False, markup=False)
        console.rule("gold answer")
        console.print(ds.sample.output, highlight=False, markup=False)
