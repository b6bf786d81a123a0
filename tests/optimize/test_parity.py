"""Our optimizers return the program plain DSPy returns for the same settings, seed and LM answers.

Each test compiles once with DSPy's own class (``dspy.LM``, as DSPy's documentation shows) and
once through our optimizer registry exactly as ``optimize()`` calls it (``build_lm``'s LM, the
usage meter, ``OptimizeContext``), against the fake server at zero latency, and compares the saved
program states. The pins in pyproject.toml fix DSPy's version; a DSPy upgrade that changes an
algorithm fails here. ``benchmarks/optimizer_parity.py`` runs more configurations on real HeadQA.

Where ours differs from DSPy on purpose the test says what DSPy run ours equals instead.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from helm_optimizer.serving.fake import FakeOpenAIServer


@pytest.fixture(autouse=True)
def _no_lm_cache() -> Iterator[None]:
    """Every call reaches the fake server; the next optimize() configures DSPy's cache again."""
    import dspy

    import helm_optimizer.optimize as optimize_module

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    yield
    optimize_module._cache_configured = None


def _example(i: int) -> Any:
    import dspy

    a, b = 3 + 7 * i, 11 + 5 * i
    return dspy.Example(inputs=f"What is {a} + {b} = ?", output=str(a + b)).with_inputs("inputs")


def _metric(example: Any, prediction: Any, trace: Any = None) -> float:
    return float(str(getattr(prediction, "output", "")).strip() == example["output"])


@dataclass
class Case:
    train: int
    val: int
    seed: int = 0
    bootstrapped: int = 2
    labeled: int = 2
    threads: int = 4
    options: dict[str, Any] = field(default_factory=dict)

    def data(self) -> tuple[list[Any], list[Any]]:
        examples = [_example(i) for i in range(self.train + self.val)]
        return examples[: self.train], examples[self.train:]


def _server() -> FakeOpenAIServer:
    # 40 % right without demos, 80 % with, which questions depending on the instruction too: demo sets and
    # instructions score differently, so the searches have work to do.
    return FakeOpenAIServer(accuracy=0.4, demo_accuracy=0.8, seed=3, instructions_matter=True)


def _state(program: Any) -> str:
    return json.dumps(program.dump_state(), sort_keys=True, default=str)


def _ours(optimizer: str, case: Case) -> tuple[Any, int]:
    import dspy

    from helm_optimizer.config import LMConfig
    from helm_optimizer.lm import UsageMeter, adapter_for, build_lm
    from helm_optimizer.optimizers import OPTIMIZERS
    from helm_optimizer.optimizers.base import OptimizeContext

    train, val = case.data()
    with _server() as server:
        cfg = LMConfig(model="openai/fake-parity", api_base=server.api_base)
        meter = UsageMeter(concurrency=case.threads)
        lm = build_lm(cfg, cache=False, meter=meter, parallel=case.threads)
        context = OptimizeContext(metric=_metric, feedback_metric=_metric, task_lm=lm, prompt_lm=lm,
                                  max_bootstrapped_demos=case.bootstrapped, max_labeled_demos=case.labeled,
                                  num_threads=case.threads, seed=case.seed, auto="light")
        with dspy.context(lm=lm, adapter=adapter_for(cfg), usage_tracker=meter, track_usage=True, max_errors=10**9):
            program = OPTIMIZERS.get(optimizer)(dict(case.options)).compile(  # type: ignore[call-arg]
                dspy.ChainOfThought("inputs -> output"), trainset=train, valset=val, context=context)
        return program, server.stats()["completions"]


def _dspy(case: Case, run: Callable[[Any, Any, list[Any], list[Any]], Any]) -> tuple[Any, int]:
    import dspy

    train, val = case.data()
    with _server() as server:
        lm = dspy.LM("openai/fake-parity", api_base=server.api_base, api_key="not-needed", cache=False,
                     temperature=0.0, num_retries=0)
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
            program = run(lm, dspy.ChainOfThought("inputs -> output"), train, val)
        return program, server.stats()["completions"]


def _dspy_random_search(case: Case, *, restrict: list[int] | None = None, candidates: int = 16) -> Callable[..., Any]:
    def run(lm: Any, student: Any, train: list[Any], val: list[Any]) -> Any:
        import dspy

        optimizer = dspy.BootstrapFewShotWithRandomSearch(
            metric=_metric, max_bootstrapped_demos=case.bootstrapped, max_labeled_demos=case.labeled,
            num_threads=case.threads, num_candidate_programs=candidates)
        return optimizer.compile(student, trainset=train, valset=val, restrict=restrict)

    return run


