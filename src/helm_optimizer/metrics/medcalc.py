"""MedCalc-Bench accuracy with HELM v0.5.16's defects fixed.

HELM's ``MedCalcBenchMetric`` range-checks only the categories ``date``, ``dosage conversion`` and
``physical``, so every ``lab`` and ``dosage`` row (367 of the 1,047 test rows) scores 0 whatever the
answer (helm issue #4351). It also calls ``float()`` on the whole completion, so
``"The answer is 21.55"`` scores 0, and compares ``risk``/``severity``/``diagnosis`` answers as
strings, so ``"3.0"`` does not equal ``"3"``.

Here the answer is first extracted from the completion (:func:`extract_medcalc_answer`), then
:func:`medcalc_score` applies HELM's documented rule to every category: numeric equality with the
ground truth for ``risk``, ``severity`` and ``diagnosis``; for every other category the answer must
lie within ``[Lower Limit, Upper Limit]``, compared as numbers, dates or gestational ages
(weeks and days) according to the form of the ground truth.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from datetime import date, datetime
from typing import Literal, NamedTuple, overload

from helm_optimizer._env import prepare_offline_environment

prepare_offline_environment()

from helm.benchmark.adaptation.adapter_spec import AdapterSpec  # noqa: E402
from helm.benchmark.adaptation.request_state import RequestState  # noqa: E402
from helm.benchmark.metrics.metric import Metric, MetricMetadata  # noqa: E402
from helm.benchmark.metrics.metric_name import MetricName  # noqa: E402
from helm.benchmark.metrics.metric_service import MetricService  # noqa: E402
from helm.benchmark.metrics.statistic import Stat  # noqa: E402

__all__ = [
    "EXACT_CATEGORIES",
    "METRIC_NAME",
    "AnswerKind",
    "GestationalAge",
    "MedCalcBenchCorrectedMetric",
    "answer_kind",
    "extract_medcalc_answer",
    "medcalc_score",
]

logger = logging.getLogger(__name__)

METRIC_NAME = "medcalc_bench_accuracy_corrected"
EXACT_CATEGORIES = frozenset({"risk", "severity", "diagnosis"})
"""Categories scored by numeric equality with the ground truth; all others by the limits."""

AnswerKind = Literal["number", "date", "gestational_age"]


class GestationalAge(NamedTuple):
    """A duration in weeks and days, as in MedCalc-Bench's ``('14 weeks', '1 days')``."""

    weeks: int
    days: int

    @property
    def total_days(self) -> int:
        return self.weeks * 7 + self.days


# A number not glued to a preceding letter, digit or caret: "-3" is negative, "140-87" is 140 and 87,
# and the 2 of "m2" or "m^2" is no number.
_NUMBER = re.compile(r"(?<![\w.^])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|(?<![\w.^])-?\.\d+")
# The one unit in MedCalc-Bench that holds a number: GFR in mL/min/1.73 m².
_UNIT_WITH_NUMBER = re.compile(r"/\s*1\.73\s*m(?:\^?2|²)?", re.IGNORECASE)
_ANSWER_MARKER = re.compile(r"answer\s*(?:is|:|=)|final answer|result\s*(?:is|:|=)", re.IGNORECASE)
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\ufe63": "-", "\uff0d": "-"})
_NEGATION = re.compile(r"(?:\bnot|\bnever|n't|\bno)\s+(?:equal\s+to\s+|exactly\s+)?$", re.IGNORECASE)
_NUM = r"-?\d[\d,]*(?:\.\d+)?"
_RANGE_AFTER = re.compile(rf"\s*%?\s*(?:-|–|—|\bto\b|\bor\b)\s*{_NUM}", re.IGNORECASE)
_RANGE_BEFORE = re.compile(rf"{_NUM}\s*%?\s*(?:–|—|\bto\b|\bor\b)\s*$|\d\s*%?-$", re.IGNORECASE)
_BETWEEN_BEFORE = re.compile(r"\b(?:between|from)\s+$", re.IGNORECASE)
_BETWEEN_AND_BEFORE = re.compile(rf"\b(?:between|from)\s+{_NUM}\s*%?\s*(?:and|to)\s+$", re.IGNORECASE)
_AND_NUMBER = re.compile(rf"\s*%?\s*(?:and|to)\s+{_NUM}", re.IGNORECASE)
_SLASH_DATE = re.compile(r"(?<!\d)(\d{1,2})/(\d{1,2})/(\d{4})(?!\d)")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december"
    "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_NAMED_DATE = re.compile(rf"\b({_MONTHS})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.IGNORECASE)
