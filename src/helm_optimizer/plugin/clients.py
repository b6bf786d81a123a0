"""HELM clients for models HELM has no deployment for: OpenAI-compatible endpoints and embedded models."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from types import SimpleNamespace
from typing import Any

import openai
import tenacity
from helm.clients.client import Client
from helm.clients.openai_client import OpenAIClient
from helm.common.cache import CacheConfig
from helm.common.request import ErrorFlags, GeneratedOutput, Request, RequestResult, Token
from helm.common.tokenization_request import TokenizationRequest
from helm.tokenizers.tokenizer import Tokenizer

from helm_optimizer.config import redact_url
from helm_optimizer.errors import ModelError
from helm_optimizer.helm.refusals import final_for_helm
from helm_optimizer.ledger import UsageLedger
from helm_optimizer.replies import UnusableReplyError, completion_problem, liveness_for
from helm_optimizer.serving.gated_http import GatedTransport
from helm_optimizer.serving.limiter import gate_for

__all__ = ["EmbeddedOpenAIClient", "OpenAICompatibleClient", "PromptOnlyClient"]

logger = logging.getLogger(__name__)


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
                 tokenizer_name: str | None = None, usage_ledger: str | None = None, model_name: str | None = None,
                 **kwargs: Any) -> None:
        kwargs.pop("api_key", None)
        kwargs.pop("org_id", None)
        api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        self.ledger = UsageLedger(usage_ledger) if usage_ledger else None
        # A sweep's endpoint limits (HELM injects model_name, the sweep's name of the model): every HTTP
        # attempt, the SDK's retries included, waits for a slot of that endpoint.
        self.endpoint_gate = gate_for(model_name)
        if (self.ledger is not None or self.endpoint_gate is not None) and "http_client" not in kwargs:
            kwargs["http_client"] = _http_client(self.ledger, self.endpoint_gate)
        super().__init__(cache_config=cache_config, api_key=api_key or "not-needed", base_url=base_url,
                         openai_model_name=openai_model_name, timeout=timeout, max_retries=max_retries, **kwargs)
        # Every reply is checked before HELM caches it; see _CheckedOpenAI.
        self.liveness = liveness_for(base_url, openai_model_name or "", timeout=timeout)
        self.checked = _CheckedOpenAI(self.client, self.liveness.endpoint)
        self.client = self.checked  # type: ignore[assignment]  # HELM calls self.client.chat.completions.create
        self.reply_retries = max_retries
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
            with final_for_helm():  # the sweep is stopping (budget spent): fail the HELM run, not one instance
                self.endpoint_gate.check()
        try:
            result: RequestResult = self._answered(request)
        except (UnusableReplyError, ModelError, _CallFailed) as exc:  # after the retries / stopped answering
            return RequestResult(success=False, cached=False, completions=[], embedding=[], error=str(exc),
                                 error_flags=ErrorFlags(is_retriable=False, is_fatal=False))
        except (UnicodeDecodeError, ValueError) as exc:
            where = redact_url(str(self.client.base_url))
            return RequestResult(success=False, cached=False, completions=[], embedding=[],
                                 error=f"Unreadable reply from {where}: {type(exc).__name__}: {exc}",
                                 error_flags=ErrorFlags(is_retriable=False, is_fatal=False))
        if not result.success and self.endpoint_gate is not None:
            with final_for_helm():
                self.endpoint_gate.check()
        if not result.success and result.error_flags is None:
            result = dataclasses.replace(result, error_flags=ErrorFlags(is_retriable=False, is_fatal=False))
        if result.success and not request.echo_prompt:
            result = dataclasses.replace(result, completions=[self._with_tokens(c) for c in result.completions])
        return result

    def _answered(self, request: Request) -> RequestResult:
        """HELM's request, tried again while the server answers HTTP 200 without a usable completion.

        The call (all its attempts) also tells the endpoint's liveness how it ended; once the
        endpoint stopped answering, the request fails at once with that verdict.
        """
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.reply_retries + 1),
            wait=tenacity.wait_exponential(multiplier=0.5, max=8),
            retry=tenacity.retry_if_exception_type(UnusableReplyError), reraise=True, before_sleep=self._note_retry,
        )
        ticket = self.liveness.begin()
        error: BaseException | None = None
        try:
            result: RequestResult = retrying(super().make_request, request)
            error = self.checked.last_error()  # a transport failure HELM turned into a failed result
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.liveness.end(ticket, error)

    def _note_retry(self, state: tenacity.RetryCallState) -> None:
        """One more attempt after a reply without usable content: counted in the run's ledger and logged."""
        if self.ledger is not None:
            self.ledger.add(retries=1)
        exc = state.outcome.exception() if state.outcome is not None else None
        logger.info("LM request failed (%s); retry %d", exc, state.attempt_number)

    def _with_tokens(self, completion: GeneratedOutput) -> GeneratedOutput:
        if completion.tokens or not completion.text or self.tokenizer is None or not self.tokenizer_name:
            return completion
        pieces = self.tokenizer.tokenize(TokenizationRequest(text=completion.text, tokenizer=self.tokenizer_name))
        return dataclasses.replace(completion, tokens=[Token(text=str(p), logprob=0.0) for p in pieces.raw_tokens])


