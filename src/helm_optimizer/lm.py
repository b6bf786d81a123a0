"""Building DSPy LMs from :class:`LMConfig`: keys, local models, adapters, usage and budgets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import tenacity

from helm_optimizer._env import prepare_offline_environment
from helm_optimizer._io import make_encodable
from helm_optimizer._lm_calls import CallSlots, retry_policy
from helm_optimizer.config import LMConfig
from helm_optimizer.errors import BudgetExceededError, ModelError
from helm_optimizer.replies import answer_checked, answer_checked_async, in_flight, is_unusable_reply, record_reply
from helm_optimizer.serving.limiter import Gate, gate_for

if TYPE_CHECKING:
    import dspy

__all__ = [
    "RETRY_LOG_MARKER",
    "Prices",
    "UsageMeter",
    "adapter_for",
    "build_lm",
    "check_reachable",
    "dspy_decoding",
    "is_local_api_base",
    "prices_for",
    "resolve_api_key",
]

logger = logging.getLogger(__name__)

# Environment variables litellm reads when no key is passed, by provider prefix.
_PROVIDER_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "groq": "GROQ_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "cohere": "COHERE_API_KEY",
    "xai": "XAI_API_KEY",
    "fireworks_ai": "FIREWORKS_API_KEY",
}
# Providers authenticated some other way (cloud credentials, local daemons).
_KEYLESS_PROVIDERS = {"ollama", "ollama_chat", "vertex_ai", "bedrock", "sagemaker", "hosted_vllm", "lm_studio"}
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
_PLACEHOLDER_KEY = "not-needed"  # OpenAI-compatible servers without auth still want a non-empty key
# Attribute set on the log record of every retried LM attempt (see ``TrackedLM``, whose meter counts the
# retries itself): lets a log handler tell those records apart (evaluate.py counts HELM runs' retries so).
RETRY_LOG_MARKER = "hopt_lm_retry"


def is_local_api_base(api_base: str | None) -> bool:
    if not api_base:
        return False
    return (urlparse(api_base).hostname or "") in _LOCAL_HOSTS


def _is_embedded(model: str) -> bool:
    return model.startswith("local/")


def resolve_api_key(cfg: LMConfig) -> str | None:
    """The key for ``cfg`` from memory or the environment, or a clear :class:`ModelError`.

    The key is returned to the caller and never logged or written anywhere.
    """
    if cfg.api_key is not None:
        return cfg.api_key.get_secret_value()
    if _is_embedded(cfg.model):
        return _PLACEHOLDER_KEY
    if cfg.api_key_env:
        value = os.environ.get(cfg.api_key_env, "")
        if not value:
            raise ModelError(
                f"Environment variable {cfg.api_key_env} (the API key of model {cfg.model}) is not set; "
                f"export {cfg.api_key_env}=... or pass --api-key-env with the variable that holds the key."
            )
        return value
    provider = cfg.model.split("/", 1)[0] if "/" in cfg.model else "openai"
    env_name = _PROVIDER_KEY_ENV.get(provider)
    if env_name and os.environ.get(env_name):
        return os.environ[env_name]
    if cfg.api_base:
        # A self-hosted OpenAI-compatible server (vLLM, llama.cpp, TGI) usually needs no key.
        return _PLACEHOLDER_KEY
    if provider in _KEYLESS_PROVIDERS or env_name is None:
        return None
    raise ModelError(
        f"No API key for model {cfg.model}: set {env_name}, or name the variable that holds the key with "
        "--api-key-env (api_key_env in a config file)."
    )


def check_reachable(api_base: str, *, attempts: int = 4, first_delay: float = 0.5) -> None:
    """Fail fast, with a clear message, when nothing answers at ``api_base`` (retrying with backoff)."""
    url = api_base.rstrip("/") + "/models"

    def probe() -> None:
        try:
            with urllib.request.urlopen(url, timeout=10):
                return
        except urllib.error.HTTPError:
            return  # the server answered (maybe 401/404): it is reachable

    def waiting(state: tenacity.RetryCallState) -> None:
        reason = _reason(state.outcome.exception() if state.outcome is not None else None)
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        logger.info("Model server %s not reachable (%s); retrying in %.1fs", api_base, reason, delay)

    try:
        tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_exponential(multiplier=first_delay, exp_base=2),
            retry=tenacity.retry_if_exception_type((urllib.error.URLError, OSError, TimeoutError)),
            before_sleep=waiting, reraise=True,
        )(probe)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise ModelError(
            f"Cannot reach the model server at {api_base}: {_reason(exc)} (after {attempts} attempts with backoff); "
            "start the server or fix --api-base."
        ) from None


def _reason(exc: BaseException | None) -> str:
    return str(getattr(exc, "reason", exc))


@dataclass
class Prices:
    """USD per prompt and per completion token; None where no price is known."""

    input_per_token: float | None
    output_per_token: float | None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """The price of that usage, or None when a price it needs is unknown."""
        if (prompt_tokens and self.input_per_token is None) or (completion_tokens and self.output_per_token is None):
            return None
        return round(prompt_tokens * (self.input_per_token or 0.0) + completion_tokens * (self.output_per_token or 0.0),
                     6)


def prices_for(cfg: LMConfig) -> Prices:
    """A model's prices: the config's ``cost_per_million_*``, 0 for local servers, else litellm's map."""
    if cfg.cost_per_million_input_tokens is not None or cfg.cost_per_million_output_tokens is not None:
        return Prices(
            (cfg.cost_per_million_input_tokens or 0.0) / 1e6, (cfg.cost_per_million_output_tokens or 0.0) / 1e6
        )
    if _is_embedded(cfg.model) or is_local_api_base(cfg.api_base):
        return Prices(0.0, 0.0)
    try:
        import litellm

        info = litellm.get_model_info(cfg.model)
        return Prices(info.get("input_cost_per_token"), info.get("output_cost_per_token"))
    except Exception:
        return Prices(None, None)


