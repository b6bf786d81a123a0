"""``helm-optimizer evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from helm_optimizer.cli._common import console, setup_logging

HELP = (
    "Evaluate, inside HELM on the scenario's test split, the baseline (HELM's prompt), zero-shot DSPy programs "
    "and saved agents for one scenario and model; writes evaluation records for `helm-optimizer report`."
)


def evaluate(
    scenario: Annotated[str, typer.Option("--scenario", help="HELM run entry.")],
    model: Annotated[str, typer.Option("--model")],
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated: baseline, ZeroShotPredict, "
                                         "ZeroShotCoT and optimizer names.")] = "baseline,ZeroShotCoT",
    api_base: Annotated[str | None, typer.Option("--api-base")] = None,
    api_key_env: Annotated[str | None, typer.Option("--api-key-env")] = None,
    helm_deployment: Annotated[str | None, typer.Option("--helm-deployment", help="HELM deployment for the "
                                                        "baseline.")] = None,
    output_dir: Annotated[Path, typer.Option("--output-dir")] = Path("helm-optimizer-output"),
    suite: Annotated[str, typer.Option("--suite")] = "helm-optimizer",
    max_eval_instances: Annotated[int | None, typer.Option("--max-eval-instances", "--eval-limit", min=1)] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
    num_threads: Annotated[int, typer.Option("--num-threads", min=1)] = 4,
    timeout: Annotated[float, typer.Option("--timeout", min=0.001, help="Seconds to wait for each LM reply "
                                           "before retrying it (default 120).")] = 120.0,
    num_retries: Annotated[int, typer.Option("--num-retries", min=0, max=20, help="Retries of a failed LM call "
                                             "(default 5).")] = 5,
    plugins: Annotated[list[str] | None, typer.Option("--plugins")] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-run even when a current record exists.")] = False,
    on_overlap: Annotated[str, typer.Option("--on-overlap", help="refuse|drop agent demos and instructions that "
                                            "quote a test question.")] = "refuse",
    optimizer_seeds: Annotated[str | None, typer.Option("--optimizer-seeds", help="Comma-separated optimizer seeds "
                                                        "(agents <optimizer>.seed<s>.json of a multi-seed "
                                                        "sweep).")] = None,
    allow_model_mismatch: Annotated[bool, typer.Option("--allow-model-mismatch", help="Evaluate even when "
                                                       "--helm-deployment serves another model than --model.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    from helm_optimizer.config import LMConfig
    from helm_optimizer.errors import ConfigError
    from helm_optimizer.evaluate import EvaluationRequest, evaluate_methods

    setup_logging(output_dir / "logs", verbose=verbose)
    method_list = tuple(m.strip() for m in methods.split(",") if m.strip())
    if on_overlap not in ("refuse", "drop"):
        raise ConfigError(f"--on-overlap must be 'refuse' or 'drop', not {on_overlap!r}.")
    try:
        seeds = tuple(int(v) for v in optimizer_seeds.split(",") if v.strip()) if optimizer_seeds else None
    except ValueError:
        raise ConfigError(f"--optimizer-seeds must be comma-separated integers, not {optimizer_seeds!r}.") from None
    request = EvaluationRequest(
        scenario=scenario, lm=LMConfig(model=model, api_base=api_base, api_key_env=api_key_env, timeout=timeout,
                                       num_retries=num_retries),
        methods=method_list, output_dir=output_dir, suite=suite, seed=seed, eval_limit=max_eval_instances,
        data_dir=str(data_dir) if data_dir else None, plugins=tuple(plugins or ()), num_threads=num_threads,
        helm_deployment=helm_deployment, on_overlap=on_overlap, optimizer_seeds=seeds,
        allow_model_mismatch=allow_model_mismatch,
    )
    from helm_optimizer.serving.models import is_embedded_model

    if is_embedded_model(model):  # HELM sends num_threads requests at once: size the one server for them
        from helm_optimizer.serving.sharing import plan_slots

        plan_slots(model, num_threads)
    from helm_optimizer.cli.progress import LiveProgress

    with LiveProgress("evaluate") as progress:
        results = evaluate_methods(request, progress=progress, force=force)
    from rich.table import Table

    table = Table(title=f"{scenario} · {model}")
    for column in ("method", "fold", "metric", "mean", "instances", "failed", "LM calls", "retries", "HELM run"):
        table.add_column(column)
    for r in (result.record for result in results):
        table.add_row(r.method, "—" if r.fold is None else str(r.fold), r.main_metric, f"{r.mean:.3f}",
                      str(r.count), str(r.failed_requests or 0), str(r.lm_calls), str(r.retries), r.run_dir)
    console.print(table)
