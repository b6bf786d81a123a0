"""``helm-optimizer register`` and ``helm-optimizer list``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from helm_optimizer.cli._common import console, setup_logging

REGISTER_HELP = (
    "Write HELM model deployments for every agent in AGENTS_DIR into LOCAL_PATH (helm-run's --local-path, "
    "default prod_env), named <model>-dspy-<method>, so plain helm-run can evaluate them."
)
LIST_HELP = "List optimizers, embedded models or methods."


def register(
    agents_dir: Annotated[Path, typer.Argument(help="An agents directory (OUTPUT_DIR/agents).")],
    local_path: Annotated[Path, typer.Option("--local-path", help="helm-run's --local-path.")] = Path("prod_env"),
) -> None:
    setup_logging(None)
    from helm_optimizer.errors import ConfigError
    from helm_optimizer.helm.deployments import (
        DeploymentSet,
        agent_deployments,
        baseline_deployment,
        core_set,
        scan_agents_dir,
        write_prod_env,
    )

    if not agents_dir.is_dir():
        raise ConfigError(f"{agents_dir} is not a directory; pass OUTPUT_DIR/agents of an optimize or sweep run.")
    models = scan_agents_dir(agents_dir)
    if not models:
        raise ConfigError(f"No agents under {agents_dir}; run `helm-optimizer optimize` first.")
    out = DeploymentSet()
    out.tokenizer_configs.extend(core_set().tokenizer_configs)
    names: list[str] = []
    for entry in models.values():
        base = baseline_deployment(entry["lm"])
        agents = agent_deployments(entry["lm"], entry["methods"], agents_dir=str(agents_dir.resolve()))
        out.extend(base)
        out.extend(agents)
        names.extend(d["name"] for d in base.model_deployments + agents.model_deployments)
    for path in write_prod_env(local_path, out):
        console.print(f"wrote {path}", highlight=False)
    for name in names:
        console.print(f"  model={name}", highlight=False)
    console.print(f"Use: helm-run --local-path {local_path} --run-entries \"<scenario>:model=<one of the above>\" "
                  "--suite <suite> --max-eval-instances N", highlight=False)


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