def _dspy_mipro(case: Case) -> Callable[..., Any]:
    def run(lm: Any, student: Any, train: list[Any], val: list[Any]) -> Any:
        import dspy

        optimizer = dspy.MIPROv2(metric=_metric, prompt_model=lm, task_model=lm, auto="light", seed=case.seed,
                                 num_threads=case.threads, max_bootstrapped_demos=case.bootstrapped,
                                 max_labeled_demos=case.labeled, verbose=False)
        return optimizer.compile(student, trainset=train, valset=val)

    return run


def _dspy_search_path(program: Any) -> list[tuple[str, dict[str, int] | None, float]]:
    """From DSPy's ``trial_logs``: each trial's choices and score, and each full evaluation's score, in order."""
    path: list[tuple[str, dict[str, int] | None, float]] = []
    for _number, log in sorted(program.trial_logs.items())[1:]:  # 1 is the unoptimized program
        choices = {k: v for k, v in log.items() if k.endswith(("_predictor_instruction", "_predictor_demos"))}
        if choices:
            path.append(("trial", choices, log.get("mb_score", log.get("full_eval_score"))))
        else:
            path.append(("full evaluation", None, log["full_eval_score"]))
    return path


def _our_search_path(search: Any) -> list[tuple[str, dict[str, int] | None, float]]:
    return [(kind, choices if kind == "trial" else None, score) for kind, choices, score in search.history]


def _demo_counts(program: Any) -> list[int]:
    return [len(p.demos) for p in program.predictors()]


def test_random_search_with_the_default_16_candidates() -> None:
    case = Case(train=20, val=10)
    ours, ours_calls = _ours("BootstrapFewShotWithRandomSearch", case)
    reference, reference_calls = _dspy(case, _dspy_random_search(case))
    assert _state(ours) == _state(reference)
    assert len(ours.candidate_scores) == 19 and len(set(ours.candidate_scores)) > 1
    assert ours_calls <= reference_calls


