"""Run specs this package registers with HELM.

* ``hopt_medcalc_bench``, ``hopt_medec``, ``hopt_head_qa``, ``hopt_medbullets``: HELM's own run spec
  for the benchmark (same prompt, adapter and official metrics), plus our corrected metric where
  HELM's is defective, reading the benchmark files from ``data_dir`` (or ``HELM_OPTIMIZER_DATA_DIR``)
  when given. Optional ``eval_limit``, ``seed``, ``fold`` and ``num_folds`` evaluate a deterministic
  subset or cross-fitting fold, as a sweep does.
"""

from __future__ import annotations

import os
from typing import Any

from helm.benchmark.run_spec import RunSpec, run_spec_function

from helm_optimizer.helm.profiles import apply_profile
from helm_optimizer.helm.subsets import evaluation_run_spec

__all__ = ["hopt_head_qa", "hopt_medbullets", "hopt_medcalc_bench", "hopt_medec"]


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "", "None") else int(value)


def _medical_variant(helm_name: str, base: RunSpec, args: dict[str, str | None], *, data_dir: str | None,
                     seed: str, eval_limit: str | None, fold: str | None, num_folds: str) -> RunSpec:
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