class UsageMeter:
    """Counts provider calls, tokens and cost of a run, and enforces ``max_calls`` / ``max_cost``.

    It plugs into DSPy as ``usage_tracker`` (DSPy reports every call that was not a cache hit) and
    into :class:`TrackedLM`, which checks the budget before each call so that a run over budget
    makes no further calls.
    """

    def __init__(self, *, max_calls: int | None = None, max_cost: float | None = None,
                 concurrency: int | None = None) -> None:
        self.max_calls = max_calls
        self.max_cost = max_cost
        # Bounds LM calls in flight across every thread and event loop of a run.
        self.slots = CallSlots(concurrency) if concurrency else None
        self._lock = threading.Lock()
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost = 0.0
        self.cost_known = True
        self.retries = 0  # attempts that failed transiently (429, 5xx, timeout) and were retried (TrackedLM)
        self.failed_calls = 0  # calls that still failed after every retry
        self.last_error: str | None = None
        self.exceeded: str | None = None
        self._prices: dict[str, Prices] = {}
        self.answers = 0  # replies with usable content, cache hits included
        self.stopped: str | None = None  # why the run's endpoint is taken to have stopped answering
        self.reserved = 0  # calls in flight holding a share of max_calls
        self._budget = threading.Condition(self._lock)

    def __deepcopy__(self, memo: dict[int, Any]) -> UsageMeter:
        # DSPy deep-copies the usage tracker into every worker thread (and silently drops a task whose
        # copy fails); one meter must see every call of the run, so copies are the meter itself.
        return self

    def set_prices(self, model: str, cfg: LMConfig) -> None:
        self._prices[model] = prices_for(cfg)

    # DSPy's usage_tracker protocol -------------------------------------------------------
    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        prompt = int(usage_entry.get("prompt_tokens") or 0)
        completion = int(usage_entry.get("completion_tokens") or 0)
        prices = self._prices.get(lm, Prices(None, None))
        with self._lock:
            self.calls += 1
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            if prices.input_per_token is None or prices.output_per_token is None:
                self.cost_known = False
            else:
                self.cost += prompt * prices.input_per_token + completion * prices.output_per_token
            if self.max_calls is not None and self.calls >= self.max_calls and self.exceeded is None:
                self.exceeded = f"--max-calls {self.max_calls} reached ({self.calls} LM calls)"
            if self.max_cost is not None and self.cost >= self.max_cost and self.exceeded is None:
                self.exceeded = f"--max-cost {self.max_cost} reached (${self.cost:.4f})"

    # Budget reservations: a call takes its share of max_calls before it is sent ---------------
    @contextlib.contextmanager
    def reserve(self) -> Iterator[None]:
        """Hold one call of the ``max_calls`` budget while a call is in flight.

        A call that would go over the budget is refused before it is sent; while calls in flight
        hold the rest of the budget, the next call waits for them (one answered from the cache
        gives its share back). So the provider never sees more than ``max_calls`` calls.
        """
        with self._budget:
            while True:
                self.check()
                if self.max_calls is None or self.calls + self.reserved < self.max_calls:
                    self.reserved += 1
                    break
                if self.reserved == 0:
                    self.exceeded = f"--max-calls {self.max_calls} reached ({self.calls} LM calls)"
                    self.check()
                self._budget.wait(timeout=1.0)
        try:
            yield
        finally:
            with self._budget:
                self.reserved -= 1
                self._budget.notify_all()

    def add_answer(self) -> None:
        with self._lock:
            self.answers += 1

    def add_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def add_failure(self, exc: BaseException | None = None) -> None:
        with self._lock:
            self.failed_calls += 1
            if exc is not None:
                text = str(exc).strip().splitlines()
                self.last_error = f"{type(exc).__name__}: {text[0][:300] if text else ''}"

    def get_total_tokens(self) -> dict[str, dict[str, Any]]:
        return {"all": {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}}

    def check(self) -> None:
        if self.stopped is not None:
            raise ModelError(self.stopped)
        if self.exceeded is not None:
            raise BudgetExceededError(f"Budget exhausted: {self.exceeded}.")

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "lm_calls": self.calls,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cost": round(self.cost, 6) if self.cost_known else None,
                "retries": self.retries,
                "failed_calls": self.failed_calls,
            }