_WEEKS_DAYS = re.compile(
    r"(\d+)\s*(?:weeks?|wks?|w)\b['\"]?\s*(?:,|and|\+)?\s*['\"]?\s*(\d+)\s*(?:days?|d)\b", re.IGNORECASE
)
_WEEKS_DAYS_TUPLE = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)")
_WEEKS_ONLY = re.compile(r"(\d+)\s*(?:weeks?|wks?)\b", re.IGNORECASE)
_DAYS_ONLY = re.compile(r"(\d+)\s*days?\b", re.IGNORECASE)
_GOLD_GESTATIONAL = re.compile(r"\(\s*'(\d+) weeks?'\s*,\s*'(\d+) days?'\s*\)")
_GOLD_DATE = re.compile(r"\s*\d{1,2}/\d{1,2}/\d{4}\s*")


def answer_kind(gold: str) -> AnswerKind:
    """The kind of answer a MedCalc-Bench ground truth asks for, from its form."""
    if _GOLD_GESTATIONAL.fullmatch(gold.strip()):
        return "gestational_age"
    if _GOLD_DATE.fullmatch(gold):
        return "date"
    return "number"


@overload
def extract_medcalc_answer(text: str, output_type_hint: Literal["number"]) -> float | None: ...
@overload
def extract_medcalc_answer(text: str, output_type_hint: Literal["date"]) -> date | None: ...
@overload
def extract_medcalc_answer(
    text: str, output_type_hint: Literal["gestational_age"]
) -> GestationalAge | None: ...
@overload
def extract_medcalc_answer(
    text: str, output_type_hint: AnswerKind
) -> float | date | GestationalAge | None: ...
def extract_medcalc_answer(text: str, output_type_hint: AnswerKind) -> float | date | GestationalAge | None:
    """The answer in a model's text, or ``None`` when there is none of the hinted kind.

    - ``"number"``: the first number after the last "answer is"/"answer:" marker if there is one,
      else the last number in the text (thousands separators allowed: ``1,234.5``; a Unicode
      minus ``−3`` is -3). A number right after a negation (``not 5``) is skipped, so
      ``"the answer is not 5; it is 7"`` gives 7. A hedged range (``between 21 and 40``,
      ``21-40``, ``21 to 40``, ``21 or 22``) is no answer (``None``). Exponents (``m^2``) and
      the ``/1.73 m²`` of GFR units are not taken for the answer.
    - ``"date"``: the first date after the last marker, else the last date, written
      ``mm/dd/yyyy``, ``yyyy-mm-dd`` or ``Month d, yyyy``.
    - ``"gestational_age"``: the first after the last marker, else the last, of
      ``('14 weeks', '1 days')``, ``14 weeks and 1 day``, ``14w 1d`` or ``(14, 1)``; a bare
      ``14 weeks`` is 14 weeks 0 days and a bare ``99 days`` is 14 weeks 1 day.
    """
    if not text or not text.strip():
        return None
    text = text.translate(_MINUS_SIGNS)
    if output_type_hint == "number":
        return _extract_number(text)
    markers = list(_ANSWER_MARKER.finditer(text))
    start = markers[-1].end() if markers else 0
    if output_type_hint == "date":
        return _extract_date(text[start:], first=bool(start)) or (_extract_date(text) if start else None)
    return _extract_gestational_age(text[start:], first=bool(start)) or (
        _extract_gestational_age(text) if start else None)


def _negated(text: str, match: re.Match[str]) -> bool:
    return _NEGATION.search(text, max(0, match.start() - 40), match.start()) is not None


def _hedged(text: str, match: re.Match[str]) -> bool:
    """Whether the number is the start or the end of a range (``21-40``, ``between 21 and 40``)."""
    after, before = text[match.end():], text[:match.start()]
    if _RANGE_AFTER.match(after) or _RANGE_BEFORE.search(before):
        return True
    return bool(_BETWEEN_BEFORE.search(before) and _AND_NUMBER.match(after)) or bool(
        _BETWEEN_AND_BEFORE.search(before))


def _extract_number(text: str) -> float | None:
    text = _UNIT_WITH_NUMBER.sub(" ", text)
    markers = list(_ANSWER_MARKER.finditer(text))
    if markers:
        for after in _NUMBER.finditer(text, markers[-1].end()):
            if _negated(text, after):
                continue
            return None if _hedged(text, after) else _to_float(after.group(0))
    for match in reversed(list(_NUMBER.finditer(text))):
        if _negated(text, match):
            continue
        return None if _hedged(text, match) else _to_float(match.group(0))
    return None


