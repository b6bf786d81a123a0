"""Instance groups for the cluster bootstrap, read from HELM's per-instance outputs of a run."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

from helm_optimizer.report.groups import instance_groups_of_run
from tests.conftest import shared_data_or_skip


def _write_run(run_dir: Path, instances: list[Any]) -> Path:
    from helm.benchmark.scenarios.scenario import with_instance_ids

    if any(i.id is None for i in instances):
        instances = with_instance_ids(instances)  # as HELM's runner does
    states = [{"instance": dataclasses.asdict(i), "train_trial_index": 0, "output_mapping": None,
               "result": {"success": True, "completions": [{"text": "x", "logprob": 0.0, "tokens": []}],
                          "embedding": [], "cached": False}} for i in instances]
    run_dir.mkdir(parents=True)
    (run_dir / "scenario_state.json").write_text(json.dumps({"adapter_spec": {"method": "generation"},
                                                             "request_states": states}))
    return run_dir


def _sizes(groups: dict[str, int]) -> Counter[int]:
    return Counter(Counter(groups.values()).values())


def test_note_pairs_and_shared_notes_form_groups(tmp_path: Path) -> None:
    from helm.benchmark.scenarios.scenario import CORRECT_TAG, Input, Instance, Output, Reference

    note = "0 A 45-year-old man presents with chest pain.\n1 ECG shows ST elevation.\n2 He is given {}.\n" \
           "3 He is admitted to the cardiac unit for further care and monitoring overnight."

    def instance(i: int, text: str) -> Instance:
        return Instance(Input(text=text), [Reference(Output(text="CORRECT"), tags=[CORRECT_TAG])], split="test",
                        id=f"id{i}")

    run = _write_run(tmp_path / "run", [instance(0, note.format("aspirin")), instance(1, note.format("insulin")),
                                        instance(2, "Another note entirely about a broken wrist and its cast.")])
    groups = instance_groups_of_run(run, "medec")
    assert groups["id0"] == groups["id1"] != groups["id2"]
    assert instance_groups_of_run(tmp_path / "none", "medec") == {}


def test_real_medec_and_medcalc_groups(tmp_path: Path) -> None:
    data = shared_data_or_skip()
    from helm_optimizer.scenarios.medical import LocalMedCalcBenchScenario, LocalMedecScenario

    medec = _write_run(tmp_path / "medec", LocalMedecScenario(data_dir=str(data)).get_instances(str(tmp_path)))
    assert _sizes(instance_groups_of_run(medec, "medec")) == Counter({2: 269, 1: 59})  # note pairs
    medcalc = _write_run(tmp_path / "medcalc",
                         LocalMedCalcBenchScenario(data_dir=str(data)).get_instances(str(tmp_path)))
    sizes = _sizes(instance_groups_of_run(medcalc, "medcalc_bench"))
    assert sum(n for size, n in sizes.items() if size > 1) >= 55  # every shared patient note, at least
