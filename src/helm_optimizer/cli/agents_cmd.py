"""``helm-optimizer agents list|show|export``."""

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
        keep = meta.model_dump(mode="json", include={"scenario", "run_entry", "model", "optimizer", "fold",
                                                     "num_folds", "seed", "optimizer_seed", "scores", "usage",
                                                     "wall_time_s", "versions", "created_at"})
        keep["data"] = meta.data.model_dump(mode="json", include={"strategy", "train_size", "val_size",
                                                                  "fingerprint", "provenance"})
        source = meta.optimized_on or {}
        if source:
            keep["optimized_on"] = {**{k: v for k, v in source.items() if k != "ids"},
                                    "ids": len(source.get("ids") or [])}
        keep["contamination"] = meta.contamination
        console.print_json(json.dumps(keep, default=str))
    else:
        console.print("no metadata file (an agent written by another tool)", highlight=False)
    plain = meta.model_dump(mode="json") if meta is not None else None
    entry = scenario or (meta.run_entry if meta is not None else None)
    if entry:
        _show_contamination(data, plain, str(entry), data_dir or (meta.config.get("data_dir") if meta else None))


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


@app.command("export")
def export(
    path: Annotated[Path, typer.Argument(metavar="AGENT", help="An agent JSON file.")],
    fmt: Annotated[str, typer.Option("--format", help="text (instruction and demos), chat (the messages DSPy "
                                     "sends) or helm (instructions for a HELM run spec).")] = "text",
    check: Annotated[bool, typer.Option("--check", help="Also evaluate the exported prompt through HELM's own "
                                        "adapter on the agent's test instances (no DSPy) and print its score "
                                        "next to the agent's.")] = False,
    output_dir: Annotated[Path | None, typer.Option("--output-dir", help="Where the agent's evaluation is (default: "
                                                    "the directory above agents/).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="The data directory the agent was "
                                                  "evaluated with (default: from its metadata).")] = None,
    plugins: Annotated[list[str] | None, typer.Option("--plugins")] = None,
    num_threads: Annotated[int, typer.Option("--num-threads", min=1)] = 4,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Print an agent's optimized prompt without DSPy; with --check, measure what the export loses."""
    from helm_optimizer.agents.export import EXPORT_FORMATS, read_prompt, render
    from helm_optimizer.cli._common import setup_logging
    from helm_optimizer.errors import ConfigError

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"Unknown --format '{fmt}'; use one of: {', '.join(EXPORT_FORMATS)}.")
    prompt = read_prompt(path)
    adapter = None
    if fmt == "chat":
        from helm_optimizer.agents.store import read_meta
        from helm_optimizer.config import LMConfig
        from helm_optimizer.lm import adapter_for

        meta = read_meta(path)
        lm = (meta.config.get("lm") if meta is not None else None) or {"model": "openai/unknown"}
        adapter = adapter_for(LMConfig.model_validate(lm))  # the adapter this agent runs with
    if not check:
        setup_logging(None, verbose=verbose)
        console.out(render(prompt, fmt, adapter), end="", highlight=False)
        return
    from helm_optimizer.cli.progress import LiveProgress
    from helm_optimizer.export_check import check_export

    log_dir = (output_dir or path.resolve().parent) / "logs" if output_dir else None
    setup_logging(log_dir, verbose=verbose)
    console.out(render(prompt, fmt, adapter), end="", highlight=False)
    with LiveProgress("export --check") as progress:
        progress({"stage": "evaluating the exported prompt in HELM"})
        result = check_export(path, output_dir=output_dir, data_dir=str(data_dir) if data_dir else None,
                              plugins=tuple(plugins or ()), num_threads=num_threads)
    console.rule("fidelity check", style="dim")
    console.print(f"agent (DSPy program):            {result.metric} {result.agent_mean:.3f}   "
                  f"[{result.agent_run}]", highlight=False, markup=False, soft_wrap=True)
    console.print(f"exported prompt (HELM, no DSPy): {result.metric} {result.export_mean:.3f}   "
                  f"[{result.export_run}]", highlight=False, markup=False, soft_wrap=True)
    console.print(f"fidelity gap (export − agent):   {result.gap:+.3f} on {result.n} {result.split} instances; "
                  f"same score on {result.same_score} of them", highlight=False)


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