def _to_float(token: str) -> float | None:
    try:
        value = float(token.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _extract_date(text: str, *, first: bool = False) -> date | None:
    candidates: list[tuple[int, date]] = []
    for match in _SLASH_DATE.finditer(text):
        _append_date(candidates, match.start(), "%m/%d/%Y", "/".join(match.groups()))
    for match in _ISO_DATE.finditer(text):
        _append_date(candidates, match.start(), "%Y-%m-%d", "-".join(match.groups()))
    for match in _NAMED_DATE.finditer(text):
        month = match.group(1)[:3].lower()
        _append_date(candidates, match.start(), "%b %d %Y", f"{month} {match.group(2)} {match.group(3)}")
    if not candidates:
        return None
    return (min(candidates) if first else max(candidates))[1]


def _append_date(candidates: list[tuple[int, date]], position: int, fmt: str, value: str) -> None:
    with contextlib.suppress(ValueError):  # e.g. 13/45/2020 is no date
        candidates.append((position, datetime.strptime(value, fmt).date()))


def _extract_gestational_age(text: str, *, first: bool = False) -> GestationalAge | None:
    pick = 0 if first else -1
    for pattern in (_WEEKS_DAYS, _WEEKS_DAYS_TUPLE):
        matches = list(pattern.finditer(text))
        if matches:
            weeks, days = matches[pick].groups()
            return GestationalAge(int(weeks), int(days))
    weeks_only = list(_WEEKS_ONLY.finditer(text))
    if weeks_only:
        return GestationalAge(int(weeks_only[pick].group(1)), 0)
    days_only = list(_DAYS_ONLY.finditer(text))
    if days_only:
        total = int(days_only[pick].group(1))
        return GestationalAge(total // 7, total % 7)
    return None


def _parse_limit(value: str, kind: AnswerKind) -> float | date | int | None:
    """A ground truth or limit string as a comparable value (gestational ages as total days)."""
    value = value.strip()
    if kind == "number":
        return _to_float(value) if _NUMBER.fullmatch(value) else None
    if kind == "date":
        try:
            return datetime.strptime(value, "%m/%d/%Y").date()
        except ValueError:
            return None
    match = _GOLD_GESTATIONAL.fullmatch(value)
    return GestationalAge(int(match.group(1)), int(match.group(2))).total_days if match else None


def medcalc_score(prediction: str, gold: str, category: str, lower_limit: str, upper_limit: str) -> float:
    """1.0 when ``prediction`` answers a MedCalc-Bench row correctly, else 0.0; never raises.

    ``risk``, ``severity`` and ``diagnosis`` need the extracted number to equal the ground truth
    (``"3"``, ``"3.0"`` and ``"Score: 3"`` all equal 3). Every other category (``lab``,
    ``physical``, ``dosage``, ``dosage conversion``, ``date``...) needs the extracted answer to lie
    within ``[lower_limit, upper_limit]``; if the limits cannot be read, equality with the ground
    truth is used instead. Dates and gestational ages are compared as dates and total days.
    """
    kind = answer_kind(gold)
    extracted = extract_medcalc_answer(prediction, kind)
    if extracted is None:
        return 0.0
    value: float | date | int = extracted.total_days if isinstance(extracted, GestationalAge) else extracted
    truth = _parse_limit(gold, kind)
    if category.strip().lower() in EXACT_CATEGORIES and kind == "number":
        return float(isinstance(value, float) and isinstance(truth, float) and _close(value, truth))
    lower, upper = _parse_limit(lower_limit, kind), _parse_limit(upper_limit, kind)
    if lower is not None and upper is not None:
        return float(lower <= value <= upper)  # type: ignore[operator]
    logger.debug(
        "MedCalc-Bench limits %r..%r unreadable as %s; comparing with the gold answer", lower, upper, kind
    )
    if truth is None:
        logger.warning("MedCalc-Bench ground truth %r is not a %s; scoring 0", gold, kind)
        return 0.0
    if isinstance(value, float) and isinstance(truth, float):
        return float(_close(value, truth))
    return float(value == truth)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


class MedCalcBenchCorrectedMetric(Metric):  # type: ignore[misc]
    """HELM metric emitting ``medcalc_bench_accuracy_corrected`` (see :func:`medcalc_score`).

    Reads the category and limits from ``instance.extra_data`` as HELM's ``MedCalcBenchMetric``
    does. A missing result, no completion or an empty completion scores 0.
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
        reference = instance.first_correct_reference or (
            instance.references[0] if instance.references else None
        )
        extra = instance.extra_data or {}
        if reference is None or "category" not in extra:
            logger.warning(
                "MedCalc-Bench instance %s lacks a reference or its category; scoring 0", instance.id
            )
            score = 0.0
        else:
            score = medcalc_score(
                prediction,
                reference.output.text,
                str(extra["category"]),
                str(extra.get("lower_limit", "")),
                str(extra.get("upper_limit", "")),
            )
        return [Stat(MetricName(METRIC_NAME)).add(score)]

    def get_metadata(self) -> list[MetricMetadata]:
        return [
            MetricMetadata(
                name=METRIC_NAME,
                display_name="MedCalc Accuracy (corrected)",
                short_display_name="MedCalc Acc (corr.)",
                description="MedCalc-Bench accuracy with the answer extracted from the completion: numeric "
                "equality for risk, severity and diagnosis; within [lower, upper] limits for every other "
                "category, including lab and dosage, which HELM v0.5.16 always scores 0.",
                lower_is_better=False,
                group=None,
            )
        ]
