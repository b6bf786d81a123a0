"""Any HELM scenario (or reference-style custom scenario) as DSPy train/val sets.

Rules, in order:

1. The test set is the split HELM reports on (the scenario's ``main_split``). It is never used to
   optimize the agent that is evaluated on it.
2. Optimization data comes from the scenario's own train/valid instances, or, where HELM loads only
   the test split (the four medical benchmarks), from the benchmark's official non-test files.
3. When no such data exists (MedCalc-Bench offline, Medbullets), the test pool is *cross-fitted*:
   its instances are split by seed into two folds; the agent for fold ``k`` is optimized on the
   other instances and evaluated on fold ``k`` only, and reports merge both folds.
4. Optimization questions that are the same question as a test question (exactly, after
   normalization, or as a near-duplicate: see :mod:`helm_optimizer.scenarios.contamination`) are a
   :class:`LeakageError` naming the overlap, or are dropped (``on_overlap="drop"``, and always when
   cross-fitting). Optimization data from outside the test split is compared with the *whole* test
   split, so any evaluation subset of it is clean; a cross-fitted agent's data with its held-out fold.
5. Instances the benchmark groups (MedCalc-Bench's shared patient notes) share a fold.

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
from helm_optimizer.helm.subsets import eval_plan, instance_groups
from helm_optimizer.scenarios.contamination import find_duplicates, question_of

__all__ = [
    "STRATEGY_CROSS_FIT",
    "STRATEGY_OFFICIAL",
    "STRATEGY_SCENARIO",
    "ScenarioDataset",
    "default_cache_root",
    "evaluation_data_fingerprint",
    "is_multiple_choice",
    "load_dataset",
    "scenario_instances",
    "test_split_fingerprint",
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
    train_ids: list[str] = field(default_factory=list)
    """``<split>:<instance id>`` of each training example (test-split ids only when cross-fitting); an
    instance without an id (official non-test files) is named by a fingerprint of its content."""
    val_ids: list[str] = field(default_factory=list)
    reference_questions: list[Any] = field(default_factory=list)
    """The test questions optimization data must not repeat (the whole test split, or the held-out fold)."""
    contamination: dict[str, Any] = field(default_factory=dict)
    """What the near-duplicate check compared and found (counts per kind, dropped)."""
    test_fingerprint: str = ""
    """Fingerprint of the whole test split (ids and input texts)."""

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
    instances = scenario_instances(task, cache_root)
    return fingerprint([
        [str(i.id), i.input.text, [[r.output.text, bool(r.is_correct)] for r in i.references]]
        for i in instances if i.split == task.main_split
    ])


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


def scenario_instances(task: Any, cache_root: Path) -> list[Any]:
    """Every instance of a HELM task (all splits), from the local cache when it is current."""
    spec_key = {"entry": task.name, "args": task.args, "scenario": task.scenario_spec.class_name,
                "scenario_args": task.scenario_spec.args, "files": _file_stamp(task.data_dir)}
    return _cached_instances(cache_root, "scenario", spec_key, lambda: task.load_instances(cache_root))


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
                 cache_dir: Path | None = None, on_overlap: str = "refuse",
                 optimizer_seed: int | None = None) -> ScenarioDataset:
    """Build the optimization data for a run entry (see the module docstring for the rules).

    ``seed`` decides the evaluated subset and the folds (shared with evaluation); ``optimizer_seed``
    (default: ``seed``) decides which optimization examples are drawn for train and validation.
    """
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
                         metric=metric, cache_root=cache_dir or default_cache_root(), on_overlap=on_overlap,
                         optimizer_seed=seed if optimizer_seed is None else optimizer_seed)


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
                  plugins: Sequence[str], metric: str | None, cache_root: Path, on_overlap: str,
                  optimizer_seed: int) -> ScenarioDataset:
    from helm.benchmark.scenarios.scenario import TRAIN_SPLIT, VALID_SPLIT

    from helm_optimizer.helm.task import build_task
    from helm_optimizer.metrics.helm_metric import HelmScorer
    task = build_task(entry, data_dir=data_dir, plugins=plugins, metric=metric)
    instances = scenario_instances(task, cache_root)
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
    rule = task.profile.fold_group if task.profile is not None else None
    folds = eval_plan(test_ids, seed=seed, eval_limit=eval_limit, num_folds=num_folds,
                      groups=instance_groups(test, rule))
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

    # Leakage: no optimization question may repeat a test question: any of the whole test split for
    # data from other splits, any of the held-out fold when cross-fitting. With "drop" (always when
    # cross-fitting) repeats are removed from the pools; with "refuse" the examples actually
    # selected are checked below and any repeat stops the run.
    multiple_choice = is_multiple_choice(task)
    reference = [i for i in test if str(i.id) in held_out] if strategy == STRATEGY_CROSS_FIT else test
    reference_questions = [question_of(i, multiple_choice=multiple_choice) for i in reference]
    contamination: dict[str, Any] = {"compared_with": "held-out fold" if strategy == STRATEGY_CROSS_FIT
                                     else "whole test split", "test_questions": len(reference), "dropped": 0}
    if strategy == STRATEGY_CROSS_FIT or on_overlap == "drop":
        pools = train_pool + valid_pool
        report = find_duplicates([question_of(i, multiple_choice=multiple_choice) for i in pools],
                                 reference_questions)
        contamination.update(report.as_dict())
        if report.has_overlap:
            banned = {id(pools[j]) for j in report.flagged}
            train_pool = [i for i in train_pool if id(i) not in banned]
            valid_pool = [i for i in valid_pool if id(i) not in banned]
            contamination["dropped"] = len(banned)
            notes.append(f"dropped {len(banned)} optimization instances that repeat a test question "
                         f"({report.summary()})")

    rng = random.Random(f"optimization-split:{optimizer_seed}:{k}")
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
        report = find_duplicates([question_of(i, multiple_choice=multiple_choice)
                                  for i in train_instances + val_instances], reference_questions)
        contamination.update(report.as_dict())
        if report.has_overlap:
            examples = "; ".join(repr(e.splitlines()[0][:80]) for e in report.examples[:3])
            raise LeakageError(
                f"Optimization data of '{entry}' overlaps the test split: {report.summary()}, e.g. {examples}; pass "
                "--on-overlap drop to leave those questions out of the optimization data, or fix the files."
            )

    import dspy

    states: dict[tuple[str, str], Any] = {}
    skipped = 0

    def to_examples(items: list[Any], ids: list[str]) -> list[Any]:
        nonlocal skipped
        out = []
        for instance in items:
            prompted = task.prompt(instance)
            if prompted is None:
                skipped += 1
                continue
            states[(prompted.inputs, prompted.output)] = prompted.request_state
            out.append(dspy.Example(inputs=prompted.inputs, output=prompted.output).with_inputs("inputs"))
            ids.append(f"{instance.split}:{_instance_id(instance)}")
        return out

    train_ids: list[str] = []
    val_ids: list[str] = []
    train = to_examples(train_instances, train_ids)
    val = to_examples(val_instances, val_ids)
    if skipped:
        notes.append(f"skipped {skipped} optimization instances without a correct reference")
    sample = task.prompt(test[0])
    scorer = HelmScorer(task, states)
    return ScenarioDataset(
        entry=entry, key=task.key, main_metric=task.main_metric, train=train, val=val, strategy=strategy,
        fold=k, num_folds=num_folds, eval_ids=eval_ids, test_size=len(test_ids), provenance=provenance,
        notes=notes, scorer=scorer, sample=sample,
        counts={"train_pool": len(train_pool), "valid_pool": len(valid_pool), "test": len(test_ids)},
        train_ids=train_ids, val_ids=val_ids, reference_questions=reference_questions,
        contamination=contamination, test_fingerprint=test_split_fingerprint(test),
    )


def _instance_id(instance: Any) -> str:
    """HELM's id, or (official non-test files carry none) a fingerprint of the question and references."""
    if instance.id is not None:
        return str(instance.id)
    return "content-" + fingerprint([str(instance.input.text or ""), [str(r.output.text) for r in instance.references]])


def is_multiple_choice(task: Any) -> bool:
    """Whether the task's references are answer options (HELM's multiple-choice adapters)."""
    return str(task.adapter_spec.method).startswith("multiple_choice")


def test_split_fingerprint(test: Sequence[Any]) -> str:
    """Fingerprint of a test split: its instance ids and input texts, in id order."""
    return fingerprint(sorted([str(i.id), str(i.input.text or "")] for i in test))
