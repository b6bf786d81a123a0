"""``helm-optimizer register`` and ``helm-optimizer list``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from helm_optimizer.cli._common import console, setup_logging

REGISTER_HELP = (
    "Write HELM model deployments for every agent in AGENTS_DIR into LOCAL_PATH (helm-run's --local-path, "
    "default prod_env), named <model>-dspy-<method>, so plain helm-run can evaluate them. With --model, only "
    "that model's agents, answered at --api-base with the key from --api-key-env (published agents whose "
    "metadata names no endpoint need nothing else)."
)
LIST_HELP = "List optimizers, embedded models or methods."


def register(
    agents_dir: Annotated[Path, typer.Argument(help="An agents directory (OUTPUT_DIR/agents, or published "
                                               "agents laid out <scenario>/<model>/<optimizer>.json).")],
    local_path: Annotated[Path, typer.Option("--local-path", help="helm-run's --local-path.")] = Path("prod_env"),
    model: Annotated[str | None, typer.Option("--model", help="Register only this model's agents, answered by "
                                              "this model (as litellm names it, e.g. openai/gpt-4o).")] = None,
    api_base: Annotated[str | None, typer.Option("--api-base", help="OpenAI-compatible endpoint serving --model "
                                                 "(vLLM, llama.cpp, a provider's /v1).")] = None,
    api_key_env: Annotated[str | None, typer.Option("--api-key-env", help="Environment variable holding the "
                                                    "endpoint's key (the name only; the key is never written).")]
    = None,
) -> None:
    setup_logging(None)
    from helm_optimizer.errors import ConfigError
    from helm_optimizer.helm.deployments import (
        DeploymentSet,
        agent_deployments,
        agent_file_deployment,
        baseline_deployment,
        core_set,
        scan_agents_dir,
        write_prod_env,
    )

    if not agents_dir.is_dir():
        raise ConfigError(f"{agents_dir} is not a directory; pass OUTPUT_DIR/agents of an optimize or sweep run.")
    if model is None and (api_base or api_key_env):
        raise ConfigError("--api-base and --api-key-env need --model (the model the endpoint serves); "
                          "add --model NAME.")
    models = scan_agents_dir(agents_dir)
    if not models:
        raise ConfigError(f"No agents under {agents_dir}; run `helm-optimizer optimize` first.")
    if model is not None:
        models = {model: _endpoint_entry(models, model, api_base, api_key_env, agents_dir)}
    out = DeploymentSet()
    out.tokenizer_configs.extend(core_set().tokenizer_configs)
    names: list[str] = []
    per_file: list[tuple[str, str, Path]] = []
    for entry in models.values():
        base = baseline_deployment(entry["lm"])
        agents = agent_deployments(entry["lm"], entry["methods"], agents_dir=str(agents_dir.resolve()))
        out.extend(base)
        out.extend(agents)
        names.extend(d["name"] for d in base.model_deployments + agents.model_deployments)
        for info in entry["agents"]:  # one deployment per agent file: exactly that agent answers
            single = agent_file_deployment(entry["lm"], info.optimizer, scenario=info.scenario, fold=info.fold,
                                           agent_file=info.path)
            out.extend(single)
            per_file.extend((d["model_name"], d["name"], info.path) for d in single.model_deployments)
    for path in write_prod_env(local_path, out):
        console.print(f"wrote {path}", highlight=False)
    for name in names:
        console.print(f"  model={name}", highlight=False)
    if per_file:
        console.print("Each agent file also has its own deployment (use it where a model has agents of several "
                      "scenarios or folds):", highlight=False)
    for model_name, deployment, path in per_file:
        console.print(f"  model={model_name},model_deployment={deployment}  ({path})", highlight=False, soft_wrap=True)
    if api_key_env and not os.environ.get(api_key_env):
        console.print(f"note: {api_key_env} is not set here; export it before helm-run.", highlight=False)
    console.print(f"Use: helm-run --local-path {local_path} --run-entries \"<scenario>:model=<one of the above>\" "
                  "--suite <suite> --max-eval-instances N", highlight=False)


def _endpoint_entry(models: dict[str, dict[str, Any]], model: str, api_base: str | None, api_key_env: str | None,
                    agents_dir: Path) -> dict[str, Any]:
    """The scanned entry of ``model`` with its LM pointed at the chosen endpoint (metadata's other settings kept)."""
    from helm_optimizer.config import LMConfig
    from helm_optimizer.errors import ConfigError
    from helm_optimizer.registry import did_you_mean

    if model not in models:
        known = sorted(models)
        raise ConfigError(f"No agents for model '{model}' under {agents_dir}.{did_you_mean(model, known)} "
                          f"Models there: {', '.join(known)}.")
    entry = dict(models[model])
    lm = {k: v for k, v in dict(entry["lm"]).items() if k not in ("api_base", "api_key_env")}
    lm.update(model=model, api_base=api_base, api_key_env=api_key_env)
    entry["lm"] = LMConfig.model_validate(lm).public_dict()  # a typo'd setting fails here, not in helm-run
    return entry


def list_things(what: Annotated[str, typer.Argument(help="optimizers | models | methods")] = "optimizers") -> None:
    from helm_optimizer.errors import ConfigError

    if what == "optimizers":
        from helm_optimizer.optimizers import OPTIMIZERS

        for name in OPTIMIZERS.names():
            cls = OPTIMIZERS.get(name)
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            console.print(f"{name:36} {doc}", highlight=False)
    elif what == "models":
        from helm_optimizer.serving.models import embedded_model_names

        for name in embedded_model_names():
            console.print(f"{name:20} embedded (PyPI package, served on 127.0.0.1)", highlight=False)
    elif what == "methods":
        from helm_optimizer.naming import method_label, method_slug
        from helm_optimizer.optimizers import OPTIMIZERS

        console.print(f"{'baseline':36} HELM's own prompt and deployment", highlight=False)
        for name in OPTIMIZERS.names():
            console.print(f"{name:36} deployment suffix -dspy-{method_slug(name)}  ({method_label(name)})",
                          highlight=False)
    else:
        raise ConfigError(f"Unknown list '{what}'; use optimizers, models or methods.")
