"""Our concurrent optimizers return exactly the program DSPy's own compile returns (seed, LM answers fixed).

A guard against DSPy changes: ``optimizers/parallel/`` re-schedules DSPy 3.4's random search and
MIPROv2 work; if DSPy changes its algorithm, these fail. ``benchmarks/optimizer_parity.py`` checks
more configurations on the real HeadQA files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helm_optimizer.serving.fake import FakeOpenAIServer
from tests.conftest import REPO

DEMO_DATA = REPO / "src" / "helm_optimizer" / "data" / "demo"


@pytest.fixture(autouse=True)
def _restore_cache_setting() -> Any:
    """These tests switch DSPy's global cache off; make the next optimize() configure it again."""
    yield
    import helm_optimizer.optimize as optimize_module

    optimize_module._cache_configured = None


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from helm_optimizer.scenarios.dataset import load_dataset

    return load_dataset("head_qa", data_dir=DEMO_DATA, cache_dir=tmp_path_factory.mktemp("c"), limit=24)


def _compile(way: str, optimizer: str, data: Any, server: FakeOpenAIServer, options: dict[str, Any]) -> str:
    import dspy

    from helm_optimizer.config import LMConfig
    from helm_optimizer.lm import UsageMeter, build_lm
    from helm_optimizer.optimizers import OPTIMIZERS
    from helm_optimizer.optimizers.base import OptimizeContext

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    cfg = LMConfig(model="openai/fake-parity", api_base=server.api_base)
    metric = data.dspy_metric()
    student = dspy.ChainOfThought("inputs -> output")
    train, val = list(data.train), list(data.val)
    if way == "ours":
        meter = UsageMeter(concurrency=4)
        lm = build_lm(cfg, cache=False, meter=meter)
        context = OptimizeContext(metric=metric, feedback_metric=metric, task_lm=lm, prompt_lm=lm, num_threads=4,
                                  seed=0, max_bootstrapped_demos=2, max_labeled_demos=2)
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter(), usage_tracker=meter, max_errors=10**9):
            program = OPTIMIZERS.get(optimizer)(dict(options)).compile(  # type: ignore[call-arg]
                student, trainset=train, valset=val, context=context)
    else:
        lm = dspy.LM(cfg.model, api_base=server.api_base, api_key="not-needed", cache=False, temperature=0.0,
                     num_retries=0)
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
            if optimizer == "BootstrapFewShotWithRandomSearch":
                program = dspy.BootstrapFewShotWithRandomSearch(
                    metric=metric, max_bootstrapped_demos=2, max_labeled_demos=2, num_threads=4,
                    num_candidate_programs=options["num_candidate_programs"]).compile(student, trainset=train,
                                                                                      valset=val)
            else:
                program = dspy.MIPROv2(
                    metric=metric, prompt_model=lm, task_model=lm, num_threads=4, seed=0, max_bootstrapped_demos=2,
                    max_labeled_demos=2, verbose=False, auto=None, num_candidates=options["num_candidates"],
                ).compile(student, trainset=train, valset=val, num_trials=options["num_trials"], minibatch=False)
    return json.dumps(program.dump_state(), sort_keys=True, default=str)


@pytest.mark.parametrize(("optimizer", "options"), [
    ("BootstrapFewShotWithRandomSearch", {"num_candidate_programs": 3}),
    ("MIPROv2", {"num_candidates": 3, "num_trials": 6}),
])
def test_same_program_as_dspy(optimizer: str, options: dict[str, Any], data: Any, tmp_path: Path) -> None:
    answers = {ex["inputs"]: ex["output"] for ex in data.train + data.val}
    states = {}
    for way in ("reference", "ours"):
        with FakeOpenAIServer(answers=answers, accuracy=0.4, demo_accuracy=0.8, seed=2) as server:
            states[way] = _compile(way, optimizer, data, server, options)
    assert states["ours"] == states["reference"]


def test_program_source_is_read_before_any_pool_work(data: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """CPython 3.11 fails AST conversion when two threads parse at once, and DSPy then silently proposes
    without the program code: the source is read while no pool worker runs, and the proposer uses it."""
    import threading

    from helm_optimizer.optimizers.parallel import mipro

    workers_at_read: list[list[str]] = []
    proposer_code: list[tuple[bool, str | None]] = []
    real_source, real_start = mipro.get_dspy_source_code, mipro.ParallelProposer.start

    def source(program: Any) -> str:
        workers_at_read.append([t.name for t in threading.enumerate() if t.name.startswith("hopt-work-")])
        return str(real_source(program))

    def start(self: Any, *args: Any, **kwargs: Any) -> Any:
        proposer_code.append((self.program_aware, self.program_code_string))
        return real_start(self, *args, **kwargs)

    monkeypatch.setattr(mipro, "get_dspy_source_code", source)
    monkeypatch.setattr(mipro.ParallelProposer, "start", start)
    answers = {ex["inputs"]: ex["output"] for ex in data.train + data.val}
    with FakeOpenAIServer(answers=answers, accuracy=0.4, demo_accuracy=0.8, seed=2) as server:
        _compile("ours", "MIPROv2", data, server, {"num_candidates": 3, "num_trials": 2})
    assert workers_at_read == [[]]
    [(aware, code)] = proposer_code
    assert aware and code is not None and "inputs" in code
