"""Run specs this package registers with HELM.

* ``hopt_medcalc_bench``, ``hopt_medec``, ``hopt_head_qa``, ``hopt_medbullets``: HELM's own run spec
  for the benchmark (same prompt, adapter and official metrics), plus our corrected metric where
  HELM's is defective, reading the benchmark files from ``data_dir`` (or ``HELM_OPTIMIZER_DATA_DIR``)
  when given. Optional ``eval_limit``, ``seed``, ``fold`` and ``num_folds`` evaluate a deterministic
  subset or cross-fitting fold, as a sweep does.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from helm.benchmark.run_spec import RunSpec, run_spec_function

__all__ = ["data_dir_variable", "evaluation_run_spec"]


def data_dir_variable(data_dir: str) -> str:
    """The environment variable that stands for ``data_dir`` in an evaluation run spec's scenario arguments.

    HELM processes that rebuild the scenario later (``helm-summarize``) need it set to ``data_dir``.
    """
    import hashlib

    return "HELM_OPTIMIZER_DATA_DIR_" + hashlib.sha256(data_dir.encode()).hexdigest()[:8].upper()


def evaluation_run_spec(run_spec: Any, *, name: str, seed: int = 0, eval_limit: int | None = None,
                        fold: int | None = None, num_folds: int = 1, main_split: str = "test") -> Any:
    """``run_spec`` evaluated on a deterministic subset / fold of its test split, renamed ``name``.

    A run spec without groups gets one named after the scenario, so HELM's leaderboard shows it.
    """

    from helm.benchmark.scenarios.scenario import ScenarioSpec

    from helm_optimizer.plugin.eval_scenario import format_subset

    groups = list(run_spec.groups) or [name.split(":", 1)[0]]
    if eval_limit is None and num_folds <= 1:
        return dataclasses.replace(run_spec, name=name, groups=groups)
    inner_args = dict(run_spec.scenario_spec.args)
    data_dir = inner_args.get("data_dir")
    if isinstance(data_dir, str) and data_dir and not data_dir.startswith("$"):
        # A long path in the scenario arguments makes HELM's leaderboard file names too long.
        variable = data_dir_variable(data_dir)
        os.environ[variable] = data_dir
        inner_args["data_dir"] = "$" + variable
    subset = format_subset(seed=seed, eval_limit=eval_limit, fold=fold, num_folds=num_folds, split=main_split)
    spec = ScenarioSpec(
        class_name="helm_optimizer.plugin.eval_scenario.EvalSubsetScenario",
        args={"of": run_spec.scenario_spec.class_name, "subset": subset, **inner_args},
    )
    return dataclasses.replace(run_spec, name=name, scenario_spec=spec, groups=groups)


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "", "None") else int(value)


def _medical_variant(helm_name: str, base: RunSpec, args: dict[str, str | None], *, data_dir: str | None,
                     seed: str, eval_limit: str | None, fold: str | None, num_folds: str) -> RunSpec:
    from helm_optimizer.scenarios.profiles import apply_profile

    resolved = data_dir or os.environ.get("HELM_OPTIMIZER_DATA_DIR") or None
    run_spec, _, _, _ = apply_profile(helm_name, base, resolved)
    parts = [f"{k}={v}" for k, v in args.items() if v is not None]
    for key, value in (("eval_limit", eval_limit), ("seed", seed if eval_limit or fold else None),
                       ("fold", fold), ("num_folds", num_folds if fold is not None else None)):
        if value not in (None, "", "None"):
            parts.append(f"{key}={value}")
    name = f"hopt_{helm_name}" + (":" + ",".join(parts) if parts else "")
    result: RunSpec = evaluation_run_spec(
        run_spec, name=name, seed=int(seed), eval_limit=_optional_int(eval_limit), fold=_optional_int(fold),
        num_folds=int(num_folds) if fold is not None else 1,
    )
    return result


@run_spec_function("hopt_medcalc_bench")
def hopt_medcalc_bench(version: str | None = None, data_dir: str | None = None, seed: str = "0",
                       eval_limit: str | None = None, fold: str | None = None, num_folds: str = "2") -> RunSpec:
    from helm.benchmark.run_specs.medhelm_run_specs import get_medcalc_bench_spec

    return _medical_variant("medcalc_bench", get_medcalc_bench_spec(version), {"version": version},
                            data_dir=data_dir, seed=seed, eval_limit=eval_limit, fold=fold, num_folds=num_folds)


@run_spec_function("hopt_medec")
def hopt_medec(data_dir: str | None = None, seed: str = "0", eval_limit: str | None = None,
               fold: str | None = None, num_folds: str = "2") -> RunSpec:
    from helm.benchmark.run_specs.medhelm_run_specs import get_medec_run_spec

    return _medical_variant("medec", get_medec_run_spec(), {}, data_dir=data_dir, seed=seed,
                            eval_limit=eval_limit, fold=fold, num_folds=num_folds)


@run_spec_function("hopt_head_qa")
def hopt_head_qa(language: str = "en", category: str | None = None, data_dir: str | None = None, seed: str = "0",
                 eval_limit: str | None = None, fold: str | None = None, num_folds: str = "2") -> RunSpec:
    from helm.benchmark.run_specs.medhelm_run_specs import get_head_qa_run_spec

    return _medical_variant("head_qa", get_head_qa_run_spec(language, category),
                            {"language": language, "category": category}, data_dir=data_dir, seed=seed,
                            eval_limit=eval_limit, fold=fold, num_folds=num_folds)


@run_spec_function("hopt_medbullets")
def hopt_medbullets(data_dir: str | None = None, seed: str = "0", eval_limit: str | None = None,
                    fold: str | None = None, num_folds: str = "2") -> RunSpec:
    from helm.benchmark.run_specs.medhelm_run_specs import get_medbullets_run_spec

    return _medical_variant("medbullets", get_medbullets_run_spec(), {}, data_dir=data_dir, seed=seed,
                            eval_limit=eval_limit, fold=fold, num_folds=num_folds)
