from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from helm_optimizer.errors import DataError
from helm_optimizer.naming import METHOD_ZS_COT
from helm_optimizer.report import ReportPaths, build_report
from helm_optimizer.report.build import summarize_for_console
from helm_optimizer.report.table import COLUMNS

_RESAMPLES = 200


@pytest.fixture(scope="module")
def built_sweep(pristine_sweep: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ReportPaths]:
    """One report of the pristine sweep, shared by the read-only tests of this module."""
    out = tmp_path_factory.mktemp("built")
    shutil.copytree(pristine_sweep.output_dir, out / "out")
    sweep = pristine_sweep.__class__(out / "out", scores=pristine_sweep.scores)
    return sweep, build_report(sweep.output_dir, resamples=_RESAMPLES)


@pytest.fixture
def built(built_sweep: tuple[Any, ReportPaths]) -> ReportPaths:
    return built_sweep[1]


def test_every_file_is_written_and_non_empty(built_sweep: tuple[Any, ReportPaths]) -> None:
    sweep, built = built_sweep
    assert built.directory == sweep.output_dir / "report"
    for path in built.files:
        assert path.parent == built.directory
        assert path.is_file() and path.stat().st_size > 0, path
    assert built.figure_png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert built.rankings_png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert b"<svg" in built.figure_svg.read_bytes() and b"<svg" in built.rankings_svg.read_bytes()
    assert not [p for p in built.directory.iterdir() if p.name.startswith(".")]  # no temp files left


def test_html_is_self_contained(built: ReportPaths) -> None:
    html = built.html.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "<table>" in html and "<th>Δ vs baseline</th>" in html
    assert html.count('src="data:image/svg+xml;base64,') == 2
    assert "MIPROv2" in html and "How to read" in html and "Ranking flips" in html
    assert "helm/benchmark_output/runs/sweep/head_qa:model=openai_gpt-4o,method=MIPROv2,fold=1" in html
    # nothing fetched from anywhere: scripts (the instance explorer's) are inline, no URL, link or import
    assert not re.search(r"https?://|//cdn|<script[^>]*\bsrc=|<link|@import", html, flags=re.IGNORECASE)
    assert html.count("<script") == 2  # the explorer's data and its code


def test_csv_and_json_keep_full_precision_and_column_order(built_sweep: tuple[Any, ReportPaths]) -> None:
    sweep, built = built_sweep
    reader = csv.reader(io.StringIO(built.csv.read_text(encoding="utf-8")))
    header, *lines = list(reader)
    assert tuple(header) == COLUMNS
    assert len(lines) == 12
    data = json.loads(built.json.read_text(encoding="utf-8"))
    assert data["columns"] == list(COLUMNS)
    assert [list(row) for row in data["rows"]] == [list(COLUMNS)] * 12
    assert len(data["run_dirs"]) == 6 + 12
    assert data["ranking_flips"][0]["method"] == "MIPROv2"
    for line, row in zip(lines, data["rows"], strict=True):
        key = (row["scenario"], row["model"], row["method"])
        mean = float(line[COLUMNS.index("mean")])
        assert mean == row["mean"]
        assert mean == pytest.approx(sum(sweep.scores[key].values()) / len(sweep.scores[key]), abs=1e-12)


def test_markdown_rounds_to_three_decimals(built: ReportPaths) -> None:
    text = built.markdown.read_text(encoding="utf-8")
    assert text.startswith("# HELM prompt optimization report")
    assert "| scenario | model | method |" in text
    assert "## Ranking flips" in text and "| med_qa | MIPROv2 | openai/gpt-4o | meta/llama-3-8b |" in text
    numbers = re.findall(r"\| (-?\+?\d+\.\d+) \|", text)
    assert numbers and all(len(n.split(".")[1]) == 3 for n in numbers)


def test_outputs_are_byte_identical_across_builds(
    built_sweep: tuple[Any, ReportPaths], tmp_path: Path
) -> None:
    sweep, built = built_sweep
    again = build_report(sweep.output_dir, out_dir=tmp_path / "again", resamples=_RESAMPLES)
    assert again.directory == tmp_path / "again"
    for first, second in zip(built.files, again.files, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


def test_summarize_for_console(built: ReportPaths) -> None:
    summary = summarize_for_console(built.rows)
    assert len(summary) == 12
    assert all(list(s) == list(summary[0]) for s in summary)
    flagged = [s for s in summary if s["method"] == "baseline"]
    assert all(s["delta"] == "" and s["check"] == "ok" for s in flagged)
    assert re.fullmatch(r"\[\d\.\d{3}, \d\.\d{3}\]", summary[0]["95% CI"])


def test_no_records_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"No evaluation records under OUTPUT_DIR/evaluations; run `helm-optimizer"
    ):
        build_report(tmp_path)


def test_corrupt_record_is_a_data_error(sweep: Any) -> None:
    path = sweep.records[("head_qa", "openai/gpt-4o", "baseline", 0)]
    path.write_bytes(b"\xff\xfe not json")
    with pytest.raises(DataError, match=re.escape(str(path))):
        build_report(sweep.output_dir, resamples=10)
    assert not (sweep.output_dir / "report").exists()


def test_missing_run_dir_is_a_data_error(sweep: Any) -> None:
    key = ("med_qa", "meta/llama-3-8b", METHOD_ZS_COT, None)
    path = sweep.records[key]
    data = json.loads(path.read_text())
    data["run_dir"] = "helm/benchmark_output/runs/sweep/gone"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=re.escape(str(sweep.output_dir / data["run_dir"]))):
        build_report(sweep.output_dir, resamples=10)


def test_bad_resamples_is_rejected(sweep: Any) -> None:
    with pytest.raises(DataError, match="resamples"):
        build_report(sweep.output_dir, resamples=0)
