"""HELM model deployments and metadata for embedded models, OpenAI-compatible endpoints and agents.

Deployment names follow HELM's own DSPy deployments: ``<model>-dspy-zs-predict``,
``<model>-dspy-zs-cot``, ``<model>-dspy-fs-miprov2``, ``<model>-dspy-fs-bfrs`` and
``<model>-dspy-fs-<optimizer>`` for other optimizers, so that
``helm-run --run-entries "medcalc_bench:model=<model>-dspy-fs-miprov2"`` evaluates the
MIPROv2 agent of that model on that scenario.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_optimizer.naming import (
    METHOD_ZS_COT,
    METHOD_ZS_PREDICT,
    ZERO_SHOT_METHODS,
    agent_deployment_name,
    deployment_name,
    method_label,
)

__all__ = [
    "DeploymentSet",
    "agent_deployments",
    "agent_file_deployment",
    "agents_dir_deployments",
    "attach_usage_ledger",
    "baseline_deployment",
    "register",
    "register_agents_dir",
    "register_core",
    "scan_agents_dir",
    "write_prod_env",
]

logger = logging.getLogger(__name__)

APPROX_TOKENIZER = "helm-optimizer/approx"
PROMPT_BUILDER = "helm-optimizer/prompt-builder"
AGENT_CLIENT = "helm_optimizer.plugin.agent_client.AgentClient"
_TEXT_TAGS = ["TEXT_MODEL_TAG", "LIMITED_FUNCTIONALITY_TEXT_MODEL_TAG", "INSTRUCTION_FOLLOWING_MODEL_TAG"]
_lock = threading.Lock()
_registered: dict[str, str] = {}  # kind:name -> fingerprint of what HELM holds


@dataclass
class DeploymentSet:
    """Plain-data deployments, metadata and tokenizers (as written to a ``prod_env`` directory)."""

    model_deployments: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    tokenizer_configs: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: DeploymentSet) -> None:
        self.model_deployments.extend(other.model_deployments)
        self.models.extend(other.models)
        self.tokenizer_configs.extend(other.tokenizer_configs)


def _metadata(name: str, display: str, description: str) -> dict[str, Any]:
    creator = name.split("/", 1)[0] if "/" in name else "helm-optimizer"
    return {"name": name, "display_name": display, "description": description,
            "creator_organization_name": creator, "access": "open", "release_date": None, "tags": list(_TEXT_TAGS)}


def _tokenizer() -> dict[str, Any]:
    return {"name": APPROX_TOKENIZER,
            "tokenizer_spec": {"class_name": "helm_optimizer.plugin.tokenizer.ApproximateTokenizer", "args": {}},
            "end_of_text_token": "", "prefix_token": ""}


def core_set() -> DeploymentSet:
    """The prompt-builder deployment, the offline tokenizer and every embedded model."""
    from helm_optimizer.serving.models import embedded_model_names, get_embedded_model

    out = DeploymentSet(tokenizer_configs=[_tokenizer()])
    out.model_deployments.append({
        "name": PROMPT_BUILDER, "model_name": PROMPT_BUILDER,
        "client_spec": {"class_name": "helm_optimizer.plugin.clients.PromptOnlyClient", "args": {}},
    })
    out.models.append(_metadata(PROMPT_BUILDER, "helm-optimizer prompt builder",
                                "Builds HELM prompts for optimization; answers no requests."))
    for name in embedded_model_names():
        out.model_deployments.append({
            "name": name, "model_name": name, "tokenizer_name": APPROX_TOKENIZER,
            "max_sequence_length": get_embedded_model(name).slot_context,  # what one server slot holds
            "client_spec": {"class_name": "helm_optimizer.plugin.clients.EmbeddedOpenAIClient",
                            "args": {"embedded_model": name}},
        })
        out.models.append(_metadata(name, f"{name} (embedded, llama.cpp)",
                                    "A small instruct model shipped in a PyPI package and served on 127.0.0.1."))
    return out


def baseline_deployment(lm: dict[str, Any], *, max_sequence_length: int = 128_000) -> DeploymentSet:
    """A deployment of ``lm['model']`` itself at its ``api_base`` (HELM's chat OpenAIClient)."""
    model = lm["model"]
    if not lm.get("api_base"):
        return DeploymentSet()
    openai_name = model.split("/", 1)[1] if "/" in model else model
    return DeploymentSet(
        model_deployments=[{
            "name": model, "model_name": model, "tokenizer_name": APPROX_TOKENIZER,
            "max_sequence_length": max_sequence_length,
            "client_spec": {"class_name": "helm_optimizer.plugin.clients.OpenAICompatibleClient",
                            "args": {"base_url": lm["api_base"], "api_key_env": lm.get("api_key_env"),
                                     "openai_model_name": openai_name, "timeout": lm.get("timeout", 120.0),
                                     "max_retries": lm.get("num_retries", 5)}},
        }],
        models=[_metadata(model, model, f"{model} served at an OpenAI-compatible endpoint.")],
    )


def _agent_deployment(lm: dict[str, Any], method: str, name: str, args: dict[str, Any], *,
                      max_sequence_length: int) -> dict[str, Any]:
    return {
        "name": name, "model_name": deployment_name(lm["model"], method), "tokenizer_name": APPROX_TOKENIZER,
        "max_sequence_length": max_sequence_length,
        "client_spec": {"class_name": AGENT_CLIENT, "args": {"method": method, "model": lm["model"], "lm": lm,
                                                             **args}},
    }


def _method_metadata(model: str, method: str) -> dict[str, Any]:
    name = deployment_name(model, method)
    return _metadata(name, f"{model} ({method_label(method)})",
                     f"{model} answering through a DSPy program ({method_label(method)}).")


def agent_deployments(lm: dict[str, Any], methods: Iterable[str], *, agents_dir: str | None,
                      max_sequence_length: int = 128_000) -> DeploymentSet:
    """One deployment per method for the model in ``lm`` (public LM config, no secret).

    Each is named :func:`~helm_optimizer.naming.deployment_name` (HELM's ``<model>-dspy-<method>``).
    A zero-shot method needs no agent; an optimizer's deployment serves the one agent of that model
    and optimizer in ``agents_dir`` and refuses, naming the deployments to use instead, when the
    directory holds several (other scenarios or folds): see :func:`agent_file_deployment`.
    """
    model = lm["model"]
    out = DeploymentSet()
    for method in methods:
        args = {} if method in ZERO_SHOT_METHODS else {"agents_dir": agents_dir}
        out.model_deployments.append(_agent_deployment(lm, method, deployment_name(model, method), args,
                                                       max_sequence_length=max_sequence_length))
        out.models.append(_method_metadata(model, method))
    return out


def agent_file_deployment(lm: dict[str, Any], method: str, *, scenario: str, fold: int | None, agent_file: Path,
                          max_sequence_length: int = 128_000, seed: int | None = None) -> DeploymentSet:
    """The deployment serving exactly ``agent_file`` (the ``method`` agent of one scenario and fold).

    Named :func:`~helm_optimizer.naming.agent_deployment_name`; its HELM model is the method's
    :func:`~helm_optimizer.naming.deployment_name`, so the leaderboard has one row per model and method.
    """
    name = agent_deployment_name(lm["model"], method, scenario, fold, seed)
    deployment = _agent_deployment(lm, method, name, {"agent_path": str(Path(agent_file).resolve())},
                                   max_sequence_length=max_sequence_length)
    return DeploymentSet(model_deployments=[deployment], models=[_method_metadata(lm["model"], method)])


def scan_agents_dir(agents_dir: Path) -> dict[str, dict[str, Any]]:
    """``{model: {"lm": public LM config, "methods": [...], "agents": [AgentInfo, ...]}}`` from the agents."""
    from helm_optimizer.agents.store import list_agents

    models: dict[str, dict[str, Any]] = {}
    for info in list_agents(agents_dir):
        entry = models.setdefault(info.model, {"lm": None, "methods": set(), "agents": []})
        entry["methods"].add(info.optimizer)
        entry["agents"].append(info)
        lm = info.meta.config.get("lm") if info.meta is not None else None
        if lm and entry["lm"] is None:
            entry["lm"] = lm
    for model, entry in models.items():
        if entry["lm"] is None:
            entry["lm"] = {"model": model}
        entry["methods"] = [METHOD_ZS_PREDICT, METHOD_ZS_COT, *sorted(entry["methods"])]
    return models


def agents_dir_deployments(agents_dir: Path) -> DeploymentSet:
    """Deployments for every model, method and agent file found in ``agents_dir``."""
    root = str(Path(agents_dir).resolve())
    out = DeploymentSet()
    for _model, entry in scan_agents_dir(agents_dir).items():
        out.extend(baseline_deployment(entry["lm"]))
        out.extend(agent_deployments(entry["lm"], entry["methods"], agents_dir=root))
        for info in entry["agents"]:
            out.extend(agent_file_deployment(entry["lm"], info.optimizer, scenario=info.scenario, fold=info.fold,
                                             agent_file=info.path, seed=info.seed))
    return out


def register(deployments: DeploymentSet) -> list[str]:
    """Register plain-data deployments with HELM in this process.

    A name registered again with the same content is left alone; with different content (another
    api_base, agents directory or display name, e.g. a second evaluation in a notebook or a reused
    Ray worker) it is registered again, so HELM never serves an earlier run's settings.
    """
    import cattrs
    import dacite
    from helm.benchmark.model_deployment_registry import ModelDeployment, register_model_deployment
    from helm.benchmark.model_metadata_registry import ModelMetadata, register_model_metadata
    from helm.benchmark.tokenizer_config_registry import TokenizerConfig, register_tokenizer_config

    from helm_optimizer._io import fingerprint

    def register_tokenizer(d: dict[str, Any]) -> None:
        register_tokenizer_config(cattrs.structure(d, TokenizerConfig))

    def register_metadata(d: dict[str, Any]) -> None:
        register_model_metadata(dacite.from_dict(ModelMetadata, d))

    def register_deployment(d: dict[str, Any]) -> None:
        register_model_deployment(cattrs.structure(d, ModelDeployment))

    names = []
    kinds: tuple[tuple[str, list[dict[str, Any]], Callable[[dict[str, Any]], None]], ...] = (
        ("tok", deployments.tokenizer_configs, register_tokenizer),
        ("meta", deployments.models, register_metadata),
        ("dep", deployments.model_deployments, register_deployment),
    )
    with _lock:
        for kind, items, add in kinds:
            for item in items:
                key, content = f"{kind}:{item['name']}", fingerprint(item)
                if _registered.get(key) != content:
                    if key in _registered:
                        logger.debug("Re-registering %s with new settings", key)
                    add(item)
                    _registered[key] = content
                if kind == "dep":
                    names.append(item["name"])
    return names


_LEDGER_CLIENTS = (AGENT_CLIENT, "helm_optimizer.plugin.clients.OpenAICompatibleClient",
                   "helm_optimizer.plugin.clients.EmbeddedOpenAIClient")


def attach_usage_ledger(deployment: str, ledger: str) -> bool:
    """Re-register ``deployment`` with ``usage_ledger=ledger`` in its client arguments (our clients only).

    Returns False, changing nothing, for a deployment served by a client of HELM's own, whose
    calls are then counted from HELM's output alone (retries unknown).
    """
    import dataclasses

    from helm.benchmark.model_deployment_registry import get_model_deployment, register_model_deployment

    current = get_model_deployment(deployment)
    if current.client_spec.class_name not in _LEDGER_CLIENTS:
        return False
    spec = dataclasses.replace(current.client_spec, args={**current.client_spec.args, "usage_ledger": ledger})
    with _lock:
        register_model_deployment(dataclasses.replace(current, client_spec=spec))
        _registered.pop(f"dep:{deployment}", None)  # what HELM holds now differs from the plain entry
    return True


def register_core() -> None:
    register(core_set())


def register_agents_dir(agents_dir: Path) -> list[str]:
    """Register deployments for every model, method and agent file found in ``agents_dir``."""
    return register(agents_dir_deployments(agents_dir))


def write_prod_env(local_path: Path, deployments: DeploymentSet) -> list[Path]:
    """Write ``model_deployments.yaml``, ``model_metadata.yaml`` and ``tokenizer_configs.yaml``.

    The files hold no secret: clients read keys from the environment variable named in their args.
    Existing entries with other names are kept.
    """
    import yaml

    from helm_optimizer._io import write_text_atomic

    local_path = Path(local_path)
    written = []
    for filename, key, items in (
        ("model_deployments.yaml", "model_deployments", deployments.model_deployments),
        ("model_metadata.yaml", "models", deployments.models),
        ("tokenizer_configs.yaml", "tokenizer_configs", deployments.tokenizer_configs),
    ):
        path = local_path / filename
        existing: list[dict[str, Any]] = []
        if path.is_file():
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            existing = [e for e in loaded.get(key, []) if e.get("name") not in {i["name"] for i in items}]
        merged = existing + list({i["name"]: i for i in items}.values())
        write_text_atomic(path, yaml.safe_dump({key: merged}, sort_keys=False, allow_unicode=True))
        written.append(path)
    return written


def env_agents_dirs() -> list[Path]:
    """Agents directories named in ``HELM_OPTIMIZER_AGENTS_DIR`` (``os.pathsep``-separated)."""
    raw = os.environ.get("HELM_OPTIMIZER_AGENTS_DIR", "")
    return [Path(p) for p in raw.split(os.pathsep) if p]
