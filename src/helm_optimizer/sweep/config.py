"""The sweep configuration file (YAML or TOML), replacing the reference tool's ``run.sh``.

Example (YAML)::

    output_dir: sweep-output
    suite: my-sweep
    seed: 0                           # the evaluated instances and folds
    seeds: [0, 1, 2]                  # optimizer seeds (optional): each cell optimized once per seed
    data_dir: ../shared/data          # local copies of the benchmark files (optional)
    scenarios: [head_qa, medbullets]  # HELM run entries (or {entry: ..., on_overlap: drop})
    optimizers: [BootstrapFewShotWithRandomSearch, MIPROv2]
    models:
      - model: openai/gpt-4o
        api_key_env: OPENAI_API_KEY   # the NAME of the variable, never the key
        prompt_model: {model: openai/gpt-4o, api_key_env: OPENAI_API_KEY}
        limits: {max_concurrency: 16, requests_per_minute: 500, tokens_per_minute: 300000}
      - model: local/smollm2          # the embedded model, started on demand
    max_bootstrapped_demos: 3
    max_labeled_demos: 3
    num_threads: 8
    limit: 100        # optimization examples per cell (half validation)
    eval_limit: 200   # test instances evaluated per scenario (same ones for every method)

Loading validates everything that can be checked without an LM call: unknown keys, scenarios,
optimizers, missing key variables, data and plugin paths. Errors name the file, the line and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from helm_optimizer.config import LMConfig
from helm_optimizer.errors import ConfigError
from helm_optimizer.serving.limiter import EndpointLimits

__all__ = ["ModelSpec", "ScenarioSpec", "SweepConfig", "load_sweep_config", "validate_sweep", "with_timeout"]


class ModelSpec(LMConfig):
    """A model of the sweep: how to reach it, its optional prompt model and HELM baseline deployment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt_model: LMConfig | None = None
    helm_deployment: str | None = Field(
        default=None, description="HELM deployment for the baseline (default: the model at api_base)")
    allow_model_mismatch: bool = Field(
        default=False, description="evaluate even when helm_deployment serves another model than model")
    limits: EndpointLimits = Field(default_factory=EndpointLimits,
                                   description="what the model's endpoint takes, over the whole sweep")

    @field_validator("api_key")
    @classmethod
    def _no_literal_key(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("a sweep file must not hold an API key; put the key in an environment variable "
                             "and name it with api_key_env")
        return value

    def lm(self) -> LMConfig:
        return LMConfig.model_validate(self.model_dump(exclude={"prompt_model", "helm_deployment",
                                                                "allow_model_mismatch", "limits"}))


class ScenarioSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    entry: str = Field(min_length=1)
    data_dir: Path | None = None
    metric: str | None = None
    on_overlap: Literal["refuse", "drop"] | None = None


class SweepConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    scenarios: list[ScenarioSpec] = Field(min_length=1)
    optimizers: list[str] = Field(min_length=1)
    models: list[ModelSpec] = Field(min_length=1)
    methods: list[str] = Field(default_factory=lambda: ["baseline", "ZeroShotPredict", "ZeroShotCoT"])
    output_dir: Path = Path("sweep-output")
    suite: str = Field(default="helm-optimizer", pattern=r"^[A-Za-z0-9_.\-]+$")
    seed: int = 0
    seeds: list[int] | None = Field(
        default=None, min_length=1, description="optimizer seeds: each cell is optimized once per seed on the "
        "same evaluation instances (chosen by seed); the report shows the spread over seeds")
    data_dir: Path | None = None
    plugins: list[str] = Field(default_factory=list)
    program: Literal["predict", "cot"] = "cot"
    auto: Literal["light", "medium", "heavy"] | None = "light"
    max_bootstrapped_demos: int = Field(default=3, ge=0)
    max_labeled_demos: int = Field(default=3, ge=0)
    num_threads: int = Field(default=8, ge=1, le=256)
    limit: int | None = Field(default=None, ge=2)
    val_size: int | None = Field(default=None, gt=0)
    train_size: int | None = Field(default=None, gt=0)
    eval_limit: int | None = Field(default=None, gt=0)
    on_overlap: Literal["refuse", "drop"] = "refuse"
    max_calls: int | None = Field(default=None, gt=0, description="per optimization cell")
    max_cost: float | None = Field(default=None, gt=0, description="USD for the whole sweep")
    max_cost_per_cell: float | None = Field(default=None, gt=0, description="USD per optimization cell")
    helm_workers: int | None = Field(default=None, ge=1, le=64,
                                     description="HELM runs at once (worker processes; default: CPU cores, 2-8)")
    max_parallel_cells: int | None = Field(default=None, ge=1, le=1024,
                                           description="optimizations at once (default: 2 per model, at most 16)")
    estimate_accuracy: float = Field(default=0.5, gt=0, le=1, description="share of right answers assumed "
                                     "when estimating bootstrap calls (--dry-run)")
    optimizer_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    report: bool = True
    summarize: bool = True

    @field_validator("scenarios", mode="before")
    @classmethod
    def _scenario_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"entry": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("optimizers", "methods", "seeds")
    @classmethod
    def _no_duplicates(cls, value: Any) -> Any:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("lists a name twice")
        return value

    def resolve_paths(self, base: Path) -> SweepConfig:
        """Relative paths in the file are relative to the file's directory."""
        def fix(p: Path | None) -> Path | None:
            if p is None:
                return None
            return p if p.is_absolute() else base / p

        data = self.model_dump()
        data["output_dir"] = fix(self.output_dir) or self.output_dir
        data["data_dir"] = fix(self.data_dir) if self.data_dir else None
        data["plugins"] = [str(base / p) if (p.endswith(".py") or "/" in p) and not os.path.isabs(p) else p
                           for p in self.plugins]
        for scenario in data["scenarios"]:
            if scenario.get("data_dir"):
                scenario["data_dir"] = fix(Path(scenario["data_dir"]))
        return SweepConfig.model_validate(data)


def _line_of(path: Path, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the YAML/TOML node at ``loc``, best effort."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            node: Any = yaml.compose(text)
        except yaml.YAMLError:
            return None
        line: int | None = None
        for key in loc:
            if node is None:
                break
            line = node.start_mark.line + 1
            if isinstance(node, yaml.MappingNode):
                match = next(((k, v) for k, v in node.value if k.value == key), None)
                if match is None:
                    return line
                line = match[0].start_mark.line + 1
                node = match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                break
        return line
    # TOML: the first line that mentions the innermost string key
    keys = [k for k in loc if isinstance(k, str)]
    if keys:
        for number, raw in enumerate(text.splitlines(), start=1):
            if raw.strip().startswith(keys[-1]) or f'"{keys[-1]}"' in raw or f"[{keys[-1]}" in raw:
                return number
    return None


def load_sweep_config(path: Path) -> SweepConfig:
    """Parse and validate a sweep file; every error names the file and line."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"Sweep config {path} is a directory; give the .yaml or .toml file inside it.")
    if not path.is_file():
        raise ConfigError(f"Sweep config {path} does not exist; write one (see docs/sweep.md) or fix the path.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Sweep config {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read sweep config {path}: {exc.strerror or exc}; fix its permissions.") from None
    if not text.strip():
        raise ConfigError(f"Sweep config {path} is empty; it needs scenarios, optimizers and models "
                          "(see docs/sweep.md).")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            raw = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)
        else:
            raise ConfigError(f"Sweep config {path} must end in .yaml, .yml or .toml.")
    except ConfigError:
        raise
    except Exception as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{path}{where}: not valid {path.suffix[1:].upper()}: {problem}; fix the syntax "
                          "there.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the file must hold a mapping of settings (scenarios, optimizers, models, ...).")
    try:
        config = SweepConfig.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key is reported both as unknown and as a missing required key: name the typo.
        error = next((e for e in errors if e.get("type") == "extra_forbidden"), errors[0])
        loc = tuple(error.get("loc", ()))
        if loc and loc[-1] in ("str", "function-after[_check(), ModelSpec]"):
            loc = loc[:-1]
        line = _line_of(path, loc)
        where = f"{path}:{line}" if line else str(path)
        key = ".".join(str(p) for p in loc) or "(top level)"
        if error.get("type") == "extra_forbidden":
            from helm_optimizer.registry import did_you_mean

            known_keys = sorted(_known_keys(loc))
            hint = did_you_mean(str(loc[-1]), known_keys)
            raise ConfigError(f"{where}: unknown key '{loc[-1]}' at {key}.{hint} Known keys here: "
                              f"{', '.join(known_keys)}.") from None
        if error.get("type") == "missing":
            raise ConfigError(f"{where}: missing required key '{key}'; add it (see docs/sweep.md).") from None
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        raise ConfigError(f"{where}: {key}: {message}.") from None
    return config.resolve_paths(path.parent)


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = SweepConfig
    for key in loc[:-1]:
        if isinstance(key, int):
            continue
        field = model.model_fields.get(str(key))
        annotation = getattr(field, "annotation", None) if field else None
        inner = getattr(annotation, "__args__", (annotation,))
        nested = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nested is None:
            break
        model = nested
    return list(model.model_fields)


def with_timeout(config: SweepConfig, timeout: float) -> SweepConfig:
    """``config`` with every model (and prompt model) waiting ``timeout`` seconds for each LM reply."""
    models = [m.model_copy(update={
        "timeout": timeout,
        "prompt_model": m.prompt_model.model_copy(update={"timeout": timeout}) if m.prompt_model else None,
    }) for m in config.models]
    return config.model_copy(update={"models": models})


def _check_baseline_models(config: SweepConfig, where: str) -> None:
    """A baseline deployment serving another model than the DSPy methods call is refused (unless allowed).

    Deployments HELM does not know yet (defined in the run's own prod_env) are checked at evaluation.
    """
    from helm.benchmark.model_deployment_registry import ModelDeploymentNotFoundError, get_model_deployment

    for spec in config.models:
        if not spec.helm_deployment or spec.allow_model_mismatch:
            continue
        try:
            served = get_model_deployment(spec.helm_deployment).model_name or spec.helm_deployment
        except ModelDeploymentNotFoundError:
            continue
        if served != spec.model:
            raise ConfigError(
                f"{where}models ({spec.model}): helm_deployment '{spec.helm_deployment}' serves {served}, so the "
                f"baseline and the DSPy methods would run on different models; use a deployment of {spec.model} "
                f"(or set model to {served}), or allow_model_mismatch: true to compare them anyway."
            )


def validate_sweep(config: SweepConfig, *, source: Path | None = None) -> list[str]:
    """Resolve every name and key of the sweep before any LM call; returns notes for the user."""
    from helm_optimizer.helm.loading import get_run_spec_function, prepare_helm
    from helm_optimizer.lm import resolve_api_key
    from helm_optimizer.naming import METHOD_BASELINE, parse_run_entry
    from helm_optimizer.optimizers import OPTIMIZERS
    from helm_optimizer.scenarios.custom import CUSTOM_SCENARIOS

    where = f"{source}: " if source else ""
    notes: list[str] = []
    for name in config.optimizers:
        try:
            OPTIMIZERS.get(name)
        except Exception as exc:
            raise ConfigError(f"{where}optimizers: {exc}") from None
    for method in config.methods:
        if method != METHOD_BASELINE and method not in OPTIMIZERS:
            raise ConfigError(f"{where}methods: unknown method '{method}'; use baseline or an optimizer name.")
    for opt_name in config.optimizer_options:
        if opt_name not in config.optimizers:
            raise ConfigError(f"{where}optimizer_options: '{opt_name}' is not in optimizers.")
        cls: Any = OPTIMIZERS.get(opt_name)
        cls(config.optimizer_options[opt_name])  # rejects unknown options
    for spec in config.models:
        for lm in (spec.lm(), spec.prompt_model):
            if lm is None:
                continue
            try:
                resolve_api_key(lm)
            except Exception as exc:
                raise ConfigError(f"{where}models ({lm.model}): {exc}") from None
    data_dirs = [config.data_dir, *(s.data_dir for s in config.scenarios)]
    for data_dir in data_dirs:
        if data_dir is not None and not Path(data_dir).is_dir():
            raise ConfigError(f"{where}data_dir {data_dir} is not a directory; fix the path or remove the key.")
    try:
        prepare_helm(plugins=tuple(config.plugins))
    except Exception as exc:
        raise ConfigError(f"{where}plugins: {exc}") from None
    _check_baseline_models(config, where)
    for scenario in config.scenarios:
        try:
            name, _ = parse_run_entry(scenario.entry)
        except ConfigError as exc:
            raise ConfigError(f"{where}scenarios: {exc}") from None
        if name in CUSTOM_SCENARIOS:
            raise ConfigError(
                f"{where}scenarios: '{name}' is a custom (load_data) scenario; sweeps evaluate in HELM, so give a "
                "HELM run entry, or optimize the custom scenario with `helm-optimizer optimize`."
            )
        try:
            get_run_spec_function(name)
        except Exception as exc:
            raise ConfigError(f"{where}scenarios: {exc}") from None
        if config.summarize:
            _check_leaderboard_names(config, scenario, where)
    return notes


def _check_leaderboard_names(config: SweepConfig, scenario: ScenarioSpec, where: str) -> None:
    """Refuse, before any LM call, scenario arguments too long for helm-summarize's file names.

    Checked on the evaluation run spec with a cross-fitting fold (the longest arguments a sweep gives).
    """
    from helm_optimizer.helm.subsets import check_leaderboard_file_names, evaluation_run_spec
    from helm_optimizer.helm.task import build_task

    data_dir = scenario.data_dir or config.data_dir
    task = build_task(scenario.entry, data_dir=data_dir, plugins=tuple(config.plugins), metric=scenario.metric)
    spec = evaluation_run_spec(task.run_spec, name=task.name, seed=config.seed, eval_limit=config.eval_limit,
                               fold=0, num_folds=2, main_split=task.main_split)
    try:
        check_leaderboard_file_names(spec)
    except ConfigError as exc:
        raise ConfigError(f"{where}scenarios ({scenario.entry}): {exc}") from None
