"""MEDEC error-flag and error-sentence accuracy with HELM v0.5.16's defects fixed.

For a note with an error HELM's gold text is ``"<sentence id> <corrected sentence>"``, but
``MedecMetric`` calls ``int()`` on the whole text; that fails, the gold sentence id becomes -1,
and error-sentence accuracy is 0 for every note that has an error. Here the gold id is the
leading integer of the gold text.

HELM's error-flag accuracy also rewards failure: every answer other than exactly ``CORRECT`` —
an empty answer, a failed request, text in no readable form — counts as "error flagged", so an
answerer that always fails scores 311/597 = 52 % on the test set. The official MEDIQA-CORR scorer
counts a missing answer as wrong, and so does :data:`FLAG_METRIC` here: an answer is *readable*
when it is ``CORRECT`` (any letter case, surrounding white space, a trailing period) or starts with
a sentence id; an unreadable or empty answer is wrong on both metrics. HELM's own flag accuracy is
kept beside it as the official figure.
"""

from __future__ import annotations

import logging
import re

from helm_optimizer._env import prepare_offline_environment

prepare_offline_environment()

from helm.benchmark.adaptation.adapter_spec import AdapterSpec  # noqa: E402
from helm.benchmark.adaptation.request_state import RequestState  # noqa: E402
from helm.benchmark.metrics.metric import Metric, MetricMetadata  # noqa: E402
from helm.benchmark.metrics.metric_name import MetricName  # noqa: E402
from helm.benchmark.metrics.metric_service import MetricService  # noqa: E402
from helm.benchmark.metrics.statistic import Stat  # noqa: E402
from helm.benchmark.scenarios.scenario import CORRECT_TAG  # noqa: E402

__all__ = [
    "FLAG_METRIC",
    "SENTENCE_METRIC",
    "MedecCorrectedMetric",
    "is_readable_medec_answer",
    "medec_scores",
    "parse_medec_answer",
]

logger = logging.getLogger(__name__)

FLAG_METRIC = "medec_error_flag_accuracy_corrected"
SENTENCE_METRIC = "medec_error_sentence_accuracy_corrected"

_CORRECT = re.compile(r"correct\.?", re.IGNORECASE)
_LEADING_INT = re.compile(r"(\d+)")
_NO_ERROR = -1
_UNREADABLE = -2


def parse_medec_answer(text: str) -> tuple[int, int]:
    """``(error_flag, sentence_id)`` of a MEDEC answer or gold text.

    ``CORRECT`` gives ``(0, -1)``; text starting with an integer ``n`` gives ``(1, n)``; any
    other non-empty text gives ``(1, -2)`` (an error claimed in an unreadable form), as in HELM.
    """
    stripped = text.strip()
    if _CORRECT.fullmatch(stripped):
        return 0, _NO_ERROR
    match = _LEADING_INT.match(stripped)
    if match:
        return 1, int(match.group(1))
    return 1, _UNREADABLE


def is_readable_medec_answer(text: str) -> bool:
    """Whether an answer says ``CORRECT`` or names a sentence id (what both metrics can score)."""
    return bool(text.strip()) and parse_medec_answer(text)[1] != _UNREADABLE


def medec_scores(prediction: str, gold: str) -> dict[str, float]:
    """Error-flag and error-sentence accuracy (1.0 or 0.0 each) of one MEDEC answer.

    The flag is right when the answer is readable (:func:`is_readable_medec_answer`) and says
    ``CORRECT`` exactly when the gold does. The sentence is right when both say ``CORRECT``, or both
    flag an error and name the same sentence id. An empty or unreadable answer scores 0 on both.
    """
    if not is_readable_medec_answer(prediction):
        return {FLAG_METRIC: 0.0, SENTENCE_METRIC: 0.0}
    gold_flag, gold_id = parse_medec_answer(gold)
    if gold_flag == 1 and gold_id == _UNREADABLE:
        logger.warning("MEDEC gold text %r has no leading sentence id", gold[:40])
    predicted_flag, predicted_id = parse_medec_answer(prediction)
    flag = predicted_flag == gold_flag
    if gold_flag == 1 and predicted_flag == 1:
        sentence = gold_id >= 0 and predicted_id == gold_id
    else:
        sentence = gold_flag == 0 and predicted_flag == 0
    return {FLAG_METRIC: float(flag), SENTENCE_METRIC: float(sentence)}


class MedecCorrectedMetric(Metric):  # type: ignore[misc]
    """HELM metric emitting ``medec_error_flag_accuracy_corrected`` and ``..._sentence_accuracy_corrected``.

    A missing result, no completion, an empty completion or an unreadable one scores 0 on both
    (HELM raises on the first three and counts the last as a flagged error).
    """

    def evaluate_generation(
        self,
        adapter_spec: AdapterSpec,
        request_state: RequestState,
        metric_service: MetricService | None,
        eval_cache_path: str,
    ) -> list[Stat]:
        instance = request_state.instance
        result = request_state.result
        prediction = result.completions[0].text if result is not None and result.completions else ""
        gold = next((ref for ref in instance.references if CORRECT_TAG in ref.tags), None)
        if gold is None:
            logger.warning("MEDEC instance %s has no correct reference; scoring 0", instance.id)
            scores = {FLAG_METRIC: 0.0, SENTENCE_METRIC: 0.0}
        else:
            scores = medec_scores(prediction, gold.output.text)
        return [Stat(MetricName(name)).add(value) for name, value in scores.items()]

    def get_metadata(self) -> list[MetricMetadata]:
        return [
            MetricMetadata(
                name=FLAG_METRIC,
                display_name="Medical Error Flag Accuracy (corrected)",
                short_display_name="MedecFlagAcc (corr.)",
                description="Whether the model correctly says if a clinical note contains an error; an empty, "
                "failed or unreadable answer counts as wrong (HELM's flag accuracy counts it as an error flagged).",
                lower_is_better=False,
                group=None,
            ),
            MetricMetadata(
                name=SENTENCE_METRIC,
                display_name="Medical Error Sentence Accuracy (corrected)",
                short_display_name="MedecSentenceAcc (corr.)",
                description="Whether the model names the erroneous sentence (or says CORRECT for a correct "
                "note), with the gold sentence id read from the leading integer of the reference, which "
                "HELM v0.5.16 fails to parse.",
                lower_is_better=False,
                group=None,
            ),
        ]
