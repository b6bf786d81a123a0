"""The fidelity check of an exported prompt: HELM's own adapter and the plain model, no DSPy at run time.

The agent's HELM evaluation (its record under ``OUTPUT_DIR/evaluations``) fixes the test instances
and the scenario's adapter. The check re-runs that run spec with the model's baseline deployment
(the model itself, not the agent's DSPy client) and with the agent's exported prompt
(:func:`helm_optimizer.agents.export.helm_instructions`) put before HELM's own instructions, then
reads HELM's score. The gap between the two scores is what exporting the prompt loses (or gains):
DSPy's adapter formats demos, reasoning and the answer field its own way, a plain prompt does not.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helm_optimizer.agents.export import AgentPrompt, helm_instructions, read_prompt
from helm_optimizer.errors import AgentError, ConfigError, HelmOptimizerError
from helm_optimizer.evaluate import record_path
from helm_optimizer.naming import METHOD_BASELINE, method_slug, model_path
from helm_optimizer.plugin.run_specs import data_dir_variable

__all__ = ["FidelityCheck", "check_export", "exported_run_spec"]

logger = logging.getLogger(__name__)

_DATA_DIR_VARIABLE = "HELM_OPTIMIZER_DATA_DIR_"


@dataclass(frozen=True)
class FidelityCheck:
    """The agent's HELM score next to its exported prompt's, on the same instances."""

    metric: str
    split: str
    agent_mean: float
    export_mean: float
    n: int
    same_score: int
    """Instances on which the exported prompt scored exactly what the agent scored."""
    agent_run: Path
    export_run: Path

    @property
    def gap(self) -> float:
        """Exported prompt minus agent (negative: the export loses accuracy)."""
        return self.export_mean - self.agent_mean


def _output_dir_of(agent: Path, scenario: str, model: str) -> Path:
    """OUTPUT_DIR of ``OUTPUT_DIR/agents/<scenario>/<model path>/<file>``."""
    depth = 3 + len(model_path(model).split("/"))  # file, model segments, scenario, "agents"
    parents = agent.resolve().parents
    if len(parents) <= depth - 1 or parents[depth - 2].name != "agents":
        raise ConfigError(f"{agent} is not inside OUTPUT_DIR/agents/<scenario>/<model>/; pass --output-dir.")
    return parents[depth - 1]


def _read_json(path: Path, what: str, fix: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"No {what} at {path}; {fix}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read {what} {path} ({exc}); {fix}") from None


def _resolve_data_dirs(args: dict[str, Any], data_dir: str | None) -> dict[str, Any]:
    """Arguments ``$HELM_OPTIMIZER_DATA_DIR_<hash>`` (see ``evaluation_run_spec``) back to the data directory."""
    out = dict(args)
    for key, value in args.items():
        if not (isinstance(value, str) and value.startswith("$" + _DATA_DIR_VARIABLE)):
            continue
        name = value[1:]
        if name in os.environ:
            out[key] = os.environ[name]
            continue
        if data_dir is None:
            raise ConfigError("The agent's HELM run read its data from a directory this process does not know; "
                              "pass --data-dir (the directory it was evaluated with).")
        if name != data_dir_variable(str(data_dir)):
            raise ConfigError(f"--data-dir {data_dir} is not the directory the agent was evaluated with; "
                              "pass that one.")
        out[key] = str(data_dir)
    return out


def exported_run_spec(agent_spec: Any, prompt: AgentPrompt, *, deployment: str, model: str, name: str,
                      data_dir: str | None) -> Any:
    """The agent's run spec answered by ``deployment`` with the exported prompt before HELM's instructions."""
    adapter = agent_spec.adapter_spec
    prefix = helm_instructions(prompt)
    own = adapter.instructions or ""
    instructions = f"{prefix}\n\n{own}" if prefix and own else (prefix or own)
    adapter = dataclasses.replace(adapter, instructions=instructions, max_train_instances=0,
                                  model_deployment=deployment, model=model)
    scenario = dataclasses.replace(agent_spec.scenario_spec,
                                   args=_resolve_data_dirs(dict(agent_spec.scenario_spec.args), data_dir))
    return dataclasses.replace(agent_spec, name=name, adapter_spec=adapter, scenario_spec=scenario)


def _instance_scores(run_dir: Path, metric: str, split: str) -> dict[str, float]:
    data = _read_json(run_dir / "per_instance_stats.json", "HELM per-instance stats", "re-run the evaluation.")
    scores: dict[str, list[float]] = {}
    for entry in data:
        if entry.get("perturbation") is not None:
            continue
        for stat in entry.get("stats", []):
            name = stat.get("name", {})
            if name.get("name") == metric and name.get("split") == split and not name.get("perturbation"):
                if stat.get("mean") is not None:
                    scores.setdefault(str(entry["instance_id"]), []).append(float(stat["mean"]))
                break
    return {k: sum(v) / len(v) for k, v in scores.items()}


def _baseline_deployment(output_dir: Path, scenario: str, lm: dict[str, Any]) -> str:
    """The model's own deployment, as its baseline evaluation used it (registered here when it is ours)."""
    from helm_optimizer.plugin.deployments import baseline_deployment, register

    baseline = record_path(output_dir, scenario, lm["model"], METHOD_BASELINE, None)
    if baseline.is_file():
        deployment = str(_read_json(baseline, "baseline record", "re-run the evaluation.").get("deployment") or "")
        if deployment:
            if deployment == lm["model"] and lm.get("api_base"):
                register(baseline_deployment(lm))
            return deployment
    if lm.get("api_base"):
        register(baseline_deployment(lm))
    return str(lm["model"])


