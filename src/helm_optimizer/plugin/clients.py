"""HELM clients for models HELM has no deployment for: OpenAI-compatible endpoints and embedded models."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from helm.clients.client import Client
from helm.clients.openai_client import OpenAIClient
from helm.common.cache import CacheConfig
from helm.common.request import ErrorFlags, GeneratedOutput, Request, RequestResult, Token
from helm.common.tokenization_request import TokenizationRequest
from helm.tokenizers.tokenizer import Tokenizer

from helm_optimizer.serving.gated_http import GatedTransport
from helm_optimizer.serving.limiter import gate_for

__all__ = ["EmbeddedOpenAIClient", "OpenAICompatibleClient", "PromptOnlyClient"]


class OpenAICompatibleClient(OpenAIClient):  # type: ignore[misc]
    """HELM's chat ``OpenAIClient`` pointed at ``base_url``, its key read from ``api_key_env``.

    The key is read from the environment when the client is created and never written to a
    config file (HELM's ``credentials.conf`` route would need it on disk).

    HELM's chat client leaves a completion's ``tokens`` empty when the server sends no logprobs,
    so HELM would report 0 output tokens for every answer. Here such a completion gets the pieces
    of the deployment's tokenizer (the one HELM counts prompt tokens with; HELM injects it), with
    log probability 0 as HELM's chat client gives.
    """

    def __init__(self, cache_config: CacheConfig, base_url: str | None = None, api_key_env: str | None = None,
                 openai_model_name: str | None = None, timeout: float = 120.0, max_retries: int = 5,
                 max_completions_per_request: int | None = None, tokenizer: Tokenizer | None = None,
                 tokenizer_name: str | None = None, model_name: str | None = None, **kwargs: Any) -> None:
        kwargs.pop("api_key", None)
        kwargs.pop("org_id", None)
        api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        # A sweep's endpoint limits (HELM injects model_name, the sweep's name of the model): every HTTP
        # attempt, the SDK's retries included, waits for a slot of that endpoint.
        self.endpoint_gate = gate_for(model_name)
        if self.endpoint_gate is not None and "http_client" not in kwargs:
            from openai import DefaultHttpxClient

            kwargs["http_client"] = DefaultHttpxClient(transport=GatedTransport(self.endpoint_gate))
        super().__init__(cache_config=cache_config, api_key=api_key or "not-needed", base_url=base_url,
                         openai_model_name=openai_model_name, timeout=timeout, max_retries=max_retries, **kwargs)
        self.max_completions_per_request = max_completions_per_request
        self.tokenizer = tokenizer
        self.tokenizer_name = tokenizer_name

    def make_request(self, request: Request) -> RequestResult:
        """Split a request for more completions (``n``) than the server allows into several requests.

        HELM's default ``AdapterSpec`` asks for 5 completions; llama.cpp's server refuses ``n`` above
        its number of slots. Each part gets its own ``random`` so HELM's cache keeps them apart.
        """
        limit = self.max_completions_per_request
        if limit is None or request.num_completions <= limit:
            return self._one_request(request)
        parts: list[RequestResult] = []
        for start in range(0, request.num_completions, limit):
            count = min(limit, request.num_completions - start)
            tag = request.random if start == 0 else f"{request.random or ''}#completions-from-{start}"
            part = self._one_request(dataclasses.replace(request, num_completions=count, random=tag))
            if not part.success:
                return part
            parts.append(part)
        times = [p.request_time for p in parts if p.request_time is not None]
        return dataclasses.replace(
            parts[0], cached=all(p.cached for p in parts), request_time=sum(times) if times else None,
            completions=[c for p in parts for c in p.completions],
        )


    def _one_request(self, request: Request) -> RequestResult:
        """One HELM request; a failure is final for HELM because the OpenAI SDK has already retried it.

        HELM retries a failed result 4 more times with 10-80 s waits unless told otherwise; the SDK
        behind this client already retried (``max_retries``, honouring ``Retry-After``). A reply
        that is not valid UTF-8 or JSON is one failed instance, not a failed run.
        """
        if self.endpoint_gate is not None:
            self.endpoint_gate.check()  # the sweep is stopping (budget spent): fail the HELM run, not one instance
        try:
            result: RequestResult = super().make_request(request)
        except (UnicodeDecodeError, ValueError) as exc:
            return RequestResult(success=False, cached=False, completions=[], embedding=[],
                                 error=f"Unreadable reply from {self.client.base_url}: {type(exc).__name__}: {exc}",
                                 error_flags=ErrorFlags(is_retriable=False, is_fatal=False))
        if not result.success and self.endpoint_gate is not None:
            self.endpoint_gate.check()
        if not result.success and result.error_flags is None:
            result = dataclasses.replace(result, error_flags=ErrorFlags(is_retriable=False, is_fatal=False))
        if result.success and not request.echo_prompt:
            result = dataclasses.replace(result, completions=[self._with_tokens(c) for c in result.completions])
        return result

    def _with_tokens(self, completion: GeneratedOutput) -> GeneratedOutput:
        if completion.tokens or not completion.text or self.tokenizer is None or not self.tokenizer_name:
            return completion
        pieces = self.tokenizer.tokenize(TokenizationRequest(text=completion.text, tokenizer=self.tokenizer_name))
        return dataclasses.replace(completion, tokens=[Token(text=str(p), logprob=0.0) for p in pieces.raw_tokens])


class EmbeddedOpenAIClient(OpenAICompatibleClient):
    """Starts (or reuses) the embedded model server for ``embedded_model`` and talks to it."""

    def __init__(self, cache_config: CacheConfig, embedded_model: str = "local/smollm2", parallel: int = 4,
                 model_name: str | None = None, **kwargs: Any) -> None:
        from helm_optimizer.serving.models import dspy_model_name
        from helm_optimizer.serving.sharing import ensure_server

        kwargs.pop("base_url", None)
        kwargs.pop("api_key_env", None)
        server = ensure_server(embedded_model, parallel=parallel)
        alias = dspy_model_name(embedded_model).split("/", 1)[1]
        kwargs.setdefault("max_completions_per_request", server.parallel)  # llama.cpp: n <= slots
        kwargs.setdefault("timeout", 900.0)  # CPU slots sharing the cores can be slow; see helm_optimizer.lm
        super().__init__(cache_config=cache_config, base_url=server.api_base, api_key_env=None,
                         openai_model_name=alias, model_name=model_name or embedded_model, **kwargs)


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
