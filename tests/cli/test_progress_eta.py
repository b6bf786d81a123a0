"""The sweep display's bookkeeping: ETA from the work left, rows' results, fold meters (no terminal needed)."""

from __future__ import annotations

import pytest

from helm_optimizer.cli import progress as progress_module
from helm_optimizer.cli.progress import RowSpec, SweepProgress, format_result


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(progress_module.time, "perf_counter", fake)
    return fake


def _display() -> SweepProgress:
    display = SweepProgress([RowSpec("optimize a", "optimize", 100), RowSpec("evaluate a", "evaluate", 50),
                             RowSpec("report", "final")])
    display.tty = True  # bookkeeping only: nothing is drawn outside a context
    return display


def test_eta_is_calls_left_over_recent_throughput(clock: _Clock) -> None:
    display = _display()
    display({"running": {"cell": "optimize a", "stage": "compiling", "lm_calls": 0}})
    assert display.eta() == (None, False)  # no throughput yet
    clock.now += 10
    display({"running": {"cell": "optimize a", "stage": "compiling", "lm_calls": 20}})
    eta, lower_bound = display.eta()
    assert not lower_bound
    assert eta == pytest.approx((100 - 20 + 50) / (20 / 10))
    clock.now += 10
    display({"done": {"cell": "optimize a", "status": "done", "lm_calls": 60, "val_before": 0.1, "val_after": 0.4}})
    eta, _ = display.eta()
    assert eta == pytest.approx(50 / (60 / 20))  # a finished cell leaves no work, whatever its estimate was


def test_unknown_estimate_makes_a_lower_bound(clock: _Clock) -> None:
    display = SweepProgress([RowSpec("optimize a", "optimize", 10), RowSpec("optimize b", "optimize", None)])
    display.tty = True
    display({"running": {"cell": "optimize a", "lm_calls": 0}})
    clock.now += 10
    display({"running": {"cell": "optimize a", "lm_calls": 5}})
    eta, lower_bound = display.eta()
    assert lower_bound and eta == pytest.approx(5 / 0.5)


def test_fold_meters_add_up_and_evaluations_sum_their_methods(clock: _Clock) -> None:
    display = _display()
    for calls in (10, 30, 4, 12):  # fold 0 then fold 1: the optimizer's meter restarts
        display({"running": {"cell": "optimize a", "lm_calls": calls}})
    assert display.rows["optimize a"].calls == 42
    display({"running": {"cell": "evaluate a", "stage": "evaluated", "method": "baseline", "mean": 0.25,
                         "lm_calls": 8, "prompt_tokens": 100, "completion_tokens": 5}})
    display({"running": {"cell": "evaluate a", "stage": "evaluated", "method": "ZeroShotCoT", "mean": 0.5,
                         "lm_calls": 8, "prompt_tokens": 120, "completion_tokens": 40}})
    assert display.rows["evaluate a"].calls == 16
    assert display.rows["evaluate a"].data["prompt_tokens"] == 220


def test_finished_rows_show_their_result() -> None:
    assert format_result("optimize", {"status": "done", "val_before": 0.125, "val_after": 0.5}) == \
        "val 0.125 → 0.500"
    assert format_result("evaluate", {"status": "done", "metric": "exact_match",
                                      "means": {"baseline": 0.25, "ZeroShotCoT": 0.5, "MIPROv2": 0.75}}) == \
        "exact_match: baseline 0.250 · zs-cot 0.500 · fs-miprov2 0.750"
    assert format_result("final", {"status": "done", "path": "out/report/report.html"}) == "out/report/report.html"
    assert format_result("evaluate", {"status": "failed", "error": "HELM run failed\nTraceback ..."}) == \
        "HELM run failed"


def test_an_interrupted_sweep_leaves_no_row_running(clock: _Clock) -> None:
    display = _display()
    display.tty = False
    with pytest.raises(KeyboardInterrupt), display:
        display({"running": {"cell": "optimize a", "lm_calls": 1}})
        raise KeyboardInterrupt
    assert [r.data["status"] for r in display.rows.values()] == ["failed", "skipped", "skipped"]
