"""Deterministic evaluation subsets and cross-fitting folds of a scenario's test split.

One function, :func:`eval_plan`, decides which test instances are evaluated (and in which fold);
optimization uses it to hold those instances out, and HELM's evaluation runs use it (through
:class:`helm_optimizer.plugin.eval_scenario.EvalSubsetScenario`) to pick them. The subset travels
to HELM inside the scenario's arguments only, so any process that reads the run spec
(``helm-summarize``, ``helm-server``, a Ray worker) rebuilds the same instances.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from helm_optimizer.errors import ConfigError

__all__ = [
    "EVAL_SUBSET_SCENARIO",
    "GROUP_RULES",
    "check_leaderboard_file_names",
    "eval_plan",
    "evaluation_run_spec",
    "format_subset",
    "group_rule_for",
    "instance_groups",
    "parse_subset",
]

EVAL_SUBSET_SCENARIO = "helm_optimizer.plugin.eval_scenario.EvalSubsetScenario"
_MAX_FILE_NAME_BYTES = 255
_TABLE_SUFFIX = ".json"  # helm-summarize writes each table as .json and .tex

# Named rules that put instances in groups kept whole by eval_plan (never split across folds or cut
# by an evaluation limit). "passage": the text before the question (MedCalc-Bench's patient note).
GROUP_RULES: dict[str, re.Pattern[str]] = {"passage": re.compile(r"(?s)\A(.*)\nQuestion: ")}
_SPACES = re.compile(r"\s+")


def _sorted_ids(ids: Sequence[str]) -> list[str]:
    return sorted(ids, key=lambda s: (len(s), s))


def group_rule_for(scenario_class: str) -> str | None:
    """The group rule of a scenario class (ours or HELM's), from its benchmark profile; None if none."""
    from helm_optimizer.helm.profiles import PROFILES

    for profile in PROFILES.values():
        if scenario_class in (profile.helm_scenario_class, profile.local_scenario_class):
            return profile.fold_group
    return None


def instance_groups(instances: Iterable[Any], rule: str | None) -> dict[str, str]:
    """Instance id -> group key under ``rule`` (see :data:`GROUP_RULES`); empty when ``rule`` is None.

    An instance the rule does not apply to is a group of its own (it is left out of the mapping).
    """
    if rule is None:
        return {}
    pattern = GROUP_RULES[rule]
    out: dict[str, str] = {}
    for instance in instances:
        match = pattern.match(str(instance.input.text or ""))
        if match and match.group(1).strip():
            out[str(instance.id)] = _SPACES.sub(" ", match.group(1)).strip()
    return out


def eval_plan(test_ids: Sequence[str], *, seed: int, eval_limit: int | None, num_folds: int,
              groups: Mapping[str, str] | None = None) -> list[list[str]]:
    """The evaluated test ids, split into ``num_folds`` folds (one fold when not cross-fitting).

    Deterministic in ``seed``; the same function selects the instances of the HELM evaluation runs.
    ``groups`` (instance id -> group key, see :func:`instance_groups`) keeps each group whole: its
    instances land in one fold, and an evaluation limit takes or leaves a group entirely (so no
    instance left out of the evaluation shares a group with an evaluated one). Without groups (or
    with every instance alone in its group) the plan is the plain seeded shuffle.
    """
    members: dict[str, list[str]] = defaultdict(list)
    for instance_id in _sorted_ids(test_ids):
        members[(groups or {}).get(instance_id, "\x00" + instance_id)].append(instance_id)
    units = sorted(members.values(), key=lambda ids: (len(ids[0]), ids[0]))
    rng = random.Random(f"eval-subset:{seed}")
    rng.shuffle(units)
    if eval_limit is not None:
        chosen_units: list[list[str]] = []
        total = 0
        for unit in units:
            if total + len(unit) <= eval_limit:
                chosen_units.append(unit)
                total += len(unit)
            if total == eval_limit:
                break
        units = chosen_units
    if num_folds <= 1:
        return [_sorted_ids([i for unit in units for i in unit])]
    folds: list[list[str]] = [[] for _ in range(num_folds)]
    for unit in units:  # each group to the smallest fold so far (round robin when all are alone)
        min(folds, key=len).extend(unit)
    return [_sorted_ids(fold) for fold in folds]


def parse_subset(subset: str) -> dict[str, str]:
    """``seed=S,limit=N,fold=K,folds=F,split=test,group=RULE`` as a dict."""
    out = {}
    for part in filter(None, subset.split(",")):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip()
    return out


def format_subset(*, seed: int, eval_limit: int | None, fold: int | None, num_folds: int, split: str,
                  group: str | None = None) -> str:
    parts = [f"seed={seed}"]
    if eval_limit is not None:
        parts.append(f"limit={eval_limit}")
    if fold is not None:
        parts += [f"fold={fold}", f"folds={num_folds}"]
    if split != "test":
        parts.append(f"split={split}")
    if group is not None:
        parts.append(f"group={group}")
    return ",".join(parts)


def evaluation_run_spec(run_spec: Any, *, name: str, seed: int = 0, eval_limit: int | None = None,
                        fold: int | None = None, num_folds: int = 1, main_split: str = "test") -> Any:
    """``run_spec`` evaluated on a deterministic subset / fold of its test split, renamed ``name``.

    Every argument of the inner scenario (a data directory included) stays in the scenario's
    arguments as it is; only the run's *name* is chosen here. A run spec without groups gets one
    named after the scenario, so HELM's leaderboard shows it.
    """
    from helm.benchmark.scenarios.scenario import ScenarioSpec

    groups = list(run_spec.groups) or [name.split(":", 1)[0]]
    if eval_limit is None and num_folds <= 1:
        return dataclasses.replace(run_spec, name=name, groups=groups)
    inner = run_spec.scenario_spec
    if inner.class_name == EVAL_SUBSET_SCENARIO:  # re-subsetting: keep the original inner scenario
        inner_args = {k: v for k, v in inner.args.items() if k not in ("of", "subset")}
        inner_class = inner.args["of"]
    else:
        inner_args, inner_class = dict(inner.args), inner.class_name
    subset = format_subset(seed=seed, eval_limit=eval_limit, fold=fold, num_folds=num_folds, split=main_split,
                           group=group_rule_for(inner_class))
    spec = ScenarioSpec(class_name=EVAL_SUBSET_SCENARIO, args={"of": inner_class, "subset": subset, **inner_args})
    return dataclasses.replace(run_spec, name=name, scenario_spec=spec, groups=groups)


def check_leaderboard_file_names(run_spec: Any) -> None:
    """Refuse a run spec whose scenario arguments are too long for ``helm-summarize``'s file names.

    ``helm-summarize`` writes each scenario's leaderboard table to files named after the run's
    group and every argument of its scenario (spaces dropped); a name over 255 bytes makes it fail
    with "File name too long" after every evaluation has finished. Arguments travel whole (every
    process rebuilds the scenario from them), so the fix is a shorter argument, usually the data path.
    """
    args = {str(k): str(v) for k, v in run_spec.scenario_spec.args.items()}
    arguments = ",".join(f"{k}:{v}" for k, v in args.items())
    group = max(list(run_spec.groups) or [str(run_spec.name).split(":", 1)[0]], key=len)
    length = len(f"{group}_{group}_{arguments}{_TABLE_SUFFIX}".replace(" ", "").encode("utf-8"))
    if length <= _MAX_FILE_NAME_BYTES:
        return
    key, value = max(args.items(), key=lambda item: len(item[1].replace(" ", "").encode("utf-8")))
    fix = ("move or symlink the benchmark files to a shorter path" if key == "data_dir"
           else f"give '{key}' a shorter value")
    raise ConfigError(
        f"The scenario argument {key}={value[:80]}{'...' if len(value) > 80 else ''} is too long for HELM's "
        f"leaderboard: helm-summarize names files after the scenario's arguments and would fail with 'File "
        f"name too long' ({length} bytes, at most {_MAX_FILE_NAME_BYTES}); {fix}, at least "
        f"{length - _MAX_FILE_NAME_BYTES} characters shorter, or turn summarize off."
    )