def _is_retryable(exc: BaseException) -> bool:
    """DSPy's own classification of transient LM errors (rate limit, timeout, server, transport).

    A reply without usable content (HTTP 200 with an HTML page, no choices, no message content)
    is transient too: a gateway's hiccup, not the model's answer.
    """
    if is_unusable_reply(exc):
        return True
    try:
        from dspy.utils.exceptions import is_retryable_lm_error
    except ImportError:  # pragma: no cover - older DSPy
        return type(exc).__name__ in {"RateLimitError", "Timeout", "APITimeoutError", "InternalServerError",
                                      "ServiceUnavailableError", "APIConnectionError"}
    return isinstance(exc, Exception) and bool(is_retryable_lm_error(exc))


def _valid_text(value: Any) -> Any:
    """Model output with lone UTF-16 surrogates (valid JSON, invalid Unicode) replaced by U+FFFD."""
    clean, fixed = make_encodable(value)
    if fixed:
        logger.info("Replaced invalid Unicode (a lone surrogate) in %d model answer text(s) with U+FFFD.", fixed)
    return clean


def _tracked_lm_class() -> type[dspy.LM]:
    import dspy

    from helm_optimizer._dspy_metadata import memoized_metadata

    class TrackedLM(dspy.LM):  # type: ignore[misc]
        """A ``dspy.LM`` that refuses to start a call once its meter's budget is spent, and retries visibly.

        Transient failures (DSPy's classification: rate limits, timeouts, server and transport
        errors) are retried here rather than inside DSPy, by tenacity with one policy for ``__call__``
        and ``acall`` (:func:`helm_optimizer._lm_calls.retry_policy`); every retried attempt is counted
        in the meter (``retries``) and logged, every call that still fails too (``failed_calls``). Both
        kinds of call hold one of the meter's slots while they run, so ``--num-threads`` bounds them
        together. ``structured_output`` makes DSPy's JSON adapter send the output schema.
        """

        meter: UsageMeter | None = None
        max_retries: int = 0
        structured_output: bool = False
        endpoint: str | None = None  # the model's name in the config: whose limits gate its calls

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            self._check_budget()
            slot = self.meter.slots.held() if self.meter is not None and self.meter.slots else contextlib.nullcontext()
            # each attempt waits for its endpoint's limiter; a reply without usable content is a failure
            attempt = answer_checked(self, _gated(self, super().__call__))
            with memoized_metadata(), slot, in_flight(self):
                self._check_budget()
                try:
                    return _valid_text(tenacity.Retrying(**self._retries())(attempt, *args, **kwargs))
                except Exception as exc:
                    self._count_failure(exc)
                    raise

        def update_history(self, entry: dict[str, Any]) -> None:
            record_reply(entry)  # the reply of the attempt in progress, for answer_checked
            super().update_history(entry)

        async def acall(self, *args: Any, **kwargs: Any) -> Any:
            self._check_budget()
            slots = self.meter.slots if self.meter is not None else None
            attempt = answer_checked_async(self, _gated_async(self, super().acall))
            async with slots.held_async() if slots is not None else contextlib.nullcontext():
                self._check_budget()
                with memoized_metadata(), in_flight(self):
                    try:
                        result: Any = await tenacity.AsyncRetrying(**self._retries())(attempt, *args, **kwargs)
                    except Exception as exc:
                        self._count_failure(exc)
                        raise
            return _valid_text(result)

        @property
        def supports_response_schema(self) -> bool:
            return self.structured_output or bool(super().supports_response_schema)

        @property
        def supported_params(self) -> set[str]:
            params = set(super().supported_params)
            return params | {"response_format"} if self.structured_output else params

        def _check_budget(self) -> None:
            if self.meter is not None:
                self.meter.check()

        def _count_failure(self, exc: Exception) -> None:
            if self.meter is not None:
                self.meter.add_failure(exc)

        def _retries(self) -> dict[str, Any]:
            def note(error: BaseException, retry: int, delay: float) -> None:
                if self.meter is not None:
                    self.meter.add_retry()
                logger.info("LM call to %s failed (%s); retry %d of %d in %.1fs", self.model, type(error).__name__,
                            retry, self.max_retries, delay, extra={RETRY_LOG_MARKER: True})

            return retry_policy(retries=self.max_retries, retryable=_is_retryable, on_retry=note)

    return TrackedLM


