"""Any HELM scenario (or reference-style custom scenario) as DSPy train/val sets.

Rules, in order:

1. The test set is the split HELM reports on (the scenario's ``main_split``). It is never used to
   optimize the agent that is evaluated on it.
2. Optimization data comes from the scenario's own train/valid instances, or, where HELM loads only
   the test split (the four medical benchmarks), from the benchmark's official non-test files.
3. When no such data exists (MedCalc-Bench offline, Medbullets), the test pool is *cross-fitted*:
   its instances are split by seed into two folds; the agent for fold ``k`` is optimized on the
   other instances and evaluated on fold ``k`` only, and reports merge both folds.
4. Optimization questions that also appear in the test set (exactly or after normalization) are a
   :class:`LeakageError` naming the overlap.

Everything is deterministic given ``seed``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_optimizer._io import fingerprint
from helm_optimizer.errors import DataError, LeakageError
from helm_optimizer.helm.subsets import eval_plan

__all__ = [
    "STRATEGY_CROSS_FIT",
    "STRATEGY_OFFICIAL",
    "STRATEGY_SCENARIO",
    "ScenarioDataset",
    "default_cache_root",
    "evaluation_data_fingerprint",
    "load_dataset",
]

logger = logging.getLogger(__name__)

STRATEGY_SCENARIO = "scenario train/valid splits"
STRATEGY_OFFICIAL = "official non-test data"
STRATEGY_CROSS_FIT = "cross-fit on the test split"
STRATEGY_CUSTOM = "custom scenario load_data()"
NUM_FOLDS = 2
DEFAULT_VAL_SIZE = 200
DEFAULT_TRAIN_SIZE = 500


def default_cache_root() -> Path:
    import os

    return Path(os.environ.get("HELM_OPTIMIZER_CACHE_DIR", Path.home() / ".cache" / "helm-optimizer"))


@dataclass
class ScenarioDataset:
    """Optimization data for one scenario (and fold), with the HELM metric to score it."""

    entry: str
    key: str
    main_metric: str
    train: list[Any]
    val: list[Any]
    strategy: str
    fold: int | None
    num_folds: int
    eval_ids: list[str]
    test_size: int
    provenance: list[str]
    notes: list[str]
    scorer: Any
    sample: Any | None = None
    custom: Any | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint({
            "train": [[e["inputs"], e["output"]] for e in self.train],
            "val": [[e["inputs"], e["output"]] for e in self.val],
        })

    def dspy_metric(self) -> Any:
        if self.custom is not None:
            return self.custom.metric
        from helm_optimizer.metrics.helm_metric import as_dspy_metric

        return as_dspy_metric(self.scorer.score)

    def feedback_metric(self) -> Any:
        if self.custom is not None:
            from helm_optimizer.metrics.helm_metric import as_feedback_metric

            custom_metric = self.custom.metric

            def score(inputs: str, output: str, prediction: str | None) -> float:
                import dspy

                example = dspy.Example(inputs=inputs, output=output).with_inputs("inputs")
                return float(custom_metric(example, dspy.Prediction(output=prediction)))

            return as_feedback_metric(score, "metric")
        from helm_optimizer.metrics.helm_metric import as_feedback_metric

        return as_feedback_metric(self.scorer.score, self.main_metric)

    def describe(self) -> str:
        fold = f", fold {self.fold + 1} of {self.num_folds}" if self.fold is not None else ""
        return (f"{self.entry}: {len(self.train)} train / {len(self.val)} val examples ({self.strategy}{fold}); "
                f"evaluated on {len(self.eval_ids)} of {self.test_size} test instances; metric {self.main_metric}")


# ---------------------------------------------------------------------------------------------
# Instance loading with a local cache
# ---------------------------------------------------------------------------------------------
def _file_stamp(data_dir: str | None) -> list[Any]:
    """The content of every file under ``data_dir`` (SHA-256), so that any edit is seen, whatever its mtime."""
    import hashlib

    if not data_dir:
        return []
    root = Path(data_dir)
    if not root.is_dir():
        return [str(root)]
    stamps = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            stamps.append([str(path.relative_to(root)), digest.hexdigest()])
    return stamps


def evaluation_data_fingerprint(task: Any, cache_root: Path) -> str:
    """A fingerprint of the instances HELM evaluates ``task`` on: ids, inputs and references of its test split.

    Any change to the data (a file edited, another data directory with other content, another
    version of a downloaded dataset) changes it.
    """
    instances = _task_instances(task, cache_root)
    return fingerprint([
        [str(i.id), i.input.text, [[r.output.text, bool(r.is_correct)] for r in i.references]]
        for i in instances if i.split == task.main_split
    ])


def _task_instances(task: Any, cache_root: Path) -> list[Any]:
    spec_key = {"entry": task.name, "args": task.args, "scenario": task.scenario_spec.class_name,
                "scenario_args": task.scenario_spec.args, "files": _file_stamp(task.data_dir)}
    return _cached_instances(cache_root, "scenario", spec_key, lambda: task.load_instances(cache_root))


def _cached_instances(cache_root: Path, role: str, key_parts: dict[str, Any], build: Any) -> list[Any]:
    """Instances from ``cache_root/datasets`` when the key matches, else built and cached.

    The cache holds HELM ``Instance`` objects pickled by this package (a local, private cache:
    a file that fails to load is rebuilt, never trusted).
    """
    import gzip
    import pickle

    from helm_optimizer import __version__
    from helm_optimizer._io import write_bytes_atomic

    key = fingerprint({**key_parts, "role": role, "version": __version__})
    path = cache_root / "datasets" / f"{role}-{key}.pkl.gz"
    if path.is_file():
        try:
            with gzip.open(path, "rb") as handle:
                instances = pickle.load(handle)
            logger.debug("Loaded %d %s instances from cache %s", len(instances), role, path)
            return list(instances)
        except Exception as exc:
            logger.warning("Ignoring unreadable dataset cache %s (%s)", path, exc)
    instances = build()
    try:
        data = pickle.dumps(list(instances), protocol=pickle.HIGHEST_PROTOCOL)
        write_bytes_atomic(path, gzip.compress(data, compresslevel=1, mtime=0))
    except Exception as exc:  # caching is an optimization; failing to write it is not fatal
        logger.warning("Could not write dataset cache %s: %s", path, exc)
    return list(instances)


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------
def _sample(items: list[Any], k: int | None, rng: random.Random) -> list[Any]:
    if k is None or k >= len(items):
        return list(items)
    return rng.sample(items, k)


def _split_sizes(n_train_pool: int, n_val_pool: int, *, separate: bool, val_size: int | None,
                 train_size: int | None, limit: int | None) -> tuple[int, int]:
    if limit is not None:
        want_val = limit // 2
        want_train = limit - want_val
    else:
        want_val = val_size if val_size is not None else DEFAULT_VAL_SIZE
        want_train = train_size if train_size is not None else DEFAULT_TRAIN_SIZE
    if not separate:  # one pool: val first, then train from the rest
        total = n_train_pool
        n_val = min(want_val, total // 2 if limit is None and val_size is None else total - 1)
        n_val = max(1, n_val) if total >= 2 else 0
        n_train = min(want_train, total - n_val)
        return n_train, n_val
    return min(want_train, n_train_pool), min(want_val, n_val_pool)


# ---------------------------------------------------------------------------------------------
# Public entry
# ---------------------------------------------------------------------------------------------
def load_dataset(entry: str, *, data_dir: str | Path | None = None, seed: int = 0, limit: int | None = None,
                 val_size: int | None = None, train_size: int | None = None, fold: int | None = None,
                 eval_limit: int | None = None, plugins: Sequence[str] = (), metric: str | None = None,
                 cache_dir: Path | None = None, on_overlap: str = "refuse") -> ScenarioDataset:
    """Build the optimization data for a run entry (see the module docstring for the rules)."""
    from helm_optimizer.naming import parse_run_entry
    from helm_optimizer.scenarios.custom import CUSTOM_SCENARIOS

    name, _ = parse_run_entry(entry)
    if on_overlap not in ("refuse", "drop"):
        from helm_optimizer.errors import ConfigError

        raise ConfigError(f"on_overlap must be 'refuse' or 'drop', not {on_overlap!r}.")
    from helm_optimizer.helm.loading import prepare_helm

    prepare_helm(plugins=plugins)
    if name in CUSTOM_SCENARIOS:
        return _custom_dataset(name, seed=seed, limit=limit, val_size=val_size, train_size=train_size)
    return _helm_dataset(entry, data_dir=data_dir, seed=seed, limit=limit, val_size=val_size,
                         train_size=train_size, fold=fold, eval_limit=eval_limit, plugins=plugins,
                         metric=metric, cache_root=cache_dir or default_cache_root(), on_overlap=on_overlap)


def _custom_dataset(name: str, *, seed: int, limit: int | None, val_size: int | None,
                    train_size: int | None) -> ScenarioDataset:
    from helm_optimizer.scenarios.custom import custom_examples, instantiate_custom

    instance = instantiate_custom(name, seed=seed)
    trainset, valset = custom_examples(name, instance)
    rng = random.Random(f"custom:{seed}")
    n_train, n_val = _split_sizes(len(trainset), len(valset), separate=True, val_size=val_size,
                                  train_size=train_size, limit=limit)
    train = _sample(trainset, n_train, rng)
    val = _sample(valset, n_val, rng) if valset else []
    return ScenarioDataset(
        entry=name, key=name, main_metric=getattr(instance.metric, "__name__", "metric"), train=train, val=val,
        strategy=STRATEGY_CUSTOM, fold=None, num_folds=1, eval_ids=[], test_size=0,
        provenance=[f"{type(instance).__module__}.{type(instance).__name__}.load_data()"], notes=[],
        scorer=None, custom=instance,
    )


def _helm_dataset(entry: str, *, data_dir: str | Path | None, seed: int, limit: int | None,
                  val_size: int | None, train_size: int | None, fold: int | None, eval_limit: int | None,
                  plugins: Sequence[str], metric: str | None, cache_root: Path, on_overlap: str) -> ScenarioDataset:
    from helm.benchmark.scenarios.scenario import TRAIN_SPLIT, VALID_SPLIT

    from helm_optimizer.helm.task import build_task
    from helm_optimizer.metrics.helm_metric import HelmScorer
    task = build_task(entry, data_dir=data_dir, plugins=plugins, metric=metric)
    instances = _task_instances(task, cache_root)
    test = [i for i in instances if i.split == task.main_split]
    if not test:
        splits = sorted({str(i.split) for i in instances})
        raise DataError(
            f"Scenario '{entry}' has no instances in its '{task.main_split}' split (splits found: "
            f"{', '.join(splits) or 'none'}); check the data files or the run entry arguments."
        )
    provenance: list[str] = []
    notes = list(task.notes)
    train_pool = [i for i in instances if i.split == TRAIN_SPLIT]
    valid_pool = [i for i in instances if i.split == VALID_SPLIT and task.main_split != VALID_SPLIT]
    strategy = STRATEGY_SCENARIO
    if task.profile is not None and not train_pool and not valid_pool:
        from helm_optimizer.scenarios.medical import optimization_instances

        scenario_args = {k: v for k, v in task.scenario_spec.args.items() if k != "data_dir"}
        official = optimization_instances(task.name, task.data_dir, **scenario_args)
        train_pool, valid_pool = list(official.train), list(official.valid)
        provenance.extend(official.sources)
        if official.note:
            notes.append(official.note)
        strategy = STRATEGY_OFFICIAL
    elif train_pool or valid_pool:
        provenance.append(f"HELM scenario {task.scenario_spec.class_name} train/valid splits")

    num_folds = 1
    test_ids = [str(i.id) for i in test]
    if not train_pool and not valid_pool:
        strategy = STRATEGY_CROSS_FIT
        num_folds = NUM_FOLDS
        notes.append(
            f"{task.name}: no training data disjoint from the test split; cross-fitting {NUM_FOLDS} folds "
            "(each agent is optimized on the other fold's instances and evaluated on its own fold)"
        )
    folds = eval_plan(test_ids, seed=seed, eval_limit=eval_limit, num_folds=num_folds)
    if strategy == STRATEGY_CROSS_FIT:
        k = 0 if fold is None else fold
        if k >= num_folds:
            raise DataError(f"Fold {k} does not exist: scenario '{entry}' is cross-fitted in {num_folds} folds (0-1).")
        eval_ids = folds[k]
        held_out = set(eval_ids)
        train_pool = [i for i in test if str(i.id) not in held_out]
        provenance.append(f"test instances outside fold {k + 1} of {num_folds} (seed {seed})")
    else:
        if fold is not None:
            raise DataError(f"Scenario '{entry}' has its own optimization data; it is not cross-fitted, drop --fold.")
        k = None
        eval_ids = folds[0]
        held_out = set(eval_ids)

    # Leakage: no optimization question may appear among the evaluated test questions. With "drop"
    # (always when cross-fitting) repeats are removed from the pools; with "refuse" the examples
    # actually selected are checked below and any repeat stops the run.
    eval_instances = [i for i in test if str(i.id) in held_out]
    if strategy == STRATEGY_CROSS_FIT or on_overlap == "drop":
        overlap = _overlap(train_pool + valid_pool, eval_instances)
        if overlap.has_overlap:
            banned = {_canonical(i) for i in eval_instances}
            before = len(train_pool) + len(valid_pool)
            train_pool = [i for i in train_pool if _canonical(i) not in banned]
            valid_pool = [i for i in valid_pool if _canonical(i) not in banned]
            notes.append(f"dropped {before - len(train_pool) - len(valid_pool)} optimization instances that repeat "
                         f"an evaluated test question ({overlap.summary()})")

    rng = random.Random(f"optimization-split:{seed}:{k}")
    separate = bool(valid_pool) and bool(train_pool)
    if not separate:
        pool = [*train_pool, *valid_pool]
        pool.sort(key=lambda i: (len(str(i.id)), str(i.id)))
        rng.shuffle(pool)
        n_train, n_val = _split_sizes(len(pool), 0, separate=False, val_size=val_size,
                                      train_size=train_size, limit=limit)
        val_instances = pool[:n_val]
        train_instances = pool[n_val:n_val + n_train]
    else:
        n_train, n_val = _split_sizes(len(train_pool), len(valid_pool), separate=True, val_size=val_size,
                                      train_size=train_size, limit=limit)
        train_instances = _sample(sorted(train_pool, key=lambda i: (len(str(i.id)), str(i.id))), n_train, rng)
        val_instances = _sample(sorted(valid_pool, key=lambda i: (len(str(i.id)), str(i.id))), n_val, rng)
    if not train_instances:
        raise DataError(f"Scenario '{entry}' leaves no optimization examples; raise --limit or check the data.")
    if strategy != STRATEGY_CROSS_FIT and on_overlap == "refuse":
        overlap = _overlap(train_instances + val_instances, eval_instances)
        if overlap.has_overlap:
            examples = "; ".join(repr(e.splitlines()[0][:80]) for e in overlap.examples[:3])
            raise LeakageError(
                f"Optimization data of '{entry}' overlaps the test split: {overlap.summary()}, e.g. {examples}; pass "
                "--on-overlap drop to leave those questions out of the optimization data, or fix the files."
            )

    import dspy

    states: dict[tuple[str, str], Any] = {}
    skipped = 0

    def to_examples(items: list[Any]) -> list[Any]:
        nonlocal skipped
        out = []
        for instance in items:
            prompted = task.prompt(instance)
            if prompted is None:
                skipped += 1
                continue
            states[(prompted.inputs, prompted.output)] = prompted.request_state
            out.append(dspy.Example(inputs=prompted.inputs, output=prompted.output).with_inputs("inputs"))
        return out

    train = to_examples(train_instances)
    val = to_examples(val_instances)
    if skipped:
        notes.append(f"skipped {skipped} optimization instances without a correct reference")
    sample = task.prompt(test[0])
    scorer = HelmScorer(task, states)
    return ScenarioDataset(
        entry=entry, key=task.key, main_metric=task.main_metric, train=train, val=val, strategy=strategy,
        fold=k, num_folds=num_folds, eval_ids=eval_ids, test_size=len(test_ids), provenance=provenance,
        notes=notes, scorer=scorer, sample=sample,
        counts={"train_pool": len(train_pool), "valid_pool": len(valid_pool), "test": len(test_ids)},
    )


def _question(instance: Any) -> str:
    """An instance as the question HELM asks: its input followed by its options/references."""
    refs = "\n".join(str(ref.output.text) for ref in instance.references)
    return f"{instance.input.text or ''}\n{refs}"


def _canonical(instance: Any) -> str:
    """Order-insensitive normalized form: a reordered option list is still the same question."""
    from helm_optimizer.scenarios.overlap import normalize_text

    refs = sorted(normalize_text(str(ref.output.text)) for ref in instance.references)
    return normalize_text(str(instance.input.text or "")) + " || " + " | ".join(refs)


def _overlap(candidates: Sequence[Any], test: Sequence[Any]) -> Any:
    """Exact overlap of the questions as written, normalized overlap of their canonical forms."""
    from helm_optimizer.scenarios.overlap import OverlapReport, find_overlap

    exact = find_overlap([_question(i) for i in candidates], [_question(i) for i in test])
    loose = find_overlap([_canonical(i) for i in candidates], [_canonical(i) for i in test])
    return OverlapReport(candidates=exact.candidates, test=exact.test, exact=exact.exact,
                         normalized=max(loose.normalized, exact.normalized),
                         examples=exact.examples or tuple(e[:120] for e in loose.examples))
