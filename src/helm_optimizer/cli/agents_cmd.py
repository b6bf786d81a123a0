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
        meta = info.meta or {}
        scores = meta.get("scores") or {}
        table.add_row(info.scenario, info.model, info.optimizer, "—" if info.fold is None else str(info.fold),
                      _score(scores.get("val_before")), _score(scores.get("val_after")),
                      str((meta.get("usage") or {}).get("lm_calls", "—")), str(meta.get("seed", "—")),
                      str(info.path))
    console.print(table)


@app.command("show")
def show(
    path: Annotated[Path, typer.Argument(help="An agent JSON file.")],
    scenario: Annotated[str | None, typer.Option("--scenario", help="Run entry whose test split the demos and "
                                                 "instructions are checked against (default: from the agent's "
                                                 "metadata).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Local copies of the benchmark files "
                                                  "(default: from the agent's metadata).")] = None,
) -> None:
    """Show an agent's instruction, demos, scores and provenance (ours or the reference tool's).

    With a known scenario (``--scenario`` or the agent's metadata) its demos and instructions are
    checked for test questions they quote.
    """
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
        keep = {k: meta.get(k) for k in ("scenario", "run_entry", "model", "optimizer", "fold", "num_folds", "seed",
                                         "optimizer_seed",
                                         "scores", "usage", "wall_time_s", "versions", "created_at")}
        keep["data"] = {k: (meta.get("data") or {}).get(k) for k in ("strategy", "train_size", "val_size",
                                                                       "fingerprint", "provenance")}
        source = meta.get("optimized_on") or {}
        if source:
            keep["optimized_on"] = {**{k: v for k, v in source.items() if k != "ids"},
                                    "ids": len(source.get("ids") or [])}
        keep["contamination"] = meta.get("contamination")
        console.print_json(json.dumps(keep, default=str))
    else:
        console.print("no metadata file (an agent written by another tool)", highlight=False)
    entry = scenario or (meta or {}).get("run_entry")
    if entry:
        _show_contamination(data, meta, str(entry), data_dir or ((meta or {}).get("config") or {}).get("data_dir"))


def _show_contamination(state: dict[str, object], meta: dict[str, object] | None, entry: str,
                        data_dir: object) -> None:
    """Count the demos and instructions quoting a test question of ``entry`` (printed, never fatal)."""
    from helm_optimizer.errors import HelmOptimizerError
    from helm_optimizer.helm.task import build_task
    from helm_optimizer.scenarios.dataset import default_cache_root
    from helm_optimizer.scenarios.provenance import agent_questions, check_agent_state, load_test_split

    try:
        split = load_test_split(build_task(entry, data_dir=str(data_dir) if data_dir else None), default_cache_root())
    except HelmOptimizerError as exc:
        console.print(f"contamination: not checked ({exc})", highlight=False)
        return
    questions, what = agent_questions(meta, split)
    found = check_agent_state(state, questions, on_overlap="count", default_instruction="", where="")
    console.print(f"[bold]contamination[/bold] against {what} of {entry}: {found.quoting_demos} of "
                  f"{found.demos} demos and {found.quoting_instructions} of {found.instructions} instructions "
                  "quote a test question", highlight=False)


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
