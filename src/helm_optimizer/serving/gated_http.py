"""An ``httpx`` transport that sends every request through its endpoint's gate (limits, 429 back-off).

HELM's OpenAI client talks to the endpoint with the OpenAI SDK, which retries on its own; putting the
gate in the SDK's HTTP client makes every attempt wait for a slot and every 429 pause the endpoint
for all callers.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping
from typing import Any

import httpx2 as httpx  # the OpenAI SDK's HTTP library (a fork of httpx with the same transport API)

from helm_optimizer.serving.limiter import Gate

__all__ = ["GatedTransport", "retry_after_seconds"]


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """A 429's wait hint in seconds: ``retry-after-ms``, else ``Retry-After`` (seconds or an HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
            if math.isfinite(value) and value >= 0:
                return value
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _usage(body: bytes) -> tuple[int | None, int | None]:
    try:
        usage: Any = json.loads(body).get("usage") or {}
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    except (ValueError, AttributeError, TypeError):
        return None, None


class GatedTransport(httpx.BaseTransport):
    """Wraps ``inner`` (default: httpx's own): one gate slot per request, held until the body is read."""

    def __init__(self, gate: Gate, inner: httpx.BaseTransport | None = None) -> None:
        self.gate = gate
        self.inner = inner if inner is not None else httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        tokens = len(request.read()) // 4
        with self.gate.slot(tokens) as permit:
            response = self.inner.handle_request(request)
            try:
                body = response.read()
            except BaseException:
                response.close()
                raise
            if response.status_code == 429:
                permit.throttled(retry_after_seconds(response.headers))
            elif response.status_code >= 400:
                permit.failed()
            else:
                prompt, completion = _usage(body)
                permit.done(prompt, completion)
            return response

    def close(self) -> None:
        self.inner.close()
