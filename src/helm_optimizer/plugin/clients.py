"""HELM clients for models HELM has no deployment for: OpenAI-compatible endpoints and embedded models."""

from __future__ import annotations

import os
from typing import Any

from helm.clients.client import Client
from helm.clients.openai_client import OpenAIClient
from helm.common.cache import CacheConfig
from helm.common.request import ErrorFlags, Request, RequestResult

__all__ = ["EmbeddedOpenAIClient", "OpenAICompatibleClient", "PromptOnlyClient"]


class OpenAICompatibleClient(OpenAIClient):  # type: ignore[misc]
    """HELM's chat ``OpenAIClient`` pointed at ``base_url``, its key read from ``api_key_env``.

    The key is read from the environment when the client is created and never written to a
    config file (HELM's ``credentials.conf`` route would need it on disk).
    """

    def __init__(self, cache_config: CacheConfig, base_url: str | None = None, api_key_env: str | None = None,
                 openai_model_name: str | None = None, timeout: float = 120.0, max_retries: int = 5,
                 **kwargs: Any) -> None:
        kwargs.pop("api_key", None)
        kwargs.pop("org_id", None)
        api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        super().__init__(cache_config=cache_config, api_key=api_key or "not-needed", base_url=base_url,
                         openai_model_name=openai_model_name, timeout=timeout, max_retries=max_retries, **kwargs)


class EmbeddedOpenAIClient(OpenAICompatibleClient):
    """Starts (or reuses) the embedded model server for ``embedded_model`` and talks to it."""

    def __init__(self, cache_config: CacheConfig, embedded_model: str = "local/smollm2", parallel: int = 4,
                 **kwargs: Any) -> None:
        from helm_optimizer.serving.embedded import dspy_model_name, ensure_server

        kwargs.pop("base_url", None)
        kwargs.pop("api_key_env", None)
        server = ensure_server(embedded_model, parallel=parallel)
        alias = dspy_model_name(embedded_model).split("/", 1)[1]
        super().__init__(cache_config=cache_config, base_url=server.api_base, api_key_env=None,
                         openai_model_name=alias, **kwargs)


class PromptOnlyClient(Client):  # type: ignore[misc]
    """The client of the deployment used only to build prompts; it refuses to answer."""

    def __init__(self, **_: Any) -> None:
        pass

    def make_request(self, request: Request) -> RequestResult:
        return RequestResult(
            success=False, cached=False, completions=[], embedding=[],
            error="helm-optimizer/prompt-builder only builds prompts; evaluate with a real model deployment.",
            error_flags=ErrorFlags(is_retriable=False, is_fatal=True),
        )
