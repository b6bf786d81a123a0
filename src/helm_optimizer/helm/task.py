"""The HELM side of a scenario: its run spec, instances, exact prompts and metrics.

A *task* is built from a HELM run entry through HELM's own run spec registry (after loading
plugins). Prompts come from HELM's own adapter for the run spec with no in-context examples, so
the text DSPy optimizes on is the text HELM sends at evaluation; gold answers are in the form
HELM's metric expects (the letter for multiple choice).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_optimizer._io import os_error
from helm_optimizer.errors import ConfigError, DataError, HelmOptimizerError
from helm_optimizer.helm.loading import get_run_spec_function, prepare_helm, validate_run_spec_classes
from helm_optimizer.helm.profiles import ScenarioProfile, apply_profile
from helm_optimizer.helm.runner import quiet_stdout
from helm_optimizer.naming import parse_run_entry, scenario_key

__all__ = [
    "PROMPT_BUILDER_DEPLOYMENT",
    "SUPPORTED_ADAPTER_METHODS",
    "HelmTask",
    "PromptedInstance",
    "build_task",
    "request_to_inputs",
]

logger = logging.getLogger(__name__)

PROMPT_BUILDER_DEPLOYMENT = "helm-optimizer/prompt-builder"
SUPPORTED_ADAPTER_METHODS = (
    "generation",
    "multiple_choice_joint",
    "multiple_choice_joint_chain_of_thought",
    "chat",
)
# Run entry arguments HELM treats as run expanders or that only pick the model.
_MODEL_ARGS = ("model", "model_deployment")


def request_to_inputs(request: Any) -> str:
    """The text an agent receives for a HELM request: the prompt, or the chat messages joined.

    The same function builds optimization examples and answers evaluation requests, so both sides
    always see identical text.
    """
    prompt = getattr(request, "prompt", "") or ""
    if prompt:
        return str(prompt)
    messages = getattr(request, "messages", None) or []
    return "\n\n".join(str(m.get("content", "")) for m in messages if m.get("content"))


@dataclass(frozen=True)
class PromptedInstance:
    """One HELM instance with the exact prompt HELM sends and the gold answer HELM's metric expects."""

    instance_id: str
    split: str
    inputs: str
    output: str
    question: str
    request_state: Any = field(repr=False, compare=False)


@dataclass
class HelmTask:
    """A HELM run spec ready to produce prompts and score predictions."""

    entry: str
    name: str
    args: dict[str, str]
    key: str
    run_spec: Any
    main_metric: str
    main_split: str
    data_dir: str | None
    profile: ScenarioProfile | None = None
    notes: list[str] = field(default_factory=list)
    _adapter: Any = field(default=None, repr=False)
    _metric_service: Any = field(default=None, repr=False)

    @property
    def adapter_spec(self) -> Any:
        return self.run_spec.adapter_spec

    @property
    def scenario_spec(self) -> Any:
        return self.run_spec.scenario_spec

    # -- instances ---------------------------------------------------------------------------
    def scenario_output_path(self, cache_root: Path) -> str:
        from helm.benchmark.scenarios.scenario import get_scenario_cache_path

        return str(get_scenario_cache_path(str(cache_root / "helm"), self.name))

    def load_instances(self, cache_root: Path) -> list[Any]:
        """All instances of the scenario (every split), with HELM's ids."""
        from helm.benchmark.scenarios.scenario import create_scenario, with_instance_ids

        try:
            scenario = create_scenario(self.scenario_spec)
            instances = list(scenario.get_instances(self.scenario_output_path(cache_root)))
        except HelmOptimizerError:
            raise
        except FileNotFoundError as exc:
            raise DataError(
                f"Scenario '{self.entry}' could not read its data: {exc}; pass --data-dir with local copies "
                "of the benchmark files or run with network access."
            ) from exc
        except Exception as exc:
            raise DataError(
                f"Scenario '{self.entry}' failed to load its instances: {type(exc).__name__}: {exc}. "
                "Offline, pass --data-dir with local copies of the benchmark files."
            ) from exc
        if any(instance.id is None for instance in instances):
            instances = with_instance_ids(instances)
        return instances

    # -- prompts -----------------------------------------------------------------------------
    def _get_adapter(self) -> Any:
        if self._adapter is None:
            from helm.benchmark.adaptation.adapters.adapter_factory import AdapterFactory

            self._adapter = AdapterFactory.get_adapter(self.adapter_spec, self.metric_service)
        return self._adapter

    @property
    def metric_service(self) -> Any:
        if self._metric_service is None:
            from helm.benchmark.metrics.metric_service import MetricService
            from helm.common.cache_backend_config import BlackHoleCacheBackendConfig
            from helm.proxy.services.server_service import ServerService

            # One per user: another user's directory in a shared /tmp would not be writable.
            user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
            base = Path(tempfile.gettempdir()) / f"helm-optimizer-prod-env-{user}"
            try:
                base.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise os_error(base, exc) from exc
            with quiet_stdout():
                service = ServerService(base_path=str(base), root_mode=True,
                                        cache_backend_config=BlackHoleCacheBackendConfig())
            self._metric_service = MetricService(service.context)
        return self._metric_service

    def prompt(self, instance: Any) -> PromptedInstance | None:
        """The prompt and gold answer for one instance, or None when it has no correct reference."""
        adapter = self._get_adapter()
        states = adapter.generate_requests(instance, 0, [])
        if len(states) != 1:
            raise ConfigError(
                f"Scenario '{self.entry}' produces {len(states)} requests per instance "
                f"(adapter method '{self.adapter_spec.method}'); only one-request methods can be optimized."
            )
        state = states[0]
        gold = self._gold(instance, state)
        if gold is None:
            return None
        return PromptedInstance(
            instance_id=str(instance.id),
            split=str(instance.split),
            inputs=request_to_inputs(state.request),
            output=gold,
            question=str(instance.input.text or ""),
            request_state=state,
        )

    def _gold(self, instance: Any, state: Any) -> str | None:
        correct = [i for i, ref in enumerate(instance.references) if ref.is_correct]
        if not correct:
            return None
        if state.output_mapping:
            letters = list(state.output_mapping.keys())
            picked = correct if self.adapter_spec.multi_label else correct[:1]
            return ", ".join(letters[i] for i in picked)
        if self.adapter_spec.multi_label:
            return ", ".join(instance.references[i].output.text for i in correct)
        return str(instance.references[correct[0]].output.text)

    # -- metrics -----------------------------------------------------------------------------
    def metrics(self) -> list[Any]:
        from helm.benchmark.metrics.metric import create_metric

        return [create_metric(spec) for spec in self.run_spec.metric_specs]


