"""Configs validate at the edge; keys are resolved from the environment and never dumped."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr, ValidationError

from helm_optimizer.config import LMConfig, OptimizeConfig
from helm_optimizer.errors import BudgetExceededError, ModelError
from helm_optimizer.lm import UsageMeter, check_reachable, resolve_api_key


def test_lm_config_forbids_unknown_keys_and_never_dumps_the_key() -> None:
    with pytest.raises(ValidationError):
        LMConfig(model="openai/gpt-4o", api_key_envv="X")  # type: ignore[call-arg]
    cfg = LMConfig(model="openai/gpt-4o", api_key=SecretStr("sk-SECRET-123"))
    assert "sk-SECRET-123" not in cfg.model_dump_json()
    assert "sk-SECRET-123" not in repr(cfg)
    assert "api_key" not in cfg.public_dict()


def test_extra_options_that_look_like_secrets_are_refused() -> None:
    with pytest.raises(ValidationError, match="secret"):
        LMConfig(model="m/x", extra={"api_key": "k"})
    assert LMConfig(model="m/x", extra={"max_completion_tokens": 5}).extra == {"max_completion_tokens": 5}


def test_optimize_config_seed_zero_and_limit() -> None:
    cfg = OptimizeConfig(scenario="head_qa", lm=LMConfig(model="local/smollm2"), seed=0)
    assert cfg.seed == 0
    with pytest.raises(ValidationError):
        OptimizeConfig(scenario="head_qa", lm=LMConfig(model="local/smollm2"), limit=1)
    public = OptimizeConfig(scenario="h", lm=LMConfig(model="openai/x", api_key=SecretStr("sk-XYZ-987"))).public_dict()
    assert "sk-XYZ-987" not in str(public)


def test_resolve_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        resolve_api_key(LMConfig(model="openai/gpt-4o"))
    with pytest.raises(ModelError, match=r"Environment variable MY_KEY .* is not set"):
        resolve_api_key(LMConfig(model="openai/gpt-4o", api_key_env="MY_KEY"))
    monkeypatch.setenv("MY_KEY", "from-env")
    assert resolve_api_key(LMConfig(model="openai/gpt-4o", api_key_env="MY_KEY")) == "from-env"
    assert resolve_api_key(LMConfig(model="openai/x", api_base="http://127.0.0.1:9/v1")) == "not-needed"
    assert resolve_api_key(LMConfig(model="local/smollm2")) == "not-needed"


def test_unreachable_api_base_retries_with_backoff_then_fails_clearly() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    started = time.monotonic()
    with pytest.raises(ModelError) as info:
        check_reachable(f"http://127.0.0.1:{port}/v1", attempts=3, first_delay=0.05)
    assert time.monotonic() - started >= 0.15  # waited 0.05 + 0.1 between attempts
    assert f"127.0.0.1:{port}" in str(info.value) and "3 attempts" in str(info.value)


def test_usage_meter_budget_and_deepcopy_identity() -> None:
    import copy

    meter = UsageMeter(max_calls=2)
    assert copy.deepcopy(meter) is meter
    meter.add_usage("m", {"prompt_tokens": 10, "completion_tokens": 2})
    meter.check()
    meter.add_usage("m", {"prompt_tokens": 10, "completion_tokens": 2})
    with pytest.raises(BudgetExceededError, match="max-calls 2"):
        meter.check()
    assert meter.snapshot()["lm_calls"] == 2 and meter.snapshot()["prompt_tokens"] == 20
