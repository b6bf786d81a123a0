"""A HELM client that answers each request by running a saved DSPy agent.

Compared with HELM's ``helm.clients.dspy_client.DSPyClient`` it

* goes through HELM's request cache (a re-run of ``helm-run`` makes no LM calls),
* is safe under HELM's parallelism (one program per thread-free call, LM scoped per call),
* reports a failure per instance (an unparseable answer scores as empty) instead of aborting,
* reads the API key from an environment variable and never writes it anywhere,
* loads exactly the agent file its deployment names (``agent_path``); a deployment that names only
  an agents directory serves the one agent of its model and method there, and refuses when
  there are several.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

from helm.clients.client import CachingClient
from helm.common.cache import CacheConfig
from helm.common.request import (
    ErrorFlags,
    GeneratedOutput,
    Request,
    RequestResult,
    Thinking,
    Token,
    wrap_request_time,
)

from helm_optimizer.helm.refusals import final_for_helm
from helm_optimizer.helm.task import request_to_inputs
from helm_optimizer.ledger import UsageLedger
from helm_optimizer.naming import METHOD_ZS_COT, METHOD_ZS_PREDICT

__all__ = ["AgentClient"]

logger = logging.getLogger(__name__)

_ZERO_SHOT = {METHOD_ZS_PREDICT: "predict", METHOD_ZS_COT: "cot"}


class AgentClient(CachingClient):  # type: ignore[misc]
    """Runs ``method`` (an optimizer's agent, or a zero-shot program) for ``model`` on each request."""

    def __init__(self, cache_config: CacheConfig, method: str = METHOD_ZS_COT, model: str | None = None,
                 lm: dict[str, Any] | None = None, agents_dir: str | None = None, agent_path: str | None = None,
                 program: str | None = None, tokenizer_name: str | None = None, usage_ledger: str | None = None,
                 **_: Any) -> None:
        super().__init__(cache_config=cache_config)
        from helm_optimizer.config import LMConfig

        if not lm:
            raise ValueError("AgentClient needs an 'lm' object (model, api_base, api_key_env, ...) in its client args")
        self.lm_config = LMConfig.model_validate(lm)
        self.method = method
        self.model = model or self.lm_config.model
        self.agents_dir = Path(agents_dir) if agents_dir else None
        self.agent_path = Path(agent_path) if agent_path else None
        self.program_kind = program
        self._lm: Any = None
        self._adapter: Any = None
        self._programs: dict[str, tuple[Any, str]] = {}
        self._lock = threading.Lock()
        self.ledger = UsageLedger(usage_ledger) if usage_ledger else None
        self._retry_meter: Any = None
        self._retries_seen = 0

    # -- setup (lazy: HELM builds clients before the first request) ----------------------------
    def _ensure_lm(self) -> None:
        if self._lm is not None:
            return
        with self._lock:
            if self._lm is None:
                from helm_optimizer.lm import UsageMeter, adapter_for, build_lm

                # HELM's request cache is the cache here; DSPy's would hide calls from it. The LM's
                # own meter counts its retried attempts (no budget: HELM decides what to ask).
                self._adapter = adapter_for(self.lm_config)
                self._retry_meter = UsageMeter()
                # the process's one embedded server (sized by the plan), when the model is embedded
                self._lm = build_lm(self.lm_config, cache=False, check=False, meter=self._retry_meter)

    def _resolve_agent(self) -> tuple[Path | None, str]:
        if self.method in _ZERO_SHOT:
            return None, _ZERO_SHOT[self.method]
        if self.agent_path is not None:
            return self.agent_path, self.program_kind or ""
        if self.agents_dir is None:
            raise _Fatal(f"Deployment for {self.model} / {self.method} has neither agents_dir nor agent_path.")
        from helm_optimizer.agents.store import list_agents
        from helm_optimizer.naming import agent_deployment_name

        found = [a for a in list_agents(self.agents_dir) if a.model == self.model and a.optimizer == self.method]
        if len(found) == 1:
            return found[0].path, self.program_kind or ""
        if not found:
            raise _Fatal(
                f"No {self.method} agent for model {self.model} under {self.agents_dir}; "
                "run `helm-optimizer optimize` for this scenario and model first."
            )
        names = ", ".join(agent_deployment_name(self.model, self.method, a.scenario, a.fold, a.seed) for a in found)
        raise _Fatal(
            f"{self.agents_dir} holds {len(found)} {self.method} agents for model {self.model} (several scenarios "
            f"or folds); choose one with model_deployment=<one of: {names}> (see `helm-optimizer register`)."
        )

    def _program(self) -> tuple[Any, str]:
        path, kind = self._resolve_agent()
        key = str(path) if path is not None else f"zero-shot:{kind}"
        cached = self._programs.get(key)
        if cached is not None:
            return cached
        with self._lock:
            if key not in self._programs:
                from helm_optimizer.agents.program import load_program, make_program

                if path is None:
                    program, fingerprint = make_program(kind), f"zero-shot:{kind}"
                else:
                    from helm_optimizer.errors import AgentError

                    try:
                        program = load_program(path, kind or None)
                    except AgentError as exc:
                        raise _Fatal(str(exc)) from exc
                    fingerprint = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
                self._programs[key] = (program, fingerprint)
        return self._programs[key]

    # -- requests ----------------------------------------------------------------------------
    def make_request(self, request: Request) -> RequestResult:
        try:
            program, agent_fp = self._program()
        except _Fatal as exc:
            return RequestResult(success=False, cached=False, completions=[], embedding=[], error=str(exc),
                                 error_flags=ErrorFlags(is_retriable=False, is_fatal=True))
        inputs = request_to_inputs(request)
        lm_public = self.lm_config.public_dict()
        for key in ("api_base", "timeout", "num_retries"):  # where and how patiently it is asked: same answers
            lm_public.pop(key, None)
        raw_request = {"agent": agent_fp, "method": self.method, "lm": lm_public, "inputs": inputs}

        def do_it() -> dict[str, Any]:
            return self._run(program, inputs)

        try:
            with final_for_helm():  # a refused call (budget spent, sweep stopping) ends the HELM run
                response, cached = self.cache.get(raw_request, wrap_request_time(do_it))
        except _Transient as exc:
            return RequestResult(success=False, cached=False, completions=[], embedding=[], error=str(exc),
                                 error_flags=ErrorFlags(is_retriable=False, is_fatal=False))
        if response.get("error"):
            return RequestResult(success=False, cached=cached, completions=[], embedding=[],
                                 error=response["error"], request_time=response.get("request_time"),
                                 error_flags=ErrorFlags(is_retriable=False, is_fatal=False))
        text = response["output"]
        from helm_optimizer.plugin.tokenizer import approximate_tokens

        tokens = [Token(text=piece, logprob=0.0) for piece in approximate_tokens(text)]
        return RequestResult(
            success=True, cached=cached, request_time=response.get("request_time"),
            request_datetime=response.get("request_datetime"),
            completions=[GeneratedOutput(text=text, logprob=0.0, tokens=tokens,
                                         thinking=Thinking(text=response["reasoning"]) if response.get("reasoning")
                                         else None)], embedding=[],
        )

    def _run(self, program: Any, inputs: str) -> dict[str, Any]:
        import dspy

        from helm_optimizer.errors import BudgetExceededError
        from helm_optimizer.lm import UsageMeter

        self._ensure_lm()
        meter = UsageMeter()
        try:
            with dspy.context(lm=self._lm, adapter=self._adapter, usage_tracker=meter, track_usage=True):
                prediction = program(inputs=inputs)
        except BudgetExceededError:
            raise
        except Exception as exc:
            if _is_parse_error(exc):
                self._record(meter)
                # Deterministic for this agent and input: cached, so a re-run does not pay for it again.
                return {"error": f"Unparseable model output: {str(exc).splitlines()[0][:300]}", "kind": "parse"}
            raise _Transient(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}") from exc
        self._record(meter)
        output = getattr(prediction, "output", None)
        reasoning = getattr(prediction, "reasoning", None)  # chain of thought: kept for the report's explorer
        return {"output": "" if output is None else str(output), **meter.snapshot(),
                **({"reasoning": str(reasoning)} if reasoning else {})}

    def _record(self, meter: Any) -> None:
        """Count this answer's LM calls, tokens and retries in the run's ledger (HELM's cache missed)."""
        if self.ledger is None:
            return
        snap = meter.snapshot()
        with self._lock:  # retries are counted by the LM shared by every thread: hand on what is new
            total = int(self._retry_meter.retries) if self._retry_meter is not None else 0
            retries, self._retries_seen = total - self._retries_seen, total
        self.ledger.add(lm_calls=int(snap.get("lm_calls") or 0), prompt_tokens=int(snap.get("prompt_tokens") or 0),
                        completion_tokens=int(snap.get("completion_tokens") or 0), retries=retries)


class _Fatal(Exception):
    pass


class _Transient(Exception):
    pass


def _is_parse_error(exc: BaseException) -> bool:
    from dspy.utils.exceptions import AdapterParseError

    from helm_optimizer.errors import caused_by

    return caused_by(exc, AdapterParseError)
