"""Numbers you can publish, end to end on the fake server.

* evaluation is bound to what each agent was optimized on (refused when they intersect);
* imported agents are checked: unknown provenance is flagged, demos quoting a test question are
  refused or dropped;
* every record and report row carries the decoding budget, format failures, the extracted score and
  Holm-adjusted p-values; a multi-seed sweep reports the spread over optimizer seeds.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from helm_optimizer.config import LMConfig, OptimizeConfig
from helm_optimizer.errors import ConfigError, LeakageError
from helm_optimizer.evaluate import EvaluationRequest, evaluate_methods
from helm_optimizer.helm.subsets import eval_plan
from helm_optimizer.optimize import optimize
from helm_optimizer.report import build_report
from helm_optimizer.sweep.config import SweepConfig
from helm_optimizer.sweep.run import run_sweep
from tests.conftest import FIXTURE_DATA
from tests.sweep.conftest import DEMO_DATA, sweep_dict


def _lm(server: Any, model: str = "openai/fake-a") -> LMConfig:
    return LMConfig(model=model, api_base=server.api_base)


def _optimize(server: Any, out: Path, scenario: str, data: Path, **extra: Any) -> list[Path]:
    config = OptimizeConfig(scenario=scenario, optimizer="LabeledFewShot", lm=_lm(server), data_dir=data,
                            output_dir=out, limit=4, max_labeled_demos=2, num_threads=2, **extra)
    return [a.path for a in optimize(config).agents]


def _request(server: Any, out: Path, scenario: str, data: Path, methods: tuple[str, ...], **extra: Any
             ) -> EvaluationRequest:
    return EvaluationRequest(scenario=scenario, lm=_lm(server), methods=methods, output_dir=out,
                             data_dir=str(data), num_threads=2, **extra)


# ---- defect 1: evaluation bound to provenance --------------------------------------------------------


def test_evaluation_scoring_optimization_instances_is_refused(sweep_server: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    agents = _optimize(sweep_server, out, "medbullets", FIXTURE_DATA)
    metas = [json.loads(p.with_name(p.name.replace(".json", ".meta.json")).read_text()) for p in agents]
    assert all(m["optimized_on"]["ids"] and m["optimized_on"]["seed"] == 0 for m in metas)
    assert {m["optimized_on"]["fold"] for m in metas} == {0, 1}
    # An agent whose metadata claims the evaluation's seed (edited, or written by another tool) but lists
    # what it was optimized on: the seed check cannot fire, the ids do.
    test_ids = sorted({i for m in metas for i in (x.split(":", 1)[1] for x in m["optimized_on"]["ids"])})
    seed = next(s for s in range(1, 50) if set(eval_plan(test_ids, seed=s, eval_limit=None, num_folds=2)[0])
                & {x.split(":", 1)[1] for x in metas[0]["optimized_on"]["ids"]})
    for path, meta in zip(agents, metas, strict=True):
        meta["seed"] = seed
        path.with_name(path.name.replace(".json", ".meta.json")).write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=r"was optimized on \d+ of the \d+ instances this run would score"):
        evaluate_methods(_request(sweep_server, out, "medbullets", FIXTURE_DATA, ("LabeledFewShot",), seed=seed))
    for path, meta in zip(agents, metas, strict=True):
        meta["seed"] = 0
        path.with_name(path.name.replace(".json", ".meta.json")).write_text(json.dumps(meta))
    records = [r.record.model_dump() for r in
               evaluate_methods(_request(sweep_server, out, "medbullets", FIXTURE_DATA, ("LabeledFewShot",)))]
    assert [r["provenance"]["verified"] for r in records] == [True, True]
    assert all(r["provenance"]["overlap"] == 0 and r["contamination"]["agent"]["quoting_demos"] == 0
               for r in records)


# ---- defect 3 (b): imported agents ---------------------------------------------------------------------


def _head_qa_test_prompt() -> tuple[str, str]:
    from helm_optimizer.helm.task import build_task

    task = build_task("head_qa", data_dir=DEMO_DATA)
    instance = next(i for i in task.load_instances(Path(DEMO_DATA).parent / ".unused") if i.split == "test")
    prompted = task.prompt(instance)
    assert prompted is not None
    return prompted.inputs, prompted.output


def test_imported_agents_are_checked(sweep_server: Any, tmp_path: Path) -> None:
    made = _optimize(sweep_server, tmp_path / "made", "head_qa", DEMO_DATA)[0]
    out = tmp_path / "imported"
    target = out / "agents" / made.relative_to(tmp_path / "made" / "agents")
    target.parent.mkdir(parents=True)
    shutil.copy(made, target)  # no metadata: where it came from is unknown
    records = [r.record.model_dump() for r in evaluate_methods(
        _request(sweep_server, out, "head_qa", DEMO_DATA, ("baseline", "LabeledFewShot"), eval_limit=6))]
    agent = next(r for r in records if r["method"] == "LabeledFewShot")
    assert agent["provenance"]["verified"] is False
    rows = {r["method"]: r for r in json.loads(build_report(out).json.read_text())["rows"]}
    assert "optimization data is unknown" in rows["LabeledFewShot"]["warnings"]

    inputs, output = _head_qa_test_prompt()
    state = json.loads(target.read_text())
    state["predict"]["demos"].append({"augmented": True, "inputs": inputs, "reasoning": "r", "output": output})
    target.write_text(json.dumps(state))
    from typer.testing import CliRunner

    from helm_optimizer.cli.main import app

    shown = CliRunner().invoke(app, ["agents", "show", str(target), "--scenario", "head_qa", "--data-dir",
                                     str(DEMO_DATA)])
    assert shown.exit_code == 0 and "1 of 3 demos and 0 of 1" in " ".join(shown.output.split())
    request = _request(sweep_server, out, "head_qa", DEMO_DATA, ("LabeledFewShot",), eval_limit=6)
    with pytest.raises(LeakageError, match=r"1 of its 3 demos .* quote a test question"):
        evaluate_methods(request)
    dropped = evaluate_methods(_request(sweep_server, out, "head_qa", DEMO_DATA, ("LabeledFewShot",),
                                        eval_limit=6, on_overlap="drop"))[0].record.model_dump()
    assert dropped["contamination"]["agent"] == {"demos": 3, "quoting_demos": 1, "instructions": 1,
                                                 "quoting_instructions": 0, "dropped": True}
    checked = out / "agents-checked" / target.relative_to(out / "agents")
    assert len(json.loads(checked.read_text())["predict"]["demos"]) == 2
    rows = {r["method"]: r for r in json.loads(build_report(out).json.read_text())["rows"]}
    assert "quoting test questions were dropped" in rows["LabeledFewShot"]["warnings"]


# ---- defect 4: a baseline on another model -------------------------------------------------------------


def test_baseline_on_another_model_is_refused(sweep_server: Any, tmp_path: Path) -> None:
    from helm_optimizer.evaluate import _baseline_deployment
    from helm_optimizer.helm.loading import prepare_helm

    prepare_helm()
    request = _request(sweep_server, tmp_path, "head_qa", DEMO_DATA, ("baseline",),
                       helm_deployment="openai/gpt-4o-2024-05-13")
    with pytest.raises(ConfigError, match=r"serves openai/gpt-4o-2024-05-13 but the DSPy methods call openai/fake-a"):
        evaluate_methods(request)
    allowed = _request(sweep_server, tmp_path, "head_qa", DEMO_DATA, ("baseline",),
                       helm_deployment="openai/gpt-4o-2024-05-13", allow_model_mismatch=True)
    assert _baseline_deployment(allowed) == "openai/gpt-4o-2024-05-13"


# ---- the report of a multi-seed sweep --------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds_sweep(sweep_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seeds") / "run"
    data = sweep_dict(sweep_server.api_base, out, scenarios=[{"entry": "head_qa", "data_dir": str(DEMO_DATA)}],
                      optimizers=["LabeledFewShot"], seeds=[0, 1, 2], eval_limit=12, optimizer_options={})
    result = run_sweep(SweepConfig.model_validate(data))
    assert result.failed == []
    return out


def test_multi_seed_sweep_optimizes_once_per_seed_on_the_same_instances(seeds_sweep: Path) -> None:
    agents = sorted(p.name for p in (seeds_sweep / "agents" / "head_qa" / "openai" / "fake-a").glob("*.json")
                    if not p.name.endswith(".meta.json"))
    assert agents == [f"LabeledFewShot.seed{s}.json" for s in (0, 1, 2)]
    records = [json.loads(p.read_text()) for p in (seeds_sweep / "evaluations").rglob("LabeledFewShot*.json")]
    assert sorted(r["optimizer_seed"] for r in records) == [0, 0, 1, 1, 2, 2]  # two models
    assert len({r["provenance"]["evaluated_fingerprint"] for r in records}) == 1  # the same instances


def test_report_rows_carry_the_new_columns(seeds_sweep: Path) -> None:
    report = json.loads((seeds_sweep / "report" / "report.json").read_text())
    rows = {(r["model"], r["method"]): r for r in report["rows"]}
    for key in ("p_value_adjusted", "format_failure_rate", "extracted_mean", "decoding", "mean_completion_tokens",
                "seed_means", "seed_sd", "seed_spread", "num_seeds"):
        assert key in report["columns"]
    base = rows[("openai/fake-a", "baseline")]
    assert base["decoding"]["source"] == "HELM adapter" and base["decoding"]["max_tokens"] == 1
    assert base["decoding"]["model"] == "openai/fake-a"
    cot = rows[("openai/fake-a", "ZeroShotCoT")]
    assert cot["decoding"] == {"source": "DSPy LM config", "max_tokens": None, "temperature": 0.0, "stop": None,
                               "deployment": "openai/fake-a-dspy-zs-cot", "model": "openai/fake-a"}
    for row in report["rows"]:
        assert 0.0 <= row["format_failure_rate"] <= 1.0 and 0.0 <= row["extracted_mean"] <= 1.0
        assert row["extracted_mean"] >= row["mean"] - 1e-12  # extraction only adds readable answers
        if row["method"] != "baseline":
            assert row["p_value_adjusted"] >= row["p_value"]
            assert row["significant"] == (row["p_value_adjusted"] < 0.05)
    seeded = rows[("openai/fake-a", "LabeledFewShot")]
    assert seeded["num_seeds"] == 3 and seeded["seeds"] == [0, 1, 2] and len(seeded["seed_means"]) == 3
    assert seeded["mean"] == pytest.approx(sum(seeded["seed_means"]) / 3)
    assert seeded["seed_spread"] == pytest.approx(max(seeded["seed_means"]) - min(seeded["seed_means"]))
    assert seeded["test"] == "two-level-bootstrap" and seeded["ci_low"] <= seeded["mean"] <= seeded["ci_high"]
    assert report["rank_stability"] and all(0.0 <= p["p_order"] <= 1.0 for p in report["rank_stability"])
    assert any("Holm" in note for note in report["notes"]) and any("Decoding budgets" in n for n in report["notes"])


def test_markdown_csv_and_html_show_them(seeds_sweep: Path) -> None:
    md = (seeds_sweep / "report" / "report.md").read_text()
    html = (seeds_sweep / "report" / "report.html").read_text()
    for text in (md, html):
        assert "p (Holm)" in text and "format failures" in text and "extracted" in text
        assert "3 seeds: sd" in text and "HELM adapter: max_tokens=1" in text and "Rank stability" in text
        assert "DSPy LM config: max_tokens=none" in text
    rows = list(csv.DictReader(io.StringIO((seeds_sweep / "report" / "report.csv").read_text())))
    seeded = next(r for r in rows if r["method"] == "LabeledFewShot")
    assert seeded["num_seeds"] == "3" and json.loads(seeded["decoding"])["source"] == "DSPy LM config"
    assert seeded["p_value_adjusted"] and seeded["format_failure_rate"]


# ---- defect 3 (c): an optimizer that copies a test question into its instruction ---------------------------


def test_instruction_quoting_a_test_question_is_refused_or_replaced(sweep_server: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from helm_optimizer.optimizers.builtin import LabeledFewShotOptimizer

    inputs, _ = _head_qa_test_prompt()
    original = LabeledFewShotOptimizer.compile

    def copying(self: Any, student: Any, **kwargs: Any) -> Any:
        program = original(self, student, **kwargs)
        for predictor in program.predictors():
            predictor.signature = predictor.signature.with_instructions("Answer questions such as:\n" + inputs)
        return program

    monkeypatch.setattr(LabeledFewShotOptimizer, "compile", copying)
    with pytest.raises(LeakageError, match="1 of its 1 instructions quote a test question"):
        _optimize(sweep_server, tmp_path / "refused", "head_qa", DEMO_DATA)
    assert not list((tmp_path / "refused").rglob("LabeledFewShot.json"))  # nothing written
    [agent] = _optimize(sweep_server, tmp_path / "dropped", "head_qa", DEMO_DATA, on_overlap="drop")
    instructions = json.loads(agent.read_text())["predict"]["signature"]["instructions"]
    assert instructions.startswith("Given the fields `inputs`")
    meta = json.loads(agent.with_name("LabeledFewShot.meta.json").read_text())
    assert meta["contamination"]["agent"]["quoting_instructions"] == 1 and meta["contamination"]["agent"]["dropped"]
