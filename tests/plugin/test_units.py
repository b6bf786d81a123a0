"""Fast checks of the plugin pieces the subprocess tests rely on."""

from __future__ import annotations

from pathlib import Path

from helm_optimizer.plugin.agent_client import scenario_candidates
from helm_optimizer.serving.fake import FakeOpenAIServer


def test_scenario_candidates_for_helm_run_names() -> None:
    assert scenario_candidates("local_arith:model=openai_x-dspy-fs-miprov2") == (["local_arith"], None)
    # hopt_* run specs find agents optimized for the HELM name or for the hopt_ name itself.
    assert scenario_candidates("hopt_medbullets:data_dir=/d,fold=1,model=m") == (
        ["medbullets", "hopt_medbullets"], 1)
    assert scenario_candidates("hopt_head_qa:language=en,model=m") == (
        ["head_qa,language=en", "hopt_head_qa,language=en", "head_qa", "hopt_head_qa"], None)
    assert scenario_candidates(None) == ([], None)



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
