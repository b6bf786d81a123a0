"""Our HELM clients built the way HELM builds them: ``AutoClient`` injects what their constructors declare.

HELM fills a client's missing constructor arguments by *parameter name* (``tokenizer``,
``tokenizer_name``, ``cache_config``...); a client that hides them behind ``**kwargs`` gets none,
and HELM then counts 0 completion tokens for every answer. The embedded model's server is stood
in for by the fake server, advertised the way ``helm-optimizer serve`` advertises a real one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from helm_optimizer._io import write_json_atomic
from helm_optimizer.serving.fake import FakeOpenAIServer, FakeServerConfig

PROMPT = "What is 2 + 3 ?"


@pytest.fixture
def advertised_embedded_server() -> Iterator[FakeOpenAIServer]:
    """The fake server answering as ``smollm2``, advertised as this process's embedded ``local/smollm2``."""
    from helm_optimizer.serving.embedded import state_path
    from helm_optimizer.serving.models import get_embedded_model
    from helm_optimizer.serving.sharing import stop_servers

    stop_servers()  # a real server an earlier test started in this process would win over the advertised one
    with FakeOpenAIServer(FakeServerConfig(model="smollm2")) as server:
        write_json_atomic(state_path(get_embedded_model("local/smollm2")),
                          {"model": "local/smollm2", "pid": os.getpid(), "port": server.port, "parallel": 2})
        yield server
    stop_servers()


def _answer(deployment: str, tmp_path: Path) -> object:
    from helm.clients.auto_client import AutoClient
    from helm.common.cache_backend_config import BlackHoleCacheBackendConfig
    from helm.common.request import Request

    client = AutoClient(credentials={}, file_storage_path=str(tmp_path),
                        cache_backend_config=BlackHoleCacheBackendConfig())
    result = client.make_request(Request(model=deployment, model_deployment=deployment, prompt=PROMPT,
                                         max_tokens=16, num_completions=1, temperature=0.0))
    assert result.success, result.error
    return result


def test_embedded_client_gets_helms_tokenizer_and_counts_completion_tokens(
    advertised_embedded_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    from helm_optimizer.helm.deployments import register_core

    register_core()
    before = advertised_embedded_server.completions
    result = _answer("local/smollm2", tmp_path)
    assert advertised_embedded_server.completions == before + 1  # it reached the stand-in, not a real model
    (completion,) = result.completions  # type: ignore[attr-defined]
    assert completion.text.strip() == "5"
    assert len(completion.tokens) >= 1  # what HELM's num_output_tokens counts
    assert "".join(t.text for t in completion.tokens).replace(" ", "") == completion.text.replace(" ", "")


def test_openai_compatible_client_counts_completion_tokens(fake_server: FakeOpenAIServer, tmp_path: Path) -> None:
    from helm_optimizer.helm.deployments import baseline_deployment, register

    register(baseline_deployment({"model": "openai/hopt-client-test", "api_base": fake_server.api_base}))
    (completion,) = _answer("openai/hopt-client-test", tmp_path).completions  # type: ignore[attr-defined]
    assert completion.text.strip() == "5"
    assert len(completion.tokens) >= 1
