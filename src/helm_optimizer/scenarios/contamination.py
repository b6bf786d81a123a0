"""Question-level contamination: near-duplicate questions and test questions quoted in free text.

Pure functions with no HELM dependency. A *question* is a stem, its answer options (empty for
generation tasks) and its correct answer(s). Two questions are the same question when one of these
holds, checked in this order (the first that holds names the *kind* of the match):

``exact``
    stem and options identical, character for character (options in order);
``normalized``
    stem and the *set* of options identical after :func:`normalize_text` (case, punctuation,
    white space, option order and option-letter prefixes such as ``A)`` do not count);
``stem+answer``
    the stems match (below) and the questions share a correct answer (after normalization);
``stem+options``
    the stems match and at least :data:`OPTION_OVERLAP` of the smaller option set is shared;
``stem n-gram``
    at least :data:`NGRAM_CONTAINMENT` of the test stem's word :data:`NGRAM`-grams occur in the
    other stem (the 8-gram pass of contamination studies), for stems of at least
    :data:`NGRAM_MIN_WORDS` words.

Stems *match* when they are equal after normalization, or when the words they have in common in
order (:class:`difflib.SequenceMatcher`) cover at least :data:`STEM_SIMILARITY` of the shorter
stem and the shorter has at least half the words of the longer (a prefix on the stem or a one-word
edit still matches; a short generic stem inside a long one does not). Two stems that differ *only*
in their numbers are template variants, never the same question: MedCalc-Bench's ``heart rate of
131 bpm`` and ``heart rate of 48 bpm`` ask for different values. So the same question with a
distractor added or removed, letters prefixed to its options, a prefix on its stem or a one-word
edit is found, while a generic stem such as ``"The glucocorticoids:"`` asked with other options
and another answer is not.

Free text (an agent's demos, an optimized instruction) *quotes* a test question when it holds its
stem (the n-gram rule above, or the whole normalized stem for shorter stems) and, for a question
with options, at least :data:`OPTION_OVERLAP` of its options.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from helm_optimizer.scenarios.overlap import normalize_text

__all__ = [
    "KINDS",
    "NGRAM",
    "NGRAM_CONTAINMENT",
    "NGRAM_MIN_WORDS",
    "OPTION_OVERLAP",
    "STEM_SIMILARITY",
    "ContaminationReport",
    "Match",
    "Question",
    "TextMatch",
    "find_duplicates",
    "find_quoted",
    "near_duplicate_groups",
    "question_of",
]

KINDS = ("exact", "normalized", "stem+answer", "stem+options", "stem n-gram")
NGRAM = 8
NGRAM_CONTAINMENT = 0.7
NGRAM_MIN_WORDS = 20
STEM_SIMILARITY = 0.85
OPTION_OVERLAP = 0.75
_SHINGLE = 3  # candidate generation: pairs sharing word 3-grams
_PREFILTER = 0.5
_MAX_EXAMPLES = 5
_DIGIT = re.compile(r"\d")
_OPTION_LETTER = re.compile(r"^\s*\(?[A-Za-z1-9]\s*[).:]\s+")


@dataclass(frozen=True)
class Question:
    """One question: its stem (the input text), options in order (may be empty) and correct answers."""

    stem: str
    options: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    id: str = ""


def question_of(instance: Any, *, multiple_choice: bool) -> Question:
    """A HELM instance as a question: its input text, its references as options (multiple choice only)."""
    references = list(getattr(instance, "references", []) or [])
    texts = tuple(str(ref.output.text) for ref in references)
    answers = tuple(str(ref.output.text) for ref in references if ref.is_correct)
    return Question(stem=str(instance.input.text or ""), options=texts if multiple_choice else (),
                    answers=answers, id=str(instance.id))


@dataclass(frozen=True)
class Match:
    candidate: int
    test: int
    kind: str


@dataclass(frozen=True)
class TextMatch:
    text: int
    test: int


@dataclass(frozen=True)
class ContaminationReport:
    """How many candidates repeat a test question, counted once each under their strongest kind."""

    candidates: int
    test: int
    counts: Mapping[str, int]
    matches: tuple[Match, ...] = ()
    examples: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def has_overlap(self) -> bool:
        return self.total > 0

    @property
    def flagged(self) -> frozenset[int]:
        """Indices of the candidates that repeat some test question."""
        return frozenset(m.candidate for m in self.matches)

    def summary(self) -> str:
        """E.g. ``12 of 3,925 candidates repeat one of the 2,742 test questions (1 exact, ...)``."""
        exact = self.counts.get("exact", 0)
        normalized = exact + self.counts.get("normalized", 0)
        others = ", ".join(f"{self.counts.get(k, 0):,} {k}" for k in KINDS[2:])
        return (f"{self.total:,} of {self.candidates:,} candidates repeat one of the {self.test:,} test questions "
                f"({exact:,} exact, {normalized:,} after normalization; near-duplicates: {others})")

    def as_dict(self) -> dict[str, object]:
        return {"candidates": self.candidates, "test": self.test, "total": self.total,
                "counts": {k: int(self.counts.get(k, 0)) for k in KINDS}}


@dataclass
class _Prepared:
    raw: str
    norm_stem: str
    words: list[str]
    options: frozenset[str]
    answers: frozenset[str]
    numbers: Counter[str] = field(default_factory=Counter)
    skeleton: tuple[str, ...] = ()
    shingles: set[str] = field(default_factory=set)
    ngrams: set[str] = field(default_factory=set)

    @property
    def canonical(self) -> tuple[str, frozenset[str]]:
        return self.norm_stem, self.options


def _option(text: str) -> str:
    return normalize_text(_OPTION_LETTER.sub("", text, count=1))


def _grams(words: Sequence[str], n: int) -> set[str]:
    if len(words) < n:
        return {" ".join(words)} if words and n == _SHINGLE else set()
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def _prepare(question: Question) -> _Prepared:
    norm = normalize_text(question.stem)
    words = norm.split()
    options = frozenset(o for o in (_option(t) for t in question.options) if o)
    answers = frozenset(a for a in (_option(t) for t in question.answers) if a)
    raw = question.stem + "\n" + "\n".join(question.options)
    return _Prepared(raw=raw, norm_stem=norm, words=words, options=options, answers=answers,
                     numbers=Counter(w for w in words if _is_number(w)),
                     skeleton=tuple(w for w in words if not _is_number(w)),
                     shingles=_grams(words, _SHINGLE),
                     ngrams=_grams(words, NGRAM) if len(words) >= NGRAM_MIN_WORDS else set())


def _is_number(word: str) -> bool:
    return _DIGIT.search(word) is not None


def _template_variants(a: _Prepared, b: _Prepared) -> bool:
    return a.numbers != b.numbers and a.skeleton == b.skeleton


def _stems_match(a: _Prepared, b: _Prepared) -> bool:
    if a.norm_stem == b.norm_stem:
        return bool(a.norm_stem)
    if _template_variants(a, b):
        return False
    short, long = sorted((len(a.words), len(b.words)))
    if short < 4 or short * 2 < long:
        return False
    matcher = difflib.SequenceMatcher(None, a.words, b.words, autojunk=False)
    common = sum(block.size for block in matcher.get_matching_blocks())
    return common >= STEM_SIMILARITY * short


def _option_overlap(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def _ngram_contained(test: _Prepared, other: set[str]) -> bool:
    if not test.ngrams:
        return False
    return len(test.ngrams & other) >= NGRAM_CONTAINMENT * len(test.ngrams)


def _kind(c: _Prepared, t: _Prepared, exact: bool) -> str | None:
    if exact:
        return "exact"
    if c.norm_stem and c.canonical == t.canonical:
        return "normalized"
    if _stems_match(c, t):
        if c.answers and c.answers & t.answers:
            return "stem+answer"
        if _option_overlap(c.options, t.options) >= OPTION_OVERLAP:
            return "stem+options"
    if not _template_variants(c, t) and (_ngram_contained(t, c.ngrams) or _ngram_contained(c, t.ngrams)):
        return "stem n-gram"
    return None


class _Index:
    """Inverted index of the test stems by word 3-gram (very common 3-grams left out)."""

    def __init__(self, prepared: Sequence[_Prepared]) -> None:
        self.items = prepared
        self.by_stem: dict[str, list[int]] = defaultdict(list)
        self.by_raw: dict[str, list[int]] = defaultdict(list)
        postings: dict[str, list[int]] = defaultdict(list)
        for i, item in enumerate(prepared):
            self.by_stem[item.norm_stem].append(i)
            self.by_raw[item.raw].append(i)
            for shingle in item.shingles:
                postings[shingle].append(i)
        cap = max(100, len(prepared) // 10)
        self.postings = {s: ids for s, ids in postings.items() if len(ids) <= cap}

    def candidates(self, item: _Prepared) -> set[int]:
        found = set(self.by_stem.get(item.norm_stem, ()))
        hits = Counter(chain.from_iterable(self.postings.get(s, ()) for s in item.shingles))
        for j, shared in hits.items():
            smaller = min(len(item.shingles), len(self.items[j].shingles)) or 1
            if shared >= _PREFILTER * smaller:
                found.add(j)
        return found


def _pairs(candidates: Sequence[_Prepared], index: _Index, *, skip_self: bool) -> list[Match]:
    matches: list[Match] = []
    for i, item in enumerate(candidates):
        exact_ids = set(index.by_raw.get(item.raw, ()))
        for j in sorted(index.candidates(item) | exact_ids):
            if skip_self and j == i:
                continue
            kind = _kind(item, index.items[j], j in exact_ids)
            if kind is not None:
                matches.append(Match(i, j, kind))
    return matches


def _strongest(matches: Iterable[Match]) -> dict[int, Match]:
    best: dict[int, Match] = {}
    for match in matches:
        current = best.get(match.candidate)
        if current is None or KINDS.index(match.kind) < KINDS.index(current.kind):
            best[match.candidate] = match
    return best


def find_duplicates(candidates: Sequence[Question], test: Sequence[Question]) -> ContaminationReport:
    """Every candidate question that is the same question as some test question (see the module doc)."""
    prepared = [_prepare(q) for q in candidates]
    index = _Index([_prepare(q) for q in test])
    matches = _pairs(prepared, index, skip_self=False)
    best = _strongest(matches)
    counts = Counter(m.kind for m in best.values())
    order = sorted(best.values(), key=lambda m: (KINDS.index(m.kind), m.candidate))
    examples = tuple(candidates[m.candidate].stem[:200] for m in order[:_MAX_EXAMPLES])
    return ContaminationReport(candidates=len(candidates), test=len(test),
                               counts={k: counts.get(k, 0) for k in KINDS},
                               matches=tuple(sorted(matches, key=lambda m: (m.candidate, m.test))),
                               examples=examples)


def near_duplicate_groups(questions: Sequence[Question]) -> list[int]:
    """A group number per question: near-duplicates of each other (any kind, transitively) share one.

    Groups are numbered by their first member, so the result is deterministic.
    """
    prepared = [_prepare(q) for q in questions]
    parent = list(range(len(questions)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for match in _pairs(prepared, _Index(prepared), skip_self=True):
        a, b = root(match.candidate), root(match.test)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [root(i) for i in range(len(questions))]


def _contains_phrase(text: str, phrase: str) -> bool:
    return bool(phrase) and f" {phrase} " in f" {text} "


def find_quoted(texts: Sequence[str], test: Sequence[Question]) -> list[TextMatch]:
    """The (text, test question) pairs where free text quotes the question (see the module doc)."""
    prepared = [_prepare(q) for q in test]
    postings: dict[str, list[int]] = defaultdict(list)
    short: list[int] = []
    for j, item in enumerate(prepared):
        if item.ngrams:
            for gram in item.ngrams:
                postings[gram].append(j)
        elif item.norm_stem:
            short.append(j)
    found: list[TextMatch] = []
    for i, text in enumerate(texts):
        norm = normalize_text(text)
        grams = _grams(norm.split(), NGRAM)
        hits = Counter(chain.from_iterable(postings.get(g, ()) for g in grams))
        stems = {j for j, shared in hits.items() if shared >= NGRAM_CONTAINMENT * len(prepared[j].ngrams)}
        stems |= {j for j in short if _contains_phrase(norm, prepared[j].norm_stem) and prepared[j].options}
        numbers = Counter(w for w in norm.split() if _is_number(w))
        for j in sorted(stems):
            if prepared[j].numbers - numbers:
                continue  # the text lacks some of the question's values
            options = prepared[j].options
            if options:
                present = sum(1 for o in options if _contains_phrase(norm, o))
                if present < OPTION_OVERLAP * len(options):
                    continue
            found.append(TextMatch(i, j))
    return found