# --- endpoint limits: every attempt waits for a slot of its endpoint (helm_optimizer.serving.limiter) ----------
def _prompt_tokens(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """The prompt's size in tokens, estimated as characters / 4 (what the gate reserves)."""
    prompt = kwargs.get("prompt", args[0] if args else None)
    messages = kwargs.get("messages") or []
    chars = len(prompt) if isinstance(prompt, str) else 0
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(str(part.get("text", ""))) for part in content if isinstance(part, dict))
    return chars // 4


class _UsageProbe:
    """Passes DSPy's usage report of one call on to the tracker in force, and keeps it (none: a cache hit)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.usage: dict[str, Any] | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> _UsageProbe:
        return self

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        self.usage = dict(usage_entry or {})
        if self.inner is not None:
            self.inner.add_usage(lm, usage_entry)

    def get_total_tokens(self) -> Any:
        return self.inner.get_total_tokens() if self.inner is not None else {}


def _end_permit(permit: Any, probe: _UsageProbe) -> None:
    usage = probe.usage
    if usage is None:
        permit.done(cache_hit=True)
    else:
        permit.done(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def _on_error(lm: Any, permit: Any, exc: BaseException) -> None:
    import dspy

    if isinstance(exc, dspy.LMRateLimitError) or getattr(exc, "status_code", None) == 429:
        hint = getattr(exc, "retry_after", None)
        usable = isinstance(hint, int | float) and not isinstance(hint, bool) and math.isfinite(hint)
        permit.throttled(float(hint) if usable and hint is not None else None)
    else:
        permit.failed()


def _refused(lm: Any, exc: BudgetExceededError) -> None:
    """A refused call stops the run: the meter's check then raises before an agent is written."""
    meter = lm.meter
    if meter is not None and meter.exceeded is None:
        meter.exceeded = str(exc).rstrip(".")


def _gated(lm: Any, call: Any) -> Any:
    """``call`` waiting, attempt by attempt, for a slot of ``lm``'s endpoint; ``call`` itself without limits."""
    gate: Gate | None = gate_for(lm.endpoint)
    if gate is None:
        return call

    def limited(*args: Any, **kwargs: Any) -> Any:
        import dspy

        try:
            permit = gate.enter(_prompt_tokens(args, kwargs))
        except BudgetExceededError as exc:
            _refused(lm, exc)
            raise
        probe = _UsageProbe(dspy.settings.usage_tracker)
        try:
            with dspy.context(usage_tracker=probe):
                result = call(*args, **kwargs)
        except BaseException as exc:
            _on_error(lm, permit, exc)
            raise
        _end_permit(permit, probe)
        return result

    return limited


