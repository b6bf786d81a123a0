"""A HELM scenario that evaluates a deterministic subset (and fold) of another scenario's test split.

Every method of a sweep is evaluated on exactly the same instances: the subset is chosen by
:func:`helm_optimizer.helm.subsets.eval_plan` from the inner scenario's test ids and the seed,
the same function that decides which instances an agent may be optimized on. Everything the
scenario needs is in its arguments, so every process that reads the run spec rebuilds it.
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

from helm_optimizer.helm.subsets import eval_plan, instance_groups, parse_subset

__all__ = ["EvalSubsetScenario"]


class EvalSubsetScenario(Scenario):  # type: ignore[misc]
    """``of``: the inner scenario's class name; ``subset``: ``seed=S,limit=N,fold=K,folds=F,split=test``.

    Every other argument goes to the inner scenario unchanged.
    """

    name = "eval_subset"
    description = "A deterministic subset (and cross-fitting fold) of another scenario's test split."
    tags: list[str] = []  # noqa: RUF012  (HELM's Scenario declares a list)

    def __init__(self, of: str, subset: str = "", **inner_args: Any) -> None:
        super().__init__()
        self.inner_spec = ScenarioSpec(class_name=of, args=dict(inner_args))
        self.inner = create_scenario(self.inner_spec)
        self.name = self.inner.name
        self.description = getattr(self.inner, "description", self.description)
        self.tags = list(getattr(self.inner, "tags", []))
        options = parse_subset(subset)
        self.seed = int(options.get("seed", 0))
        self.eval_limit = int(options["limit"]) if "limit" in options else None
        self.fold = int(options["fold"]) if "fold" in options else None
        self.num_folds = int(options.get("folds", 1))
        self.main_split = options.get("split", "test")
        self.group = options.get("group")

    def get_instances(self, output_path: str) -> list[Instance]:
        instances = list(self.inner.get_instances(output_path))
        if any(instance.id is None for instance in instances):
            instances = with_instance_ids(instances)
        test = [i for i in instances if i.split == self.main_split]
        folds = eval_plan([str(i.id) for i in test], seed=self.seed, eval_limit=self.eval_limit,
                          num_folds=self.num_folds, groups=instance_groups(test, self.group))
        chosen = set(folds[self.fold]) if self.fold is not None else {i for fold in folds for i in fold}
        return [i for i in instances if (i.split == self.main_split and str(i.id) in chosen)
                or i.split == "train"]

    def get_metadata(self) -> Any:
        return self.inner.get_metadata()
