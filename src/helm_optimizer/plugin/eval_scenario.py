"""A HELM scenario that evaluates a deterministic subset (and fold) of another scenario's test split.

Every method of a sweep is evaluated on exactly the same instances: the subset is chosen by
:func:`helm_optimizer.scenarios.dataset.eval_plan` from the inner scenario's test ids and the seed,
the same function that decides which instances an agent may be optimized on.
"""

from __future__ import annotations

from typing import Any

from helm.benchmark.scenarios.scenario import (
    Instance,
    Scenario,
    ScenarioSpec,
    create_scenario,
    with_instance_ids,
)

__all__ = ["EvalSubsetScenario"]


class EvalSubsetScenario(Scenario):  # type: ignore[misc]
    name = "eval_subset"
    description = "A deterministic subset (and cross-fitting fold) of another scenario's test split."
    tags: list[str] = []

    def __init__(self, inner: dict[str, Any], seed: int = 0, eval_limit: int | None = None,
                 fold: int | None = None, num_folds: int = 1, main_split: str = "test",
                 keep_train: bool = True) -> None:
        super().__init__()
        self.inner_spec = ScenarioSpec(class_name=inner["class_name"], args=dict(inner.get("args") or {}))
        self.inner = create_scenario(self.inner_spec)
        self.name = self.inner.name
        self.description = getattr(self.inner, "description", self.description)
        self.tags = list(getattr(self.inner, "tags", []))
        self.seed = int(seed)
        self.eval_limit = None if eval_limit in (None, "", "None") else int(eval_limit)
        self.fold = None if fold in (None, "", "None") else int(fold)
        self.num_folds = int(num_folds)
        self.main_split = main_split
        self.keep_train = keep_train

    def get_instances(self, output_path: str) -> list[Instance]:
        from helm_optimizer.scenarios.dataset import eval_plan

        instances = list(self.inner.get_instances(output_path))
        if any(instance.id is None for instance in instances):
            instances = with_instance_ids(instances)
        test_ids = [str(i.id) for i in instances if i.split == self.main_split]
        folds = eval_plan(test_ids, seed=self.seed, eval_limit=self.eval_limit, num_folds=self.num_folds)
        chosen = set(folds[self.fold if self.fold is not None else 0]) if self.num_folds > 1 else set(folds[0])
        if self.num_folds > 1 and self.fold is None:
            chosen = {i for fold in folds for i in fold}
        kept = []
        for instance in instances:
            if instance.split == self.main_split:
                if str(instance.id) in chosen:
                    kept.append(instance)
            elif instance.split == "train" and self.keep_train:
                kept.append(instance)
        return kept

    def get_metadata(self) -> Any:
        return self.inner.get_metadata()
