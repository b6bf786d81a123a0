"""``helm-optimizer agents list|show``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from helm_optimizer.cli._common import console

app = typer.Typer(help="Inspect saved agents.", no_args_is_help=True, add_completion=False)


@app.command("list")
def list_agents(
    directory: Annotated[Path, typer.Argument(help="An agents directory or an output directory.")] = Path(
        "helm-optimizer-output"),
) -> None:
    """List agents with their scenario, model, optimizer, scores and provenance."""
    from rich.table import Table

    from helm_optimizer.agents.store import list_agents as find

    root = directory / "agents" if (directory / "agents").is_dir() else directory
    agents = find(root)
    if not agents:
        console.print(f"No agents under {root}.", highlight=False)
        return
    table = Table()
    for column in ("scenario", "model", "optimizer", "fold", "val before", "val after", "LM calls", "seed", "path"):
        table.add_column(column)
    for info in agents:
        meta = info.meta
        table.add_row(info.scenario, info.model, info.optimizer, "—" if info.fold is None else str(info.fold),
                      _score(meta.scores.val_before if meta else None), _score(meta.scores.val_after if meta else None),
                      str(meta.usage.get("lm_calls", "—")) if meta else "—", str(meta.seed) if meta else "—",
                      str(info.path))
    console.print(table)


@app.command("show")
def show(path: Annotated[Path, typer.Argument(help="An agent JSON file.")]) -> None:
    """Show an agent's instruction, demos, scores and provenance (ours or the reference tool's)."""
    from helm_optimizer.agents.program import read_agent_json
    from helm_optimizer.agents.store import load_agent, read_meta

    program = load_agent(path)
    data = read_agent_json(path)
    predictor = program.predictors()[0]
    console.rule(str(path))
    console.print("[bold]instruction[/bold]")
    console.print(predictor.signature.instructions, highlight=False, markup=False)
    console.print(f"[bold]demos[/bold] ({len(predictor.demos)})")
    for i, demo in enumerate(predictor.demos):
        demo = dict(demo)
        text = str(demo.get("inputs", ""))
        console.print(f"  {i + 1}. inputs: {text[:160]!r}{'…' if len(text) > 160 else ''}", highlight=False,
                      markup=False)
        if demo.get("reasoning"):
            console.print(f"     reasoning: {str(demo['reasoning'])[:160]!r}", highlight=False, markup=False)
        console.print(f"     output: {demo.get('output')!r}", highlight=False, markup=False)
    versions = (data.get("metadata") or {}).get("dependency_versions")
    if versions:
        console.print(f"[bold]written by[/bold] {json.dumps(versions)}", highlight=False)
    meta = read_meta(path)
    if meta:
        console.print("[bold]provenance[/bold]")
        keep = meta.model_dump(mode="json", include={"scenario", "run_entry", "model", "optimizer", "fold",
                                                     "num_folds", "seed", "scores", "usage", "wall_time_s",
                                                     "versions", "created_at"})
        keep["data"] = meta.data.model_dump(mode="json", include={"strategy", "train_size", "val_size",
                                                                  "fingerprint", "provenance"})
        console.print_json(json.dumps(keep, default=str))
    else:
        console.print("no metadata file (an agent written by another tool)", highlight=False)


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
