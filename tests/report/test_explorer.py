"""The report's instance explorer and cost-per-point section, on a fake-server sweep; the explorer in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from helm_optimizer.report.records import load_instance_scores, load_records
from helm_optimizer.serving.fake import FakeOpenAIServer, FakeServerConfig
from helm_optimizer.sweep.config import SweepConfig
from helm_optimizer.sweep.run import run_sweep
from tests.conftest import REPO, demo_answer_key

pytestmark = pytest.mark.slow

DEMO_DATA = REPO / "src" / "helm_optimizer" / "data" / "demo"
MODELS = ("openai/fake-a", "openai/fake-b")
METHODS = ("baseline", "ZeroShotCoT", "LabeledFewShot")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("explorer") / "out"
    config = FakeServerConfig(answers=demo_answer_key(), accuracy=0.5, demo_accuracy=0.9, seed=2)
    with FakeOpenAIServer(config) as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("HELM_OPTIMIZER_CACHE_DIR", str(out.parent / "cache"))
        result = run_sweep(SweepConfig.model_validate({
            "output_dir": str(out), "suite": "explorer", "seed": 0,
            "scenarios": [{"entry": "head_qa", "data_dir": str(DEMO_DATA)}], "optimizers": ["LabeledFewShot"],
            "models": [{"model": m, "api_base": server.api_base} for m in MODELS],
            "methods": ["baseline", "ZeroShotCoT"], "max_labeled_demos": 2, "num_threads": 2, "limit": 8,
            "eval_limit": 12, "summarize": False,
        }))
        assert result.failed == []
    yield out


def _payload(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', html, re.S)
    assert match, "no explorer data in the page"
    return dict(json.loads(match.group(1)))


def _right(cell: list[Any]) -> bool:
    return float(cell[0]) >= 0.5


def test_explorer_holds_every_instance_and_method_with_helm_scores(sweep: Path) -> None:
    html = (sweep / "report" / "report.html").read_text()
    assert '<section id="instances">' in html
    payload = _payload(html)
    assert payload["models"] == list(MODELS) and set(payload["methods"]) == set(METHODS)
    assert len(payload["rows"]) == len(MODELS) * 12
    records = load_records(sweep)
    for record in records:
        scores = load_instance_scores(record.run_dir, record.main_metric, record.split)
        k = str(payload["methods"].index(record.method))
        rows = {r["id"]: r for r in payload["rows"] if payload["models"][r["m"]] == record.model}
        assert {iid: rows[iid]["c"][k][0] for iid in scores} == pytest.approx(scores)
    cot = str(payload["methods"].index("ZeroShotCoT"))
    cells = [r["c"][cot] for r in payload["rows"]]
    assert all(c[2] for c in cells), "ZeroShotCoT's reasoning is missing"  # kept by the agent client
    assert all(c[1] for c in cells)  # every answer
    assert all(r["g"] and r["q"] for r in payload["rows"])  # gold and question


def test_cost_per_point_and_cot_verdict(sweep: Path) -> None:
    report = json.loads((sweep / "report" / "report.json").read_text())
    points = report["cost_per_point"]
    assert {(p["method"], p["comparator"]) for p in points if p["model"] == MODELS[0]} == {
        ("ZeroShotCoT", "baseline"), ("LabeledFewShot", "baseline"), ("LabeledFewShot", "ZeroShotCoT")}
    rows = {(r["model"], r["method"]): r for r in report["rows"]}
    for point in points:
        if point["comparator"] == "baseline":
            assert point["delta"] == pytest.approx(rows[(point["model"], point["method"])]["delta"])
        if point["extra_tokens"] > 0 and point["delta"] is not None:
            assert point["delta_per_1k_tokens"] == pytest.approx(point["delta"] / (point["extra_tokens"] / 1000))
    assert len(report["verdicts"]) == len(MODELS)
    for verdict in report["verdicts"]:
        assert re.match(r"head_qa · openai/fake-[ab]: (yes|no) — ", verdict), verdict
    html = (sweep / "report" / "report.html").read_text()
    assert '<section id="cost-per-point">' in html and "zero-shot CoT significantly" in html


def _chromium(url: str, *extra: str) -> str:
    assert CHROMIUM
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               f"--user-data-dir={profile}", "--virtual-time-budget=10000",
                               "--window-size=1400,2000", *extra, url],
                              capture_output=True, text=True, timeout=180, check=False)
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium) for the browser check")
def test_explorer_filters_and_details_in_chromium(sweep: Path, tmp_path: Path) -> None:
    page = sweep / "report" / "report.html"
    payload = _payload(page.read_text())
    model, method = MODELS[0], "LabeledFewShot"
    mi, k, b = payload["models"].index(model), str(payload["methods"].index(method)), str(payload["baseline"])
    ups = [r for r in payload["rows"] if r["m"] == mi and not _right(r["c"][b]) and _right(r["c"][k])]
    downs = [r for r in payload["rows"] if r["m"] == mi and _right(r["c"][b]) and not _right(r["c"][k])]
    assert ups, "the fake sweep should have some wrong → right flips"
    target = ups[-1]["id"]
    url = f"{page.as_uri()}#instances:model={model}&method={method}&flip=up&select={target}"
    dom = _chromium(url, "--dump-dom")
    grid = dom[dom.index('id="ix-grid"'):dom.index('id="instance-detail"')]
    body_rows = re.findall(r'<tr data-id="([^"]+)"', grid)
    assert sorted(body_rows) == sorted(r["id"] for r in ups)  # filtered to this model's wrong → right flips
    flips = dom[dom.index('id="ix-flips"'):dom.index('id="ix-count"')]
    row = re.search(rf'<tr data-model="{re.escape(model)}" data-method="{method}">(.*?)</tr>', flips).group(1)
    cells = [unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
    assert cells[4:6] == [str(len(ups)), str(len(downs))]
    detail = dom[dom.index('id="instance-detail"'):]
    assert f"instance {target}</h3>" in detail
    assert len(re.findall(r"<h4>", detail)) == len(METHODS)  # every method's answer
    assert "Reasoning:" in detail and "Prompt HELM sent for baseline" in detail and "Gold: " in detail
    shot = tmp_path / "explorer.png"
    _chromium(url, f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 10_000
