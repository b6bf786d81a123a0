"""Model names, scenario keys and run entries become file and deployment names without collisions."""

from __future__ import annotations

import pytest

from helm_optimizer.errors import ConfigError
from helm_optimizer.naming import deployment_name, model_from_path, model_path, parse_run_entry, scenario_key


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("openai/gpt-4o", "openai/gpt-4o"),
        ("local/smollm2", "local/smollm2"),
        ("ollama_chat/llama3:8b", "ollama_chat/llama3%3A8b"),
        ("hosted_vllm/../etc", "hosted_vllm/%2E%2E/etc"),
        ("x/.hidden", "x/%2Ehidden"),
        ("x/.", "x/%2E"),
    ],
)
def test_model_path_encodes_unsafe_characters(model: str, expected: str) -> None:
    assert model_path(model) == expected
    assert model_from_path(model_path(model)) == model


def test_model_path_is_injective_on_tricky_names() -> None:
    names = ["a/b", "a%2Fb", "a:b", "a%3Ab", "a/b/c", "a/b:c", "a_b", "a-b", "a.b", "..", "a/..", "A/b"]
    paths = [model_path(n) for n in names]
    assert len(set(paths)) == len(names)
    assert all(".." not in p.split("/") for p in paths)


def test_model_path_rejects_empty_segment() -> None:
    with pytest.raises(ConfigError, match="empty path segment"):
        model_path("openai//gpt")


def test_parse_run_entry() -> None:
    assert parse_run_entry("head_qa") == ("head_qa", {})
    assert parse_run_entry("head_qa:language=en,category=biology") == (
        "head_qa", {"language": "en", "category": "biology"})


@pytest.mark.parametrize("bad", ["", "head qa", "head_qa:", "head_qa:language", "head_qa:a=1,a=2", "x:=1"])
def test_parse_run_entry_rejects_malformed(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_run_entry(bad)
    assert "\n" not in str(info.value)


def test_scenario_key_drops_model_and_sorts_args() -> None:
    assert scenario_key("head_qa") == "head_qa"
    assert scenario_key("head_qa:language=en,category=biology,model=openai/x") == "head_qa,category=biology,language=en"


def test_deployment_names_follow_helm_dspy_convention() -> None:
    assert deployment_name("openai/gpt-4o", "MIPROv2") == "openai/gpt-4o-dspy-fs-miprov2"
    assert deployment_name("openai/gpt-4o", "BootstrapFewShotWithRandomSearch") == "openai/gpt-4o-dspy-fs-bfrs"
    assert deployment_name("openai/gpt-4o", "ZeroShotCoT") == "openai/gpt-4o-dspy-zs-cot"
    assert deployment_name("openai/gpt-4o", "ZeroShotPredict") == "openai/gpt-4o-dspy-zs-predict"
    assert deployment_name("local/smollm2", "GEPA") == "local/smollm2-dspy-fs-gepa"
