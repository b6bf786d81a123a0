"""Model-metadata lookups are memoized inside helm-optimizer's LM calls and untouched outside them."""

from __future__ import annotations

from typing import Any

import pytest

from helm_optimizer import _dspy_metadata


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Install the memo over a counting stand-in for DSPy's function; restore everything after."""
    import dspy.clients.capabilities as capabilities
    import dspy.clients.costs as costs
    import dspy.clients.model_metadata as metadata

    assert _dspy_metadata.install()
    real = _dspy_metadata._original
    assert real is not None
    calls: list[tuple[Any, ...]] = []

    def counting(provider: Any, model: Any, *, namespaces: Any = None) -> dict[str, Any]:
        calls.append((provider, model, namespaces))
        return real(provider, model, namespaces=namespaces)

    monkeypatch.setattr(_dspy_metadata, "_original", counting)
    monkeypatch.setattr(_dspy_metadata, "_memo", {})
    for module in (metadata, costs, capabilities):
        assert module.model_info is _dspy_metadata._model_info  # every name DSPy calls it by
    return calls


def test_outside_the_context_dspy_runs_unchanged(counted: list[tuple[Any, ...]]) -> None:
    from dspy.clients.model_metadata import model_info

    for _ in range(3):
        model_info("openai", "fake-model-zz")
    assert len(counted) == 3


@pytest.mark.parametrize("model", ["gpt-4o", "fake-model-zz"])
def test_inside_the_context_each_model_is_looked_up_once(counted: list[tuple[Any, ...]], model: str) -> None:
    import dspy.clients.costs as costs

    expected = _dspy_metadata._original("openai", model)  # type: ignore[misc]
    counted.clear()
    with _dspy_metadata.memoized_metadata():
        first = costs.model_info("openai", model)
        first["mutated"] = True  # a caller's copy is its own
        second = costs.model_info("openai", model)
        third = costs.model_info("openai", model, namespaces=("openai",))
    assert [c[1] for c in counted] == [model, model]  # one per (provider, model, namespaces), not per call
    assert first is not second and "mutated" not in second
    assert second == expected
    assert third == _dspy_metadata._original("openai", model, namespaces=("openai",))  # type: ignore[misc]
    if model == "gpt-4o":
        assert second.get("input_cost_per_token")  # a known model keeps its prices


def test_lm_calls_enter_the_context(fake_server: Any, counted: list[tuple[Any, ...]],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import dspy

    from helm_optimizer.config import LMConfig
    from helm_optimizer.lm import build_lm

    active: list[bool] = []
    inner = _dspy_metadata._original
    assert inner is not None

    def probe(provider: Any, model: Any, *, namespaces: Any = None) -> dict[str, Any]:
        active.append(_dspy_metadata._active.get())
        return inner(provider, model, namespaces=namespaces)

    monkeypatch.setattr(_dspy_metadata, "_original", probe)
    lm = build_lm(LMConfig(model="openai/fake-memo-probe", api_base=fake_server.api_base), cache=False)
    with dspy.context(lm=lm):
        for question in ("2+2?", "3+3?", "4+4?"):
            dspy.Predict("question -> output")(question=question)
    assert active and all(active)  # looked up inside our LM's calls, through the memo
    assert len(active) <= 3  # one lookup per distinct (provider, model, namespaces), not several per call
    assert _dspy_metadata._active.get() is False
