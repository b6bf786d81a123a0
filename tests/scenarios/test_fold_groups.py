"""Grouped evaluation plans: instances sharing a patient note share a fold, in optimization and in HELM."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import pytest

from helm_optimizer.helm.subsets import eval_plan, instance_groups
from helm_optimizer.plugin.eval_scenario import EvalSubsetScenario
from helm_optimizer.scenarios.dataset import load_dataset
from tests.conftest import shared_data_or_skip

IDS = [str(i) for i in range(1, 41)]


def _old_plan(ids: list[str], seed: int, limit: int | None, folds: int) -> list[list[str]]:
    """The ungrouped plan: one seeded shuffle, then every folds-th id."""
    def order(xs: list[str]) -> list[str]:
        return sorted(xs, key=lambda s: (len(s), s))

    ordered = order(ids)
    random.Random(f"eval-subset:{seed}").shuffle(ordered)
    chosen = ordered if limit is None else ordered[:limit]
    return [order(chosen[k::folds]) for k in range(folds)] if folds > 1 else [order(chosen)]


@pytest.mark.parametrize(("seed", "limit", "folds"), [(0, None, 2), (1, 15, 2), (3, 7, 1), (2, None, 3)])
def test_without_groups_the_plan_is_unchanged(seed: int, limit: int | None, folds: int) -> None:
    assert eval_plan(IDS, seed=seed, eval_limit=limit, num_folds=folds) == _old_plan(IDS, seed, limit, folds)
    singletons = {i: f"note {i}" for i in IDS}
    assert eval_plan(IDS, seed=seed, eval_limit=limit, num_folds=folds, groups=singletons) == _old_plan(
        IDS, seed, limit, folds)


def test_groups_stay_whole_and_the_limit_holds() -> None:
    groups = {i: f"note {int(i) % 7}" for i in IDS}  # 7 notes shared by 5-6 instances each
    for seed in range(5):
        plan = eval_plan(IDS, seed=seed, eval_limit=None, num_folds=2, groups=groups)
        assert sorted(plan[0] + plan[1], key=int) == IDS
        assert not {groups[i] for i in plan[0]} & {groups[i] for i in plan[1]}
        limited = eval_plan(IDS, seed=seed, eval_limit=17, num_folds=2, groups=groups)
        chosen = limited[0] + limited[1]
        assert len(chosen) <= 17
        taken = {groups[i] for i in chosen}
        assert all(groups[i] not in taken for i in IDS if i not in chosen)  # no group cut by the limit
        assert plan == eval_plan(IDS, seed=seed, eval_limit=None, num_folds=2, groups=groups)


def test_real_medcalc_folds_share_no_patient_note(tmp_path: Path) -> None:
    """Before: 30-odd notes had instances in both folds (an agent was optimized on its test notes)."""
    data = shared_data_or_skip()
    from helm_optimizer.scenarios.medical import LocalMedCalcBenchScenario

    instances = LocalMedCalcBenchScenario(data_dir=str(data)).get_instances(str(tmp_path))
    groups = instance_groups(instances, "passage")
    notes: dict[str, list[str]] = defaultdict(list)
    for instance_id, note in groups.items():
        notes[note].append(instance_id)
    assert sum(1 for members in notes.values() if len(members) > 1) == 55  # notes asked more than once
    ids = [str(i.id) for i in instances]
    old = _old_plan(ids, 0, None, 2)
    assert sum(1 for m in notes.values() if {*m} & {*old[0]} and {*m} & {*old[1]}) > 0
    new = eval_plan(ids, seed=0, eval_limit=None, num_folds=2, groups=groups)
    assert not any({*m} & {*new[0]} and {*m} & {*new[1]} for m in notes.values())
    # The HELM evaluation scenario picks exactly the instances optimization held out.
    ds = load_dataset("medcalc_bench", data_dir=data, cache_dir=tmp_path / "c", fold=1)
    helm = EvalSubsetScenario(of="helm_optimizer.scenarios.medical.medcalc_bench.LocalMedCalcBenchScenario",
                              subset="seed=0,fold=1,folds=2,group=passage", data_dir=str(data))
    assert sorted(str(i.id) for i in helm.get_instances(str(tmp_path))) == sorted(ds.eval_ids) == sorted(new[1])
    pool = {i.split(":", 1)[1] for i in ds.train_ids + ds.val_ids}
    assert not {groups.get(i) for i in pool} & {groups.get(i) for i in ds.eval_ids} - {None}
