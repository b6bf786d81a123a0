"""Text overlap between optimization data and a test set, for leakage checks.

Pure functions with no HELM dependency: callers pass the texts to compare (question text, note
text, a rendered prompt...). Two texts "match after normalization" when :func:`normalize_text`
maps them to the same string.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import regex

__all__ = ["OverlapReport", "find_overlap", "normalize_text"]

_MAX_EXAMPLES = 5
_WHITESPACE = re.compile(r"\s+")
# Unicode general category P* (what unicodedata.category(ch).startswith("P") selects), in C.
_PUNCTUATION = regex.compile(r"\p{P}")


def normalize_text(text: str) -> str:
    """Lowercase, punctuation replaced by spaces, whitespace collapsed, ends stripped.

    Unicode compatibility forms are folded first (NFKC), so a non-breaking space or a full-width
    letter does not hide a match. Symbols such as ``>`` or ``%`` are kept.
    """
    folded = unicodedata.normalize("NFKC", text).lower()
    no_punct = _PUNCTUATION.sub(" ", folded)
    return _WHITESPACE.sub(" ", no_punct).strip()


@dataclass(frozen=True)
class OverlapReport:
    """How many candidate texts also occur in the test texts.

    Counts are over candidates (with repetitions): ``exact`` candidates equal some test text
    character for character; ``normalized`` candidates equal one after :func:`normalize_text`
    (so ``normalized >= exact``). ``examples`` holds up to five matching candidate texts,
    exact matches first.
    """

    candidates: int
    test: int
    exact: int
    normalized: int
    examples: tuple[str, ...] = ()

    @property
    def exact_fraction(self) -> float:
        return self.exact / self.candidates if self.candidates else 0.0

    @property
    def normalized_fraction(self) -> float:
        return self.normalized / self.candidates if self.candidates else 0.0

    @property
    def has_overlap(self) -> bool:
        return self.normalized > 0

    def summary(self) -> str:
        """One line, e.g. ``3 of 1,366 candidates in the 2,742 test texts (2 exact, 3 after ...)``."""
        return (
            f"{self.normalized:,} of {self.candidates:,} candidates in the {self.test:,} test texts "
            f"({self.exact:,} exact, {self.normalized:,} after normalization)"
        )


def find_overlap(candidates: Iterable[str], test: Iterable[str]) -> OverlapReport:
    """Count the candidate texts that appear in ``test``, exactly and after normalization."""
    candidate_list = list(candidates)
    test_list = list(test)
    test_exact = set(test_list)
    test_normalized = {normalize_text(t) for t in test_list}
    exact_examples: list[str] = []
    normalized_examples: list[str] = []
    exact = normalized = 0
    for text in candidate_list:
        if text in test_exact:
            exact += 1
            normalized += 1
            exact_examples.append(text)
        elif normalize_text(text) in test_normalized:
            normalized += 1
            normalized_examples.append(text)
    examples = tuple((exact_examples + normalized_examples)[:_MAX_EXAMPLES])
    return OverlapReport(
        candidates=len(candidate_list),
        test=len(test_list),
        exact=exact,
        normalized=normalized,
        examples=examples,
    )