def _gated_async(lm: Any, call: Any) -> Any:
    """:func:`_gated` for ``acall``."""
    gate: Gate | None = gate_for(lm.endpoint)
    if gate is None:
        return call

    async def limited(*args: Any, **kwargs: Any) -> Any:
        import dspy

        try:
            permit = await asyncio.to_thread(gate.enter, _prompt_tokens(args, kwargs))
        except BudgetExceededError as exc:
            _refused(lm, exc)
            raise
        probe = _UsageProbe(dspy.settings.usage_tracker)
        try:
            with dspy.context(usage_tracker=probe):
                result = await call(*args, **kwargs)
        except BaseException as exc:
            _on_error(lm, permit, exc)
            raise
        _end_permit(permit, probe)
        return result

    return limited
# --- end of endpoint limits ---------------------------------------------------------------------------------


_TRACKED: type[Any] | None = None


def dspy_decoding(cfg: LMConfig) -> dict[str, Any]:
    """The decoding settings a DSPy program runs under with ``cfg`` (what :func:`build_lm` passes).

    DSPy methods ignore the HELM request's own ``max_tokens``, ``temperature`` and stop sequences.
    ``max_tokens`` None means no limit beyond the provider's default.
    """
    max_tokens = cfg.max_tokens or (512 if _is_embedded(cfg.model) else None)
    return {"source": "DSPy LM config", "max_tokens": max_tokens, "temperature": cfg.temperature, "stop": None}


def build_lm(cfg: LMConfig, *, cache: bool = True, meter: UsageMeter | None = None,
             parallel: int | None = None, check: bool = True) -> dspy.LM:
    """A ``dspy.LM`` for ``cfg``. ``local/<name>`` starts (or reuses) the embedded server."""
    global _TRACKED
    prepare_offline_environment()
    api_key = resolve_api_key(cfg)
    model = cfg.model
    api_base = cfg.api_base
    max_tokens = cfg.max_tokens
    timeout = cfg.timeout
    if _is_embedded(model):
        from helm_optimizer.serving.models import dspy_model_name
        from helm_optimizer.serving.sharing import ensure_server

        server = ensure_server(model, parallel=parallel)
        api_base = server.api_base
        model = dspy_model_name(cfg.model)
        max_tokens = max_tokens or 512
        # On a laptop CPU, a slot sharing the cores with `parallel` others can take minutes to prefill
        # a few-shot prompt and decode a chain of thought; a 2-minute read timeout then cuts it off.
        timeout = max(timeout, 900.0)
    elif api_base and check:
        check_reachable(api_base)
    if _TRACKED is None:
        from helm_optimizer._dspy_metadata import install as install_memoized_metadata

        _TRACKED = _tracked_lm_class()
        install_memoized_metadata()
        from helm_optimizer._env import route_dspy_logging

        route_dspy_logging()
    kwargs: dict[str, Any] = dict(cfg.extra)
    if api_base:
        kwargs["api_base"] = api_base
    if api_key is not None:
        kwargs["api_key"] = api_key
    lm = _TRACKED(
        model,
        temperature=cfg.temperature,
        max_tokens=max_tokens,
        cache=cache,
        num_retries=0,  # TrackedLM retries (counted and logged) instead of DSPy
        timeout=timeout,
        **kwargs,
    )
    lm.meter = meter
    lm.max_retries = cfg.num_retries
    lm.structured_output = uses_structured_output(cfg)
    lm.endpoint = cfg.model
    if meter is not None:
        meter.set_prices(model, cfg)
    return lm


def uses_structured_output(cfg: LMConfig) -> bool:
    if cfg.structured_output is not None:
        return cfg.structured_output
    return _is_embedded(cfg.model)


def adapter_for(cfg: LMConfig) -> dspy.Adapter:
    """The DSPy adapter for ``cfg``: schema-constrained JSON for small local models, else DSPy's default."""
    import dspy

    if uses_structured_output(cfg):
        return structured_json_adapter()
    return dspy.ChatAdapter()


def structured_json_adapter() -> dspy.Adapter:
    """DSPy's JSON adapter; with an LM from :func:`build_lm` for a structured-output model it always
    sends the signature's JSON schema as ``response_format``.

    DSPy only sends the schema to models it knows support it; llama.cpp and vLLM support it too,
    and a small model follows DSPy's format only when the server constrains decoding to it. The LMs
    ``build_lm`` makes for such a model say so (``supports_response_schema``).
    """
    import dspy

    return dspy.JSONAdapter()
