"""Format failures and the extracted score of a run, from HELM's per-instance outputs.

HELM's multiple-choice metric maps an answer to an option only when the stripped answer *is* the
option letter, so a method answering ``"The answer is B"`` scores 0 even when B is right: a
"Δ vs baseline" then measures formatting as much as knowledge. Two figures separate the two:

``format_failure_rate``
    The share of answers HELM's metric cannot read: for multiple choice, answers that are not an
    option letter (after HELM's own ``output_mapping_pattern``, if any); for MEDEC, answers that
    neither say ``CORRECT`` nor name a sentence id; for MedCalc-Bench, answers holding no value of
    the kind asked (number, date, weeks and days); elsewhere, empty answers. A failed request
    always counts.

``extracted_mean``
    Multiple choice only: the accuracy after one extraction rule, :data:`EXTRACTION_RULE`, applied
    identically to every method (the baseline included), beside the strict HELM score.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from helm_optimizer.report.outputs import InstanceOutput, RunOutputs
from helm_optimizer.scenarios.overlap import normalize_text

__all__ = ["EXTRACTION_RULE", "FormatStats", "extract_letter", "format_stats", "helm_letter"]

EXTRACTION_RULE = (
    "the option letter HELM reads (the stripped answer is a letter); else the capital option letter after the "
    "last 'answer is' / 'answer:' (optionally in parentheses or bold); else a capital option letter opening the "
    "answer and followed by ')', '.', ':' or nothing ('B) Boston', '(B)'); else the one option whose text equals "
    "the answer (case, punctuation and spacing ignored); otherwise no answer"
)

_MARKER = re.compile(r"(?i:answer)\s*(?:(?i:is)|:)?\s*[:\-]?\s*[(*\[]*\s*([A-Z])\s*[)*\].]*(?![\w])")
_LEADING = re.compile(r"^\s*[(*\[]*\s*([A-Z])\s*(?:[)\].:]|\*+|$)")


@dataclass(frozen=True)
class FormatStats:
    n: int
    failures: int
    extracted_correct: float | None
    """Instances right after extraction (multiple choice), else None."""

    @property
    def failure_rate(self) -> float | None:
        return None if self.n == 0 else self.failures / self.n

    @property
    def extracted_mean(self) -> float | None:
        return None if self.extracted_correct is None or self.n == 0 else self.extracted_correct / self.n


def helm_letter(text: str | None, mapping: Mapping[str, str], pattern: str | None) -> str | None:
    """The option letter HELM's metric reads from an answer, or None (as ``compute_reference_metrics``)."""
    if text is None:
        return None
    prediction = text.strip()
    if pattern:
        match = re.search(pattern, prediction)
        prediction = "" if not match else (match.group(1) if match.groups() else match.group(0))
    return prediction if prediction in mapping else None


def extract_letter(text: str | None, mapping: Mapping[str, str], pattern: str | None = None) -> str | None:
    """The option letter under :data:`EXTRACTION_RULE`, or None."""
    strict = helm_letter(text, mapping, pattern)
    if strict is not None or not text or not text.strip():
        return strict
    letters = {letter.upper(): letter for letter in mapping}
    markers = [m.group(1).upper() for m in _MARKER.finditer(text) if m.group(1).upper() in letters]
    if markers:
        return letters[markers[-1]]
    leading = _LEADING.match(text)
    if leading and leading.group(1) in letters:
        return letters[leading.group(1)]
    answer = normalize_text(text)
    same = [letter for letter, option in mapping.items() if normalize_text(option) == answer]
    return same[0] if len(same) == 1 else None


def _correct_letters(output: InstanceOutput) -> set[str]:
    correct = {output.references[i] for i in output.correct}
    return {letter for letter, option in (output.output_mapping or {}).items() if option in correct}


def _generation_failure(output: InstanceOutput, scenario: str) -> bool:
    text = output.completion
    if text is None or not text.strip():
        return True
    if scenario == "medec":
        from helm_optimizer.metrics.medec import is_readable_medec_answer

        return not is_readable_medec_answer(text)
    if scenario == "medcalc_bench" and output.correct:
        from helm_optimizer.metrics.medcalc import answer_kind, extract_medcalc_answer

        return extract_medcalc_answer(text, answer_kind(output.references[output.correct[0]])) is None
    return False


def format_stats(outputs: RunOutputs, scenario: str, ids: set[str] | None = None) -> FormatStats:
    """Format failures (and, for multiple choice, extracted correct answers) of one run.

    ``scenario`` is the run entry's name (``medec``, ``medcalc_bench``...); ``ids`` restricts the
    figures to those instances (the ones the report scores).
    """
    chosen = [o for o in outputs.outputs if ids is None or o.instance_id in ids]
    if outputs.multiple_choice:
        failures = extracted = 0
        for output in chosen:
            mapping = output.output_mapping or {}
            if helm_letter(output.completion, mapping, outputs.output_mapping_pattern) is None:
                failures += 1
            if extract_letter(output.completion, mapping, outputs.output_mapping_pattern) in _correct_letters(output):
                extracted += 1
        return FormatStats(n=len(chosen), failures=failures, extracted_correct=float(extracted))
    failures = sum(1 for o in chosen if _generation_failure(o, scenario))
    return FormatStats(n=len(chosen), failures=failures, extracted_correct=None)
