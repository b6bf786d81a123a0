"""Bad model output (empty, overlong, garbage, invalid Unicode, undecodable bytes): counted per instance.

(Replies that carry no completion at all -- an HTML page, ``choices: []`` -- are failed calls, retried:
see tests/faults/test_hostile_replies.py.)

A run meeting such answers completes: each one scores 0 and is counted (``parse_failures`` or
``failed_calls`` in the agent's metadata, ``failed_requests`` in evaluation records).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helm_optimizer.config import LMConfig, OptimizeConfig
from helm_optimizer.optimize import optimize
from helm_optimizer.serving.fake import BAD_OUTPUT_KINDS, FakeOpenAIServer
from tests.faults.procs import (
    DEMO_DATA,
    MODEL,
    check_json_complete,
    child_env,
    records,
    run_cli,
    table_rows,
    tiny_sweep,
    write_yaml,
)

# What each kind of answer becomes inside DSPy: a parse failure, or (bytes that are not UTF-8) a failed call.
COUNTER = {"empty": "parse_failures", "overlong": "parse_failures", "garbage": "parse_failures",
           "invalid_utf8": "failed_calls", "surrogate": None}


@pytest.mark.parametrize("kind", BAD_OUTPUT_KINDS)
def test_bad_answers_while_optimizing_are_counted_and_the_agent_is_written(kind: str, tmp_path: Path) -> None:
    with FakeOpenAIServer(accuracy=0.5, demo_accuracy=0.9, seed=1, bad_output_rate=0.5,
                          bad_output_kinds=(kind,), overlong_chars=20_000) as server:
        config = OptimizeConfig(
            scenario="head_qa", optimizer="BootstrapFewShot", data_dir=DEMO_DATA, limit=12, num_threads=4,
            output_dir=tmp_path, max_bootstrapped_demos=2, max_labeled_demos=2,
            lm=LMConfig(model=MODEL, api_base=server.api_base, num_retries=2),
        )
        (agent,) = optimize(config).agents
        stats = server.stats()
    assert stats.get(f"bad_output_{kind}", 0) > 0, stats
    assert agent.status == "written"
    meta = json.loads(agent.path.with_name(agent.path.stem + ".meta.json").read_text(encoding="utf-8"))
    counter = COUNTER[kind]
    if counter is not None:
        assert meta["usage"][counter] > 0, meta["usage"]
    else:  # invalid Unicode in an otherwise good answer is repaired, not failed, and never reaches a file
        assert meta["usage"]["parse_failures"] == meta["usage"]["failed_calls"] == 0, meta["usage"]
    # A bad answer is the model's and is not retried; a reply that is no usable completion at all (bytes
    # that are not UTF-8, so not JSON) is retried like a transport failure (num_retries=2), then counted.
    retried = 2 * meta["usage"]["failed_calls"] if kind == "invalid_utf8" else 0
    assert meta["usage"]["retries"] == retried, meta["usage"]
    agent.path.read_bytes().decode("utf-8")  # the agent is valid UTF-8 JSON DSPy can load
    from helm_optimizer.agents.store import load_agent

    load_agent(agent.path)


@pytest.mark.slow
def test_bad_answers_while_evaluating_are_counted_and_the_sweep_completes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    kinds = ("empty", "overlong", "garbage", "surrogate", "invalid_utf8")
    with FakeOpenAIServer(accuracy=0.5, seed=1, bad_output_rate=0.5, bad_output_kinds=kinds,
                          overlong_chars=20_000) as server:
        config = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(server.api_base, out, optimizers=["LabeledFewShot"],
                                                                 optimizer_options={}))
        code, output = run_cli(["sweep", str(config)], tmp_path / "child.log", child_env(tmp_path / "cache"))
        stats = server.stats()
    assert code == 0, output[-3000:]
    assert all(stats.get(f"bad_output_{k}", 0) > 0 for k in kinds), stats
    by_method = {r["method"]: r for r in records(out)}
    assert set(by_method) == {"baseline", "ZeroShotCoT", "LabeledFewShot"}
    for method in ("ZeroShotCoT", "LabeledFewShot"):  # DSPy programs: unparseable answers fail their instance
        assert 0 < by_method[method]["failed_requests"] < by_method[method]["count"] == 8
    assert by_method["baseline"]["count"] == 8  # HELM's prompt: a bad answer is just a wrong answer
    assert len(table_rows(out)) == 3
    check_json_complete(out)


def test_undecodable_reply_fails_one_baseline_request_not_the_run() -> None:
    from helm.common.cache import BlackHoleCacheConfig
    from helm.common.request import Request

    from helm_optimizer.plugin.clients import OpenAICompatibleClient

    with FakeOpenAIServer(bad_output_rate=1.0, bad_output_kinds=("invalid_utf8",)) as server:
        client = OpenAICompatibleClient(BlackHoleCacheConfig(), base_url=server.api_base,
                                        openai_model_name="fake", timeout=5, max_retries=0)
        result = client.make_request(Request(model="openai/fake", model_deployment="openai/fake",
                                             prompt="What is 2+2=?", max_tokens=5))
    assert result.success is False
    assert result.error_flags is not None and result.error_flags.is_retriable is False
