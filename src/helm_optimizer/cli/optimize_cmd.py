"""``helm-optimizer optimize``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from helm_optimizer.cli._common import console, parse_options, setup_logging

HELP = (
    "Optimize one HELM scenario for one model with one DSPy optimizer and save the agent to "
    "OUTPUT_DIR/agents/<scenario>/<model>/<optimizer>.json (with <optimizer>.meta.json beside it)."
)


def optimize(
    scenario: Annotated[str, typer.Option("--scenario", help="HELM run entry, e.g. head_qa or head_qa:language=en, "
                                          "or a registered custom scenario.")],
    model: Annotated[str, typer.Option("--model", help="Model, e.g. openai/gpt-4o or local/smollm2.")],
    optimizer: Annotated[str, typer.Option("--optimizer", help="DSPy optimizer name (see `helm-optimizer list "
                                           "optimizers`).")] = "MIPROv2",
    api_base: Annotated[str | None, typer.Option("--api-base", "--api_base",
                                                 help="OpenAI-compatible endpoint.")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", "--api_key", help="API key (kept in memory only; "
                                                "prefer --api-key-env).")] = None,
    api_key_env: Annotated[str | None, typer.Option("--api-key-env", help="Environment variable holding the API "
                                                    "key.")] = None,
    prompt_model: Annotated[str | None, typer.Option("--prompt-model", "--prompt_model",
                                                     help="Model that proposes instructions / teaches "
                                                     "(default: --model).")] = None,
    prompt_api_base: Annotated[str | None, typer.Option("--prompt-api-base", "--prompt_api_base")] = None,
    prompt_api_key: Annotated[str | None, typer.Option("--prompt-api-key", "--prompt_api_key")] = None,
    prompt_api_key_env: Annotated[str | None, typer.Option("--prompt-api-key-env")] = None,
    max_bootstrapped_demos: Annotated[int, typer.Option("--max-bootstrapped-demos", "--max_bootstrapped_demos",
                                                        min=0)] = 3,
    max_labeled_demos: Annotated[int, typer.Option("--max-labeled-demos", "--max_labeled_demos", min=0)] = 3,
    num_threads: Annotated[int, typer.Option("--num-threads", "--num_threads", min=1,
                                             help="Parallel LM calls.")] = 8,
    val_size: Annotated[int | None, typer.Option("--val-size", "--val_size", min=1,
                                                 help="Validation examples (default 200).")] = None,
    train_size: Annotated[int | None, typer.Option("--train-size", min=1,
                                                   help="Training examples (default 500).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=2, help="Cap on optimization examples "
                                              "(half validation, half training).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the evaluated instances and folds (and, unless "
                                      "--optimizer-seed is given, of the optimizer).")] = 0,
    optimizer_seed: Annotated[int | None, typer.Option("--optimizer-seed", help="Seed of the optimizer and of the "
                                                       "train/val draw only; the agent is saved as "
                                                       "<optimizer>.seed<s>.json.")] = None,
    auto: Annotated[str | None, typer.Option("--auto", help="light|medium|heavy (MIPROv2, GEPA).")] = "light",
    program: Annotated[str, typer.Option("--program", help="predict or cot (chain of thought).")] = "cot",
    fold: Annotated[int | None, typer.Option("--fold", min=0, help="Only this cross-fitting fold.")] = None,
    metric: Annotated[str | None, typer.Option("--metric", help="HELM metric to optimize (default: the run "
                                               "spec's main metric).")] = None,
    on_overlap: Annotated[str, typer.Option("--on-overlap", help="refuse|drop optimization questions that "
                                            "also appear in the test split.")] = "refuse",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Local copies of the benchmark files.")] = None,
    output_dir: Annotated[Path, typer.Option("--output-dir")] = Path("helm-optimizer-output"),
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="LM cache (default OUTPUT_DIR/cache).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the LM cache.")] = False,
    max_calls: Annotated[int | None, typer.Option("--max-calls", min=1)] = None,
    max_cost: Annotated[float | None, typer.Option("--max-cost", min=0.0)] = None,
    temperature: Annotated[float, typer.Option("--temperature")] = 0.0,
    timeout: Annotated[float, typer.Option("--timeout", min=0.001, help="Seconds to wait for each LM reply "
                                           "before retrying it (default 120).")] = 120.0,
    num_retries: Annotated[int, typer.Option("--num-retries", min=0, max=20, help="Retries of a failed LM call "
                                             "(default 5).")] = 5,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1)] = None,
    option: Annotated[list[str] | None, typer.Option("--option", help="Optimizer option KEY=VALUE "
                                                     "(repeatable).")] = None,
    plugins: Annotated[list[str] | None, typer.Option("--plugins", help="HELM plugin module or .py path "
                                                      "(repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing agent.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    from pydantic import SecretStr, ValidationError

    from helm_optimizer.config import LMConfig, OptimizeConfig
    from helm_optimizer.errors import ConfigError

    setup_logging(output_dir / "logs", verbose=verbose)
    try:
        lm = LMConfig(model=model, api_base=api_base, api_key_env=api_key_env,
                      api_key=SecretStr(api_key) if api_key else None, temperature=temperature, max_tokens=max_tokens,
                      timeout=timeout, num_retries=num_retries)
        prompt_lm = None
        if prompt_model:
            prompt_lm = LMConfig(model=prompt_model, api_base=prompt_api_base, api_key_env=prompt_api_key_env,
                                 api_key=SecretStr(prompt_api_key) if prompt_api_key else None, timeout=timeout,
                                 num_retries=num_retries)
        config = OptimizeConfig(
            scenario=scenario, optimizer=optimizer, lm=lm, prompt_lm=prompt_lm, program=program,  # type: ignore[arg-type]
            max_bootstrapped_demos=max_bootstrapped_demos, max_labeled_demos=max_labeled_demos,
            num_threads=num_threads, val_size=val_size, train_size=train_size, limit=limit, seed=seed,
            optimizer_seed=optimizer_seed,
            auto=None if auto in (None, "none", "") else auto,  # type: ignore[arg-type]
            data_dir=data_dir, output_dir=output_dir, cache_dir=cache_dir, cache=not no_cache, force=force,
            max_calls=max_calls, max_cost=max_cost, fold=fold, metric=metric,
            on_overlap=on_overlap,  # type: ignore[arg-type]
            optimizer_options=parse_options(option),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = str(first.get("msg", "")).removeprefix("Value error, ")
        raise ConfigError(f"Invalid option {where}: {message}.") from None

    from helm_optimizer.cli.progress import LiveProgress
    from helm_optimizer.optimize import optimize as run_optimize

    with LiveProgress(f"optimize {optimizer}") as progress:
        result = run_optimize(config, plugins=tuple(plugins or ()), progress=progress)
    from rich.table import Table

    table = Table(title=f"{result.scenario} · {result.model} · {result.optimizer}")
    for column in ("agent", "status", "val before", "val after", "LM calls", "retries", "parse failures",
                   "failed calls", "wall s"):
        table.add_column(column)
    for agent in result.agents:
        table.add_row(str(agent.path), agent.status, _score(agent.val_before), _score(agent.val_after),
                      str(agent.usage.get("lm_calls", 0)), str(agent.usage.get("retries", 0)),
                      str(agent.usage.get("parse_failures", 0)), str(agent.usage.get("failed_calls", 0)),
                      f"{agent.wall_time_s:.1f}")
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