def _main_metric_and_split(run_spec: Any, override: str | None) -> tuple[str, str]:
    from helm.benchmark.scenarios.scenario import create_scenario

    split = "test"
    name: str | None = None
    try:
        metadata = create_scenario(run_spec.scenario_spec).get_metadata()
        name = metadata.main_metric
        split = metadata.main_split or "test"
    except NotImplementedError:
        pass
    except Exception as exc:  # a scenario whose constructor needs files is checked again on load
        logger.debug("Could not read scenario metadata: %s", exc)
    if override:
        return override, split
    if name:
        return str(name), split
    for spec in run_spec.metric_specs:
        names = spec.args.get("names") if isinstance(spec.args, dict) else None
        if names:
            return str(names[0]), split
    raise ConfigError(
        f"Run spec '{run_spec.name}' declares no main metric (its scenario has no get_metadata()); "
        "pass --metric NAME with the HELM metric to optimize."
    )


def _with_prompt_builder(entry_name: str, args: dict[str, str]) -> str:
    kept = {k: v for k, v in args.items() if k not in _MODEL_ARGS}
    kept["model"] = PROMPT_BUILDER_DEPLOYMENT
    return entry_name + ":" + ",".join(f"{k}={v}" for k, v in kept.items())


def build_task(entry: str, *, data_dir: str | os.PathLike[str] | None = None,
               plugins: Sequence[str] = (), metric: str | None = None,
               output_path: Path | None = None) -> HelmTask:
    """Build the HELM task for a run entry (built-in or from a plugin)."""
    name, args = parse_run_entry(entry)
    prepare_helm(plugins=plugins)
    get_run_spec_function(name)  # unknown names fail here with suggestions

    from helm.benchmark.run_spec_factory import construct_run_specs
    from helm.benchmark.runner import set_benchmark_output_path
    from helm.common.object_spec import parse_object_spec

    set_benchmark_output_path(str(output_path or Path(tempfile.gettempdir()) / "helm-optimizer-benchmark-output"))
    try:
        run_specs = construct_run_specs(parse_object_spec(_with_prompt_builder(name, args)))
    except TypeError as exc:
        raise ConfigError(f"Run entry '{entry}' has arguments its run spec does not take: {exc}.") from exc
    except HelmOptimizerError:
        raise
    except Exception as exc:
        raise ConfigError(f"Run entry '{entry}' could not be built by HELM: {type(exc).__name__}: {exc}.") from exc
    if len(run_specs) != 1:
        raise ConfigError(f"Run entry '{entry}' expands to {len(run_specs)} run specs; give one variant.")
    run_spec = run_specs[0]
    if run_spec.annotators:
        raise ConfigError(
            f"Run entry '{entry}' is scored by annotators (LLM judges); optimizing against a judge is not "
            "supported. Pick a scenario with reference-based metrics."
        )
    if run_spec.adapter_spec.method not in SUPPORTED_ADAPTER_METHODS:
        raise ConfigError(
            f"Run entry '{entry}' uses adapter method '{run_spec.adapter_spec.method}'; supported: "
            f"{', '.join(SUPPORTED_ADAPTER_METHODS)}."
        )

    resolved_dir = str(data_dir) if data_dir is not None else os.environ.get("HELM_OPTIMIZER_DATA_DIR") or None
    run_spec, profile, override, notes = apply_profile(name, run_spec, resolved_dir)
    validate_run_spec_classes(run_spec)
    main_metric, main_split = _main_metric_and_split(run_spec, metric or override)
    return HelmTask(
        entry=entry,
        name=name,
        args={k: v for k, v in args.items() if k not in _MODEL_ARGS},
        key=scenario_key(entry),
        run_spec=run_spec,
        main_metric=main_metric,
        main_split=main_split,
        data_dir=resolved_dir,
        profile=profile,
        notes=notes,
    )


def replace_scenario_spec(run_spec: Any, class_name: str, extra_args: dict[str, Any]) -> Any:
    spec = dataclasses.replace(run_spec.scenario_spec, class_name=class_name,
                               args={**run_spec.scenario_spec.args, **extra_args})
    return dataclasses.replace(run_spec, scenario_spec=spec)
