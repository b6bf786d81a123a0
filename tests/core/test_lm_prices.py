"""Prices of a model: configured, local (free) or unknown; evaluation cost is priced with them."""

from __future__ import annotations

import pytest

from helm_optimizer.config import LMConfig
from helm_optimizer.lm import Prices, prices_for


def test_configured_prices_price_usage() -> None:
    prices = prices_for(LMConfig(model="openai/my-model", api_base="https://example.invalid/v1",
                                 cost_per_million_input_tokens=2.0, cost_per_million_output_tokens=10.0))
    assert prices.cost(1_000, 100) == pytest.approx(0.003)
    assert prices.cost(0, 0) == 0.0


def test_local_servers_are_free() -> None:
    assert prices_for(LMConfig(model="openai/x", api_base="http://127.0.0.1:8000/v1")).cost(500, 50) == 0.0
    assert prices_for(LMConfig(model="local/smollm2")).cost(500, 50) == 0.0


def test_unknown_price_is_none_not_zero() -> None:
    assert Prices(None, None).cost(10, 1) is None
    assert Prices(1e-6, None).cost(10, 1) is None
    assert Prices(1e-6, None).cost(10, 0) == pytest.approx(1e-5)
