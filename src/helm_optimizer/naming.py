"""How model names, scenarios and methods become file and deployment names.

Agents live at ``agents/<scenario key>/<model path>/<optimizer>.json``:

* the *model path* keeps the model's own ``/``-separated structure (``openai/gpt-4o`` becomes the
  directories ``openai/gpt-4o``), each segment percent-encoded so that characters other than
  letters, digits and ``-_.+@=,~`` (for example ``:``) cannot reach the file system, and a segment
  that is ``.``, ``..`` or starts with ``.`` has its dots encoded. The mapping is reversible, so two
  different model names never share a directory;
* the *scenario key* is the run entry's name followed by its arguments sorted by key
  (``head_qa:language=en`` becomes ``head_qa,language=en``), encoded the same way.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from helm_optimizer.errors import ConfigError

__all__ = [
    "METHOD_BASELINE",
    "METHOD_ZS_COT",
    "METHOD_ZS_PREDICT",
    "deployment_name",
    "method_label",
    "method_slug",
    "model_from_path",
    "model_path",
    "parse_run_entry",
    "scenario_key",
]

METHOD_BASELINE = "baseline"
METHOD_ZS_PREDICT = "ZeroShotPredict"
METHOD_ZS_COT = "ZeroShotCoT"

_SAFE = "-_.+@=,~"
_ENTRY_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
# HELM's own DSPy deployments: <model>-dspy-zs-predict, -dspy-zs-cot, -dspy-fs-bfrs, -dspy-fs-miprov2.
_METHOD_SLUGS = {
    METHOD_ZS_PREDICT: "zs-predict",
    METHOD_ZS_COT: "zs-cot",
    "BootstrapFewShotWithRandomSearch": "fs-bfrs",
    "MIPROv2": "fs-miprov2",
}
_METHOD_LABELS = {
    METHOD_BASELINE: "Baseline (HELM prompt)",
    METHOD_ZS_PREDICT: "DSPy zero-shot Predict",
    METHOD_ZS_COT: "DSPy zero-shot CoT",
}


def _encode_segment(segment: str) -> str:
    if not segment:
        raise ConfigError("A model name has an empty path segment (e.g. 'a//b' or a trailing '/'); fix the name.")
    encoded = quote(segment, safe=_SAFE)
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
        if encoded == "%2E.":
            encoded = "%2E%2E"
    return encoded


def model_path(model: str) -> str:
    """Relative directory (with ``/``) for a model name."""
    return "/".join(_encode_segment(part) for part in model.split("/"))


def model_from_path(path: str) -> str:
    return "/".join(unquote(part) for part in path.split("/"))


def parse_run_entry(entry: str) -> tuple[str, dict[str, str]]:
    """Split ``name:k=v,k2=v2`` into its name and arguments, with clear errors."""
    text = entry.strip()
    if not text:
        raise ConfigError("Empty run entry; give one like 'head_qa' or 'head_qa:language=en'.")
    name, sep, rest = text.partition(":")
    if not _ENTRY_NAME_RE.match(name):
        raise ConfigError(
            f"Malformed run entry {entry!r}: the name {name!r} may only hold letters, digits, '_', '-' and '.'; "
            "write it as NAME or NAME:key=value,key2=value2."
        )
    args: dict[str, str] = {}
    if sep:
        if not rest:
            raise ConfigError(f"Malformed run entry {entry!r}: nothing after ':'; drop the ':' or add key=value.")
        for part in rest.split(","):
            key, eq, value = part.partition("=")
            if not eq or not key.strip():
                raise ConfigError(
                    f"Malformed run entry {entry!r}: {part!r} is not key=value; write NAME:key=value,key2=value2."
                )
            key = key.strip()
            if key in args:
                raise ConfigError(f"Malformed run entry {entry!r}: argument {key!r} is given twice.")
            args[key] = value.strip()
    return name, args


def scenario_key(entry: str, *, drop: tuple[str, ...] = ("model", "model_deployment")) -> str:
    """Directory name of a run entry's scenario (model arguments removed, other args sorted)."""
    name, args = parse_run_entry(entry)
    parts = [name] + [f"{k}={v}" for k, v in sorted(args.items()) if k not in drop]
    return _encode_segment(",".join(parts))


def method_slug(method: str) -> str:
    """Short lower-case slug used in deployment names."""
    if method in _METHOD_SLUGS:
        return _METHOD_SLUGS[method]
    return "fs-" + re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-")


def deployment_name(model_name: str, method: str) -> str:
    """HELM deployment (and model) name for a model evaluated through a DSPy method."""
    return f"{model_name}-dspy-{method_slug(method)}"


def method_label(method: str) -> str:
    return _METHOD_LABELS.get(method, f"DSPy {method}")
