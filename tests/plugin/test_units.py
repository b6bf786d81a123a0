"""Fast checks of the plugin pieces the subprocess tests rely on."""

from __future__ import annotations

from pathlib import Path

from helm_optimizer.serving.fake import FakeOpenAIServer


def test_compatible_client_splits_requests_for_many_completions(server: FakeOpenAIServer, tmp_path: Path) -> None:
    """llama.cpp refuses ``n`` above its slots; HELM's default AdapterSpec asks for 5 completions."""
    from helm.common.cache import SqliteCacheConfig
    from helm.common.request import Request

    from helm_optimizer.plugin.clients import OpenAICompatibleClient

    client = OpenAICompatibleClient(SqliteCacheConfig(str(tmp_path / "cache.sqlite")), base_url=server.api_base,
                                    openai_model_name="m", max_completions_per_request=2)
    request = Request(model="openai/m", model_deployment="openai/m", prompt="Q: 2+3=?", num_completions=5,
                      max_tokens=5, temperature=0.0)
    before = server.requests
    result = client.make_request(request)
    assert result.success and not result.cached
    assert server.requests - before == 3  # n = 2 + 2 + 1, each part cached under its own key
    assert len(result.completions) == 3  # the fake server answers one choice per request
    again = client.make_request(request)
    assert again.cached and server.requests - before == 3
    assert [c.text for c in again.completions] == [c.text for c in result.completions]
