"""An agent's optimized prompt without DSPy: plain text, chat messages, or HELM ``instructions``.

An agent is a DSPy ``ChainOfThought``/``Predict`` over ``inputs -> output`` whose ``inputs`` are the
exact prompts HELM builds for the scenario (ending with HELM's output prefix, e.g. ``Answer:``).
The exports:

* ``text``: the instruction and every demo (input, reasoning where there is one, answer), then the
  place of the new question, for reading or pasting into another tool;
* ``chat``: the messages DSPy's adapter sends for this agent (system, then user/assistant per
  demo, then the user turn with an ``{inputs}`` placeholder) — DSPy formats them at export time;
* ``helm``: an ``instructions`` text for a HELM ``AdapterSpec`` (instruction, then each demo's HELM
  prompt followed by its answer) with ``max_train_instances: 0``, plus the demos as in-context
  examples. HELM scores the answer right after the output prefix, so demos' reasoning is left out.

DSPy's default instruction for the signature ("Given the fields `inputs`, produce the fields
`output`.") names DSPy's fields and means nothing to a plain model; the text and HELM exports leave
it out and keep any other (optimized) instruction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helm_optimizer.agents.program import detect_program_kind, read_agent_json
from helm_optimizer.errors import AgentError

__all__ = ["EXPORT_FORMATS", "AgentPrompt", "Demo", "export_chat", "export_helm", "export_text", "helm_instructions",
           "read_prompt", "render"]

EXPORT_FORMATS = ("text", "chat", "helm")
INPUTS_PLACEHOLDER = "{inputs}"
_DEFAULT_INSTRUCTION_START = "Given the fields `inputs`"


@dataclass(frozen=True)
class Demo:
    inputs: str
    output: str
    reasoning: str | None = None


@dataclass(frozen=True)
class AgentPrompt:
    """What an agent adds to HELM's prompt: its instruction and its demos."""

    path: Path
    kind: str  # "cot" or "predict"
    instruction: str
    demos: tuple[Demo, ...]

    @property
    def custom_instruction(self) -> str:
        """The instruction unless it is DSPy's default for the signature (then empty)."""
        text = self.instruction.strip()
        return "" if text.startswith(_DEFAULT_INSTRUCTION_START) else text


def read_prompt(path: Path) -> AgentPrompt:
    """Read an agent file (ours or the reference tool's) without DSPy."""
    data = read_agent_json(path)
    try:
        kind = detect_program_kind(data)
    except AgentError as exc:
        raise AgentError(f"Agent file {path}: {exc}") from None
    state = data["predict"] if kind == "cot" else data
    signature = state.get("extended_signature") or state.get("signature") or {}
    instruction = str(signature.get("instructions") or "")
    demos = []
    for raw in state.get("demos") or []:
        if not isinstance(raw, dict) or raw.get("inputs") is None or raw.get("output") is None:
            continue  # DSPy skips demos without the signature's fields too
        reasoning = raw.get("reasoning") or raw.get("rationale")
        demos.append(Demo(inputs=str(raw["inputs"]), output=str(raw["output"]),
                          reasoning=str(reasoning).strip() if reasoning else None))
    return AgentPrompt(path=Path(path), kind=kind, instruction=instruction, demos=tuple(demos))


def export_text(prompt: AgentPrompt) -> str:
    parts = [prompt.custom_instruction] if prompt.custom_instruction else []
    for i, demo in enumerate(prompt.demos, 1):
        block = [f"Example {i}:", demo.inputs]
        if demo.reasoning:
            block.append(f"Reasoning: {demo.reasoning}")
        block.append(f"Answer: {demo.output}")
        parts.append("\n".join(block))
    parts.append(f"Now answer:\n{INPUTS_PLACEHOLDER}")
    return "\n\n".join(parts) + "\n"


def helm_instructions(prompt: AgentPrompt) -> str:
    """The text HELM puts before the instance's prompt: instruction, then each demo's prompt and answer."""
    blocks = [prompt.custom_instruction] if prompt.custom_instruction else []
    blocks += [f"{demo.inputs.rstrip()} {demo.output.strip()}" for demo in prompt.demos]
    return "\n\n".join(blocks)


def export_helm(prompt: AgentPrompt) -> dict[str, Any]:
    """``instructions_prefix`` goes before the run spec's own ``instructions``, with no in-context examples."""
    return {
        "instructions_prefix": helm_instructions(prompt),
        "adapter_spec": {"max_train_instances": 0},
        "in_context_examples": [{"input": d.inputs, "output": d.output} for d in prompt.demos],
        "usage": "adapter_spec = dataclasses.replace(run_spec.adapter_spec, max_train_instances=0, instructions="
                 "instructions_prefix + '\\n\\n' + run_spec.adapter_spec.instructions); each example's input is "
                 "HELM's whole prompt for it, so the prefix already holds them; reasoning is left out because HELM "
                 "scores the text right after the output prefix.",
    }


def export_chat(prompt: AgentPrompt, adapter: Any) -> list[dict[str, Any]]:
    """The messages ``adapter`` (a ``dspy.Adapter``) sends for this agent, the question left as ``{inputs}``."""
    from helm_optimizer.agents.program import load_program

    program = load_program(prompt.path)
    predictor = program.predictors()[0]
    messages: list[dict[str, Any]] = adapter.format(predictor.signature, list(predictor.demos),
                                                    {"inputs": INPUTS_PLACEHOLDER})
    return messages


def render(prompt: AgentPrompt, fmt: str, adapter: Any = None) -> str:
    """``fmt`` as the text ``agents export`` prints."""
    if fmt == "text":
        return export_text(prompt)
    if fmt == "helm":
        return json.dumps(export_helm(prompt), indent=2, ensure_ascii=False) + "\n"
    if fmt == "chat":
        return json.dumps(export_chat(prompt, adapter), indent=2, ensure_ascii=False) + "\n"
    raise AgentError(f"Unknown export format '{fmt}'; use one of: {', '.join(EXPORT_FORMATS)}.")
