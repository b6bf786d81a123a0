"""LM call tracing for the optimizer benchmarks: when each call ran, and which unit of work it belongs to.

A DSPy callback records the start and end of every ``dspy.LM`` call. Each call is tagged with the
unit of work it belongs to, read from DSPy's settings, where thin wrappers around four DSPy
functions put it (benchmark process only; the wrapped functions behave exactly as before):

* ``BootstrapFewShot._bootstrap``            -> a *chain* (one candidate's bootstrap: one call at a
  time, because it stops once it has enough demos);
* ``create_dataset_summary``                 -> a chain (each batch's observations feed the next);
* ``GenerateModuleInstruction.forward``      -> a chain (describe program -> describe module -> propose);
* ``Evaluate.__call__``                      -> a *batch* (independent calls, any order).

Calls outside all of these are counted as chains of one.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_TAG = "hopt_bench_tag"
_ids = itertools.count()
_installed = False


def _tagging(kind: str, unit: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    import functools

    import dspy

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with dspy.context(**{_TAG: (kind, unit, next(_ids))}):
            return fn(*args, **kwargs)

    return wrapper


def install_tags() -> None:
    """Wrap the four DSPy entry points once (idempotent)."""
    global _installed
    if _installed:
        return
    import dspy.propose.grounded_proposer as gp
    from dspy.evaluate import Evaluate
    from dspy.teleprompt.bootstrap import BootstrapFewShot

    BootstrapFewShot._bootstrap = _tagging("chain", "bootstrap", BootstrapFewShot._bootstrap)
    gp.create_dataset_summary = _tagging("chain", "summary", gp.create_dataset_summary)
    gp.GenerateModuleInstruction.forward = _tagging("chain", "proposal", gp.GenerateModuleInstruction.forward)
    Evaluate.__call__ = _tagging("batch", "evaluate", Evaluate.__call__)
    _installed = True


@dataclass
class Call:
    start: float
    end: float
    kind: str
    unit: str
    unit_id: int


@dataclass
class Trace:
    calls: list[Call] = field(default_factory=list)

    def by_unit(self) -> dict[tuple[str, str, int], list[Call]]:
        groups: dict[tuple[str, str, int], list[Call]] = defaultdict(list)
        for call in self.calls:
            groups[(call.kind, call.unit, call.unit_id)].append(call)
        return dict(groups)

    def count(self, unit: str) -> int:
        return sum(1 for c in self.calls if c.unit == unit)

    def mean_call_s(self) -> float:
        return sum(c.end - c.start for c in self.calls) / max(1, len(self.calls))

    def busy_s(self) -> float:
        return sum(c.end - c.start for c in self.calls)

    def critical_path_s(self, *, latency: float, threads: int, stages: list[list[str]],
                        each_batch_a_stage: bool) -> float:
        """Sum over stages of max(longest chain, ceil(calls / threads)) x latency.

        ``stages`` lists unit names that may run together (a stage must finish before the next one
        starts); units not named form a last stage. With ``each_batch_a_stage`` every ``Evaluate``
        call is its own stage, in the order it started (MIPROv2's trials are sequential).
        """
        units = self.by_unit()
        ordered = sorted(units.items(), key=lambda kv: min(c.start for c in kv[1]))
        named = {u for stage in stages for u in stage}
        groups: list[list[list[Call]]] = [[calls for (k, u, _), calls in ordered if u in stage] for stage in stages]
        rest = [calls for (k, u, _), calls in ordered if u not in named]
        if each_batch_a_stage:
            groups += [[calls] for calls in rest]
        elif rest:
            groups.append(rest)
        total_rounds = 0
        for group in groups:
            if not group:
                continue
            n = sum(len(calls) for calls in group)
            longest_chain = max(
                (len(calls) for calls in group if calls[0].kind == "chain" and calls[0].unit != "untagged"), default=1
            )
            total_rounds += max(longest_chain, math.ceil(n / threads))
        return total_rounds * latency


def call_tracer() -> Any:
    """A DSPy callback recording every LM call (``dspy.context(callbacks=[tracer])``); ``reset()`` -> Trace."""
    from dspy.utils.callback import BaseCallback

    class _Tracer(BaseCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self._lock = threading.Lock()
            self._open: dict[str, tuple[float, tuple[str, str, int]]] = {}
            self.trace = Trace()

        def reset(self) -> Trace:
            with self._lock:
                done, self.trace = self.trace, Trace()
                self._open.clear()
            return done

        def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            from dspy.dsp.utils.settings import thread_local_overrides

            tag = thread_local_overrides.get().get(_TAG) or ("chain", "untagged", next(_ids))
            with self._lock:
                self._open[call_id] = (time.perf_counter(), tag)

        def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
            end = time.perf_counter()
            with self._lock:
                opened = self._open.pop(call_id, None)
                if opened is not None:
                    start, (kind, unit, unit_id) = opened
                    self.trace.calls.append(Call(start, end, kind, unit, unit_id))

    return _Tracer()
