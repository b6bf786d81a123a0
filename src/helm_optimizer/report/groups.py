"""Which evaluated instances share a group, for the cluster bootstrap.

Two sources, joined: the benchmark's own group rule (MedCalc-Bench's shared patient notes, the same
rule that keeps them in one cross-fitting fold) and near-duplicate questions found in the test
split itself (MEDEC's note pairs, the same note with and without an error; Medbullets' repeated
questions), both read from HELM's per-instance outputs of a run.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

from helm_optimizer.helm.profiles import PROFILES
from helm_optimizer.helm.subsets import instance_groups
from helm_optimizer.report.outputs import read_outputs
from helm_optimizer.scenarios.contamination import Question, near_duplicate_groups

__all__ = ["instance_groups_of_run"]


@lru_cache(maxsize=32)
def _groups(run_dir: str, mtime_ns: int, rule: str | None) -> dict[str, int]:
    outputs = read_outputs(Path(run_dir))
    if outputs is None:
        return {}
    items = list(outputs.outputs)
    multiple_choice = outputs.multiple_choice
    questions = [Question(stem=o.input_text, options=o.references if multiple_choice else (),
                          answers=tuple(o.references[i] for i in o.correct), id=o.instance_id) for o in items]
    near = near_duplicate_groups(questions)
    by_rule = instance_groups([SimpleNamespace(id=o.instance_id, input=SimpleNamespace(text=o.input_text))
                               for o in items], rule)
    # Union of both partitions: instances linked by either end up in one group.
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(a: int, b: int) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first_of_key: dict[str, int] = {}
    for i, item in enumerate(items):
        join(i, near[i])
        key = by_rule.get(item.instance_id)
        if key is not None:
            join(i, first_of_key.setdefault(key, i))
    return {item.instance_id: root(i) for i, item in enumerate(items)}


def instance_groups_of_run(run_dir: Path, scenario: str) -> dict[str, int]:
    """Instance id -> group number (shared by near-duplicates and by the benchmark's group rule).

    ``scenario`` is the run entry's name (its benchmark profile names the group rule). Empty when
    the run has no readable ``scenario_state.json``.
    """
    path = Path(run_dir) / "scenario_state.json"
    if not path.is_file():
        return {}
    profile = PROFILES.get(scenario)
    return _groups(str(Path(run_dir).resolve()), path.stat().st_mtime_ns, profile.fold_group if profile else None)