def check_export(agent: Path, *, output_dir: Path | None = None, data_dir: str | None = None,
                 plugins: tuple[str, ...] = (), num_threads: int = 4) -> FidelityCheck:
    """Evaluate ``agent``'s exported prompt in HELM on the instances of its evaluation record (see module doc)."""
    from helm.benchmark.model_deployment_registry import ModelDeploymentNotFoundError, get_model_deployment
    from helm.benchmark.run_spec import RunSpec
    from helm.common.codec import from_json

    from helm_optimizer.agents.store import read_meta
    from helm_optimizer.plugin.loading import prepare_helm
    from helm_optimizer.plugin.runner import run_benchmark

    prompt = read_prompt(agent)
    meta = read_meta(agent)
    if not meta:
        raise AgentError(f"{agent} has no metadata (.meta.json), so its evaluation cannot be found; evaluate it "
                         "with `helm-optimizer evaluate` after `helm-optimizer register`, or check an agent this "
                         "tool wrote.")
    scenario, model, method, fold = meta["scenario"], meta["model"], meta["optimizer"], meta.get("fold")
    config = meta.get("config") or {}
    lm = dict(config.get("lm") or {"model": model})
    output_dir = Path(output_dir) if output_dir is not None else _output_dir_of(agent, scenario, model)
    data_dir = data_dir if data_dir is not None else config.get("data_dir")
    target = record_path(output_dir, scenario, model, method, fold)
    record = _read_json(target, "HELM evaluation of this agent",
                        f"run `helm-optimizer evaluate --scenario {meta.get('run_entry', scenario)} --model {model} "
                        f"--methods {method} --output-dir {output_dir}` (with the same --max-eval-instances) first.")
    run_dir = Path(record["run_dir"])
    agent_run = run_dir if run_dir.is_absolute() else output_dir / run_dir
    agent_spec = from_json((agent_run / "run_spec.json").read_text(encoding="utf-8"), RunSpec)
    local_path = output_dir / "helm" / "prod_env"
    prepare_helm(plugins=plugins, local_path=local_path if local_path.is_dir() else None)
    deployment = _baseline_deployment(output_dir, scenario, lm)
    try:
        model_name = str(get_model_deployment(deployment).model_name or deployment)
    except ModelDeploymentNotFoundError:
        raise ConfigError(f"HELM has no deployment '{deployment}' for {model}'s plain prompt; evaluate the "
                          "baseline first (`helm-optimizer evaluate --methods baseline`) or give the model an "
                          "api_base.") from None
    agent_model = str(agent_spec.adapter_spec.model_deployment)
    name = agent_spec.name.replace(f"model={agent_model.replace('/', '_')}",
                                   f"model={deployment.replace('/', '_')},prompt_of={method_slug(method)}")
    if name == agent_spec.name:
        name = f"{agent_spec.name},prompt_of={method_slug(method)}"
    spec = exported_run_spec(agent_spec, prompt, deployment=deployment, model=model_name, name=name,
                             data_dir=str(data_dir) if data_dir else None)
    metric, split = str(record["main_metric"]), str(record["split"])
    logger.info("Evaluating the exported prompt of %s as HELM run %s", agent, name)
    result = run_benchmark(run_specs=[spec], suite=str(record["suite"]), output_path=output_dir / "helm" /
                           "benchmark_output", local_path=local_path, num_threads=num_threads)
    [run] = result.runs
    stat = run.stat(metric, split)
    if stat is None:
        raise HelmOptimizerError(f"HELM run {name} produced no '{metric}' on '{split}'; see {run.path}.")
    ours, theirs = _instance_scores(run.path, metric, split), _instance_scores(agent_run, metric, split)
    common = ours.keys() & theirs.keys()
    return FidelityCheck(
        metric=metric, split=split, agent_mean=float(record["mean"]),
        export_mean=float(stat.get("mean", stat["sum"] / max(1, stat["count"]))), n=len(ours),
        same_score=sum(1 for k in common if ours[k] == theirs[k]), agent_run=agent_run, export_run=run.path,
    )