class _CallFailed(Exception):
    """A completion call that failed after the SDK's own retries (timeout, refused connection, 5xx, 401...)."""


class _CheckedCompletions:
    """``client.chat.completions`` / ``client.completions`` whose replies must carry a completion.

    HELM caches what ``create`` returns; an HTML page or ``choices: []`` raises
    :class:`UnusableReplyError` here instead, so it is retried and never cached. The exception of
    this thread's last ``create`` (None after a usable reply) is kept for the endpoint's liveness.
    """

    def __init__(self, inner: Any, endpoint: str, outcome: threading.local) -> None:
        self._inner = inner
        self._endpoint = endpoint
        self._outcome = outcome

    def create(self, **kwargs: Any) -> Any:
        self._outcome.error = None
        try:
            reply = self._inner.create(**kwargs)
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            self._outcome.error = exc
            if isinstance(exc, openai.BadRequestError):
                raise  # HELM turns some of these (safety filters) into answers
            # HELM would log the SDK's traceback for each; a failed request with one line is enough.
            raise _CallFailed(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}") from exc
        except BaseException as exc:
            self._outcome.error = exc
            raise
        if isinstance(reply, str | bytes):
            text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
            problem: str | None = f"the reply is not JSON (it starts {text[:80]!r})"
        else:
            problem = completion_problem(reply.model_dump(mode="json") if hasattr(reply, "model_dump") else reply)
        if problem:
            error = UnusableReplyError(f"HTTP 200 without a usable answer from {self._endpoint}: {problem}")
            self._outcome.error = error
            raise error
        return reply

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _CheckedOpenAI:
    """An ``openai.OpenAI`` client whose completion replies are checked (everything else passes through)."""

    def __init__(self, client: Any, endpoint: str) -> None:
        self._client = client
        self._outcome = threading.local()
        self.chat = SimpleNamespace(completions=_CheckedCompletions(client.chat.completions, endpoint, self._outcome))
        self.completions = _CheckedCompletions(client.completions, endpoint, self._outcome)

    def last_error(self) -> BaseException | None:
        """The exception of this thread's last completion call, None after a usable reply."""
        error: BaseException | None = getattr(self._outcome, "error", None)
        return error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _http_client(ledger: UsageLedger | None, gate: Any) -> Any:
    """The OpenAI SDK's HTTP client, counting retried attempts in ``ledger`` and waiting at ``gate``.

    The SDK marks every attempt with ``x-stainless-retry-count`` (0 for the first); an attempt
    with a count above 0 is one retry. With a gate (a sweep's endpoint limits) every attempt
    waits for a slot of its endpoint.
    """
    from openai import DefaultHttpxClient

    def on_request(request: Any) -> None:
        count = request.headers.get("x-stainless-retry-count", "0")
        if ledger is not None and count.isdigit() and int(count) > 0:
            ledger.add(retries=1)

    options: dict[str, Any] = {"event_hooks": {"request": [on_request]}}
    if gate is not None:
        options["transport"] = GatedTransport(gate)
    return DefaultHttpxClient(**options)


class EmbeddedOpenAIClient(OpenAICompatibleClient):
    """Starts (or reuses) the embedded model server for ``embedded_model`` and talks to it.

    ``tokenizer`` and ``tokenizer_name`` are declared (not left to ``**kwargs``) because HELM injects
    a client's missing arguments by the names its constructor declares; without them HELM would
    count 0 completion tokens for every embedded-model answer.
    """

    def __init__(self, cache_config: CacheConfig, embedded_model: str = "local/smollm2", parallel: int | None = None,
                 tokenizer: Tokenizer | None = None, tokenizer_name: str | None = None,
                 max_completions_per_request: int | None = None, timeout: float = 900.0, max_retries: int = 5,
                 model_name: str | None = None, **kwargs: Any) -> None:
        from helm_optimizer.serving.models import dspy_model_name
        from helm_optimizer.serving.sharing import ensure_server

        kwargs.pop("base_url", None)
        kwargs.pop("api_key_env", None)
        server = ensure_server(embedded_model, parallel=parallel)
        alias = dspy_model_name(embedded_model).split("/", 1)[1]
        # llama.cpp refuses n above its slots; CPU slots sharing the cores can be slow (see helm_optimizer.lm)
        super().__init__(cache_config=cache_config, base_url=server.api_base, api_key_env=None,
                         openai_model_name=alias, timeout=timeout, max_retries=max_retries,
                         max_completions_per_request=max_completions_per_request or server.parallel,
                         tokenizer=tokenizer, tokenizer_name=tokenizer_name, model_name=model_name or embedded_model,
                         **kwargs)


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
