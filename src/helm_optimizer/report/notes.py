"""What every reader must know before comparing rows: the report's header notes and decoding labels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from helm_optimizer.report.format import EXTRACTION_RULE
from helm_optimizer.report.table import SIGNIFICANCE_LEVEL, ReportTable

__all__ = ["decoding_summary", "header_notes"]

_DASH = "–"


def decoding_summary(decoding: Mapping[str, Any] | None) -> str:
    """``HELM adapter: max_tokens=1, temperature=0, stop=['\\n']`` (or a dash)."""
    if not decoding:
        return _DASH
    limit = decoding.get("max_tokens")
    stop = decoding.get("stop")
    parts = [f"max_tokens={'none' if limit is None else limit}", f"temperature={decoding.get('temperature')}"]
    if stop:
        parts.append(f"stop={list(stop)!r}")
    return f"{decoding.get('source', '?')}: " + ", ".join(parts)


def header_notes(table: ReportTable) -> list[str]:
    """What every reader must know before comparing rows (also at the top of the HTML page)."""
    notes = [
        "Significance is decided on Holm-adjusted p-values (step-down, family-wise error rate "
        f"{SIGNIFICANCE_LEVEL} over all {sum(1 for r in table.rows if r.p_value is not None)} comparisons of this "
        "report); the unadjusted p is shown beside it.",
        "The Δ interval is a percentile bootstrap; the test is McNemar's exact test for 0/1 scores, else the same "
        "bootstrap. The two can disagree near the threshold (different procedures, and the interval is not "
        "adjusted for multiplicity); where instances share a group (cluster bootstrap) or a method has several "
        "optimizer seeds (two-level bootstrap), interval and test come from one bootstrap.",
        "Decoding budgets differ by design: the baseline decodes under HELM's adapter settings (for example "
        "max_tokens 1 for multiple choice), DSPy methods under the model's LM config (no token limit unless "
        "max_tokens is set) and may reason before answering; see the decoding and mean completion tokens "
        "columns.",
        "format failures: answers HELM's metric cannot read; extracted: multiple-choice accuracy after one "
        "extraction rule applied to every method (" + EXTRACTION_RULE + ").",
    ]
    if any(r.num_seeds > 1 for r in table.rows):
        notes.append("Rows with several optimizer seeds show the mean over seeds; their interval and test come "
                     "from a two-level bootstrap over seeds and instances, so they include optimizer variance.")
    mismatched = sorted({str(r.decoding.get("model")) for r in table.rows
                         if r.decoding and r.decoding.get("model") not in (None, r.model)})
    if mismatched:
        notes.append("WARNING: some baselines ran on another model than the DSPy methods (" + ", ".join(mismatched)
                     + "); their Δ compares two models.")
    return notes
