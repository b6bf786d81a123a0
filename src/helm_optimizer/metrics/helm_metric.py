"""Scoring a prediction with the scenario's own HELM metric classes.

The DSPy metric of a HELM scenario is the run spec's main metric, computed by HELM's metric
classes on the prediction exactly as ``helm-run`` would compute it for that instance. It never
mutates the example or the prediction.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["HelmScorer", "as_dspy_metric", "as_feedback_metric"]

logger = logging.getLogger(__name__)


class HelmScorer:
    """Scores ``(instance, predicted text)`` with HELM's metrics for one task."""

    def __init__(self, task: Any, states: Mapping[tuple[str, str], Any]) -> None:
        self.task = task
        self.main_metric: str = task.main_metric
        self._states = dict(states)
        self._metrics = task.metrics()
        self._metric_service = task.metric_service
        self._eval_cache_path = tempfile.mkdtemp(prefix="helm-optimizer-eval-cache-")
        self._producer: Any | None = None
        self._lock = threading.Lock()
        self.errors = 0

    def add_states(self, states: Mapping[tuple[str, str], Any]) -> None:
        self._states.update(states)

    def _state_for(self, inputs: str, output: str) -> Any:
        state = self._states.get((inputs, output))
        if state is None:
            raise KeyError("This example does not come from the scenario's instances")
        return state

    def score_state(self, state: Any, prediction: str | None) -> float:
        from helm.benchmark.metrics.metric import Metric
        from helm.common.request import GeneratedOutput, RequestResult

        text = "" if prediction is None else str(prediction)
        result = RequestResult(success=True, cached=False, embedding=[],
                               completions=[GeneratedOutput(text=text, logprob=0.0, tokens=[])])
        filled = dataclasses.replace(state, result=result)
        candidates = [self._producer] if self._producer is not None else self._metrics
        for metric in candidates:
            if not isinstance(metric, Metric):
                continue
            try:
                stats = metric.evaluate_generation(self.task.adapter_spec, filled, self._metric_service,
                                                   self._eval_cache_path)
            except Exception as exc:  # a malformed prediction must cost the score, not the run
                with self._lock:
                    self.errors += 1
                logger.debug("Metric %s failed on a prediction: %s", type(metric).__name__, exc)
                continue
            for stat in stats:
                if stat.name.name == self.main_metric and stat.count > 0:
                    self._producer = metric
                    return float(stat.sum / stat.count)
        if self._producer is None and self.errors == 0:
            from helm_optimizer.errors import ConfigError

            raise ConfigError(
                f"No metric of run spec '{self.task.run_spec.name}' produces '{self.main_metric}'; "
                "pass --metric with one of the names its metrics produce."
            )
        return 0.0

    def score(self, inputs: str, output: str, prediction: str | None) -> float:
        return self.score_state(self._state_for(inputs, output), prediction)


def as_dspy_metric(score: Callable[[str, str, str | None], float], field: str = "output") -> Callable[..., float]:
    """Wrap ``score(inputs, gold, prediction)`` as a DSPy metric ``(example, pred, trace=None)``."""

    def metric(example: Any, pred: Any, trace: Any = None) -> float:
        prediction = getattr(pred, field, None) if pred is not None else None
        if prediction is None and isinstance(pred, Mapping):
            prediction = pred.get(field)
        return score(example["inputs"], example["output"], prediction)

    metric.__name__ = "helm_metric"
    return metric


def as_feedback_metric(score: Callable[[str, str, str | None], float], metric_name: str,
                       field: str = "output") -> Callable[..., Any]:
    """A GEPA-style metric returning ``dspy.Prediction(score=..., feedback=...)``."""
    import dspy

    def metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> Any:
        prediction = getattr(pred, field, None) if pred is not None else None
        expected = gold["output"]
        value = score(gold["inputs"], expected, prediction)
        if prediction is None or str(prediction).strip() == "":
            feedback = f"No answer was produced. The expected answer is '{expected}'."
        elif value >= 1.0:
            feedback = f"Correct ({metric_name} = {value:g})."
        else:
            feedback = (
                f"{metric_name} = {value:g}. The answer given was '{str(prediction).strip()[:200]}'; "
                f"the expected answer is '{expected}'. Answer in exactly the expected form."
            )
        return dspy.Prediction(score=value, feedback=feedback)

    metric.__name__ = "helm_feedback_metric"
    return metric