def test_random_search_seed_picks_dspys_candidates_from_that_seed_on() -> None:
    """Difference: DSPy's random search has no seed (candidate k shuffles with ``Random(k)``); ours shuffles
    with ``Random(seed + k)``, so seed 3 equals DSPy's search restricted to candidates 3..(3 + N - 1)."""
    case = Case(train=20, val=10, seed=3, options={"num_candidate_programs": 4})
    ours, _ = _ours("BootstrapFewShotWithRandomSearch", case)
    restricted = _dspy_random_search(case, restrict=[-3, -2, -1, 3, 4, 5, 6], candidates=7)
    reference, _ = _dspy(case, restricted)
    assert _state(ours) == _state(reference)
    by_seed = sorted(reference.candidate_programs, key=lambda c: c["seed"])
    assert ours.candidate_scores == [c["score"] for c in by_seed]


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every MIPROv2 trial search our optimizer runs (to compare its path with DSPy's trial logs)."""
    from helm_optimizer.optimizers.parallel import trials

    seen: list[Any] = []
    real_run = trials.TrialSearch.run

    def run(self: Any, default_score: Any) -> Any:
        seen.append(self)
        return real_run(self, default_score)

    monkeypatch.setattr(trials.TrialSearch, "run", run)
    return seen


def test_mipro_light_with_minibatches_full_evaluations_and_tpe_past_startup(searches: list[Any]) -> None:
    """The production path: auto=light, 60 validation examples (minibatches of 35 and periodic full
    evaluations), seed 5, no labeled demos (the second demo set is then a shuffled bootstrap)."""
    from helm_optimizer.optimizers.parallel.trials import startup_trials

    case = Case(train=20, val=60, seed=5, labeled=0)
    ours, ours_calls = _ours("MIPROv2", case)
    reference, reference_calls = _dspy(case, _dspy_mipro(case))
    assert _state(ours) == _state(reference)
    [search] = searches
    assert _our_search_path(search) == _dspy_search_path(reference)  # every trial's choices and score
    assert ours_calls < reference_calls
    assert search.minibatch and search.sample_size == 35 and search.num_trials == 10
    # the unoptimized program, 10 trials and a full evaluation after trials 5 and 10
    assert len(search.study.trials) == 13 and len(search.fully_evaluated) == 2
    assert len(search.study.trials) > startup_trials() + 1  # the last trials are TPE's, not random
    assert _demo_counts(ours) != [0]


def test_zero_shot_mipro_light(searches: list[Any]) -> None:
    """max_bootstrapped_demos=0 and max_labeled_demos=0: demo sets inform the proposals, then go."""
    case = Case(train=20, val=20, bootstrapped=0, labeled=0)
    ours, _ = _ours("MIPROv2", case)
    reference, _ = _dspy(case, _dspy_mipro(case))
    assert _state(ours) == _state(reference)
    [search] = searches
    assert _our_search_path(search) == _dspy_search_path(reference)
    assert not search.minibatch and search.num_trials == 9  # max(2·1·log2 6, 1.5·6)
    assert _demo_counts(ours) == [0]
    assert ours.predictors()[0].signature.instructions != "Given the fields `inputs`, produce the fields `output`."


def test_random_search_stop_at_score_keeps_dspys_winner() -> None:
    """Candidates after the first one reaching ``stop_at_score`` cannot win, as in DSPy (which does not build them)."""
    case = Case(train=20, val=10, options={"num_candidate_programs": 6})
    unstopped, _ = _ours("BootstrapFewShotWithRandomSearch", case)
    scores = unstopped.candidate_scores
    winner = scores.index(max(scores))
    assert winner > 0
    threshold = max(scores[:winner])  # reached before the winner: stopping there changes the outcome
    case.options["stop_at_score"] = threshold
    ours, _ = _ours("BootstrapFewShotWithRandomSearch", case)

    def stopped(lm: Any, student: Any, train: list[Any], val: list[Any]) -> Any:
        import dspy

        return dspy.BootstrapFewShotWithRandomSearch(
            metric=_metric, max_bootstrapped_demos=case.bootstrapped, max_labeled_demos=case.labeled,
            num_threads=case.threads, num_candidate_programs=6, stop_at_score=threshold,
        ).compile(student, trainset=train, valset=val)

    reference, _ = _dspy(case, stopped)
    assert _state(ours) == _state(reference) != _state(unstopped)


def test_mipro_scores_a_small_validation_set_whole_where_dspy_refuses() -> None:
    """Difference: DSPy's default minibatch of 35 fails on 8 validation examples; ours scores them whole,
    which is DSPy's run with ``minibatch=False``."""
    import dspy

    case = Case(train=12, val=8, options={"num_candidates": 3, "num_trials": 4})
    ours, _ = _ours("MIPROv2", case)

    def mipro(minibatch: bool) -> Callable[..., Any]:
        def run(lm: Any, student: Any, train: list[Any], val: list[Any]) -> Any:
            return dspy.MIPROv2(metric=_metric, prompt_model=lm, task_model=lm, auto=None, num_candidates=3,
                                seed=0, num_threads=case.threads, max_bootstrapped_demos=2, max_labeled_demos=2,
                                verbose=False).compile(student, trainset=train, valset=val, num_trials=4,
                                                       minibatch=minibatch)

        return run

    with pytest.raises(ValueError, match="Minibatch size cannot exceed"):
        _dspy(case, mipro(minibatch=True))
    reference, _ = _dspy(case, mipro(minibatch=False))
    assert _state(ours) == _state(reference)


def test_labeled_few_shot_equals_dspys_at_seed_0_and_samples_with_the_seed_otherwise() -> None:
    """Difference: DSPy's LabeledFewShot always samples with ``Random(0)``; ours with ``Random(seed)``."""
    import dspy

    from helm_optimizer.optimizers import OPTIMIZERS
    from helm_optimizer.optimizers.base import OptimizeContext

    train = [_example(i) for i in range(12)]
    student = dspy.ChainOfThought("inputs -> output")
    for seed in (0, 7):
        context = OptimizeContext(metric=_metric, feedback_metric=_metric, task_lm=None, prompt_lm=None,
                                  max_labeled_demos=3, seed=seed)
        ours = OPTIMIZERS.get("LabeledFewShot")({}).compile(  # type: ignore[call-arg]
            student, trainset=train, valset=[], context=context)
        expected = random.Random(seed).sample(train, 3)
        assert [d["inputs"] for d in ours.predictors()[0].demos] == [d["inputs"] for d in expected]
    dspy_program = dspy.LabeledFewShot(k=3).compile(student, trainset=train)
    seed_0 = OPTIMIZERS.get("LabeledFewShot")({}).compile(  # type: ignore[call-arg]
        student, trainset=train, valset=[],
        context=OptimizeContext(metric=_metric, feedback_metric=_metric, task_lm=None, prompt_lm=None,
                                max_labeled_demos=3, seed=0))
    assert _state(seed_0) == _state(dspy_program)


def test_bootstrap_few_shot_is_dspys_on_the_training_set_shuffled_by_the_seed() -> None:
    """Difference: DSPy's BootstrapFewShot tries the training set in its order; ours shuffles it with the seed."""
    case = Case(train=12, val=0, seed=4)
    ours, _ = _ours("BootstrapFewShot", case)

    def shuffled(lm: Any, student: Any, train: list[Any], val: list[Any]) -> Any:
        import dspy

        order = list(train)
        random.Random(case.seed).shuffle(order)
        return dspy.BootstrapFewShot(metric=_metric, max_bootstrapped_demos=2, max_labeled_demos=2).compile(
            student, trainset=order)

    reference, _ = _dspy(case, shuffled)
    assert _state(ours) == _state(reference)


def test_program_source_is_read_before_any_pool_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPython 3.11 fails AST conversion when two threads parse at once, and DSPy then silently proposes
    without the program code: the source is read while no pool worker runs, and the proposer gets it."""
    import threading

    from helm_optimizer.optimizers.parallel import mipro

    workers_at_read: list[list[str]] = []
    codes: list[str | None] = []
    real_source, real_proposer = mipro.get_dspy_source_code, mipro.InstructionProposer

    def source(program: Any) -> str:
        workers_at_read.append([t.name for t in threading.enumerate() if t.name.startswith("hopt-work-")])
        return str(real_source(program))

    def proposer(**kwargs: Any) -> Any:
        codes.append(kwargs["program_code"])
        return real_proposer(**kwargs)

    monkeypatch.setattr(mipro, "get_dspy_source_code", source)
    monkeypatch.setattr(mipro, "InstructionProposer", proposer)
    _ours("MIPROv2", Case(train=10, val=6, options={"num_candidates": 3, "num_trials": 2}))
    assert workers_at_read == [[]]
    [code] = codes
    assert code is not None and "inputs" in code


@pytest.mark.parametrize("optimizer", ["BootstrapFewShotWithRandomSearch", "MIPROv2"])
def test_a_failing_bootstrap_fails_the_compile_as_in_dspy(optimizer: str) -> None:
    """A metric that raises, with max_errors=1, fails DSPy's compile and ours. MIPROv2's first failure is
    a bootstrap's (the metric's error) in both; DSPy's random search fails in its first evaluation (a
    generic "cancelled" error), ours in whichever candidate fails first, naming the metric's error."""
    import dspy

    from helm_optimizer.config import LMConfig
    from helm_optimizer.lm import UsageMeter, build_lm
    from helm_optimizer.optimizers import OPTIMIZERS
    from helm_optimizer.optimizers.base import OptimizeContext

    def broken(example: Any, prediction: Any, trace: Any = None) -> float:
        raise ZeroDivisionError("metric bug")

    train, val = Case(train=10, val=6).data()
    options = {"max_errors": 1, **({"num_candidates": 3, "num_trials": 2} if optimizer == "MIPROv2" else {})}
    with _server() as server:
        meter = UsageMeter(concurrency=2)
        lm = build_lm(LMConfig(model="openai/fake-broken", api_base=server.api_base), cache=False, meter=meter)
        context = OptimizeContext(metric=broken, feedback_metric=broken, task_lm=lm, prompt_lm=lm, num_threads=2,
                                  max_bootstrapped_demos=2, max_labeled_demos=2)
        expected = ZeroDivisionError if optimizer == "MIPROv2" else Exception
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter(), usage_tracker=meter), \
                pytest.raises(expected, match="metric bug"):
            OPTIMIZERS.get(optimizer)(options).compile(  # type: ignore[call-arg]
                dspy.ChainOfThought("inputs -> output"), trainset=train, valset=val, context=context)
        reference_lm = dspy.LM("openai/fake-broken", api_base=server.api_base, api_key="x", cache=False)
        with dspy.context(lm=reference_lm), pytest.raises(expected):
            if optimizer == "MIPROv2":
                dspy.MIPROv2(metric=broken, auto=None, num_candidates=3, max_errors=1, max_bootstrapped_demos=2,
                             max_labeled_demos=2, num_threads=2).compile(
                    dspy.ChainOfThought("inputs -> output"), trainset=train, valset=val, num_trials=2,
                    minibatch=False)
            else:
                dspy.BootstrapFewShotWithRandomSearch(metric=broken, max_errors=1, max_bootstrapped_demos=2,
                                                      max_labeled_demos=2, num_threads=2).compile(
                    dspy.ChainOfThought("inputs -> output"), trainset=train, valset=val)
