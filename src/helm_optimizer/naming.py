"""Every on-disk and HELM-side identity: one function each, used by writers and readers alike.

* :func:`scenario_key`: a run entry's directory name;
* :func:`model_path`: a model's directories;
* :func:`agent_path`, :func:`record_path`: where an agent and an evaluation record live;
* :func:`deployment_name`: the HELM *model* name of a method (what the leaderboard shows);
* :func:`agent_deployment_name`: the HELM deployment that serves one agent file;
* :func:`helm_run_name`: the HELM run (directory) name of one evaluation.

Agents live at ``agents/<scenario key>/<model path>/<optimizer>.json``:

* the *model path* keeps the model's own ``/``-separated structure (``openai/gpt-4o`` becomes the
  directories ``openai/gpt-4o``), each segment percent-encoded so that characters other than
  letters, digits and ``-_.+@=,~`` (for example ``:``) cannot reach the file system, and a segment
  that is ``.``, ``..`` or starts with ``.`` has its dots encoded. The mapping is reversible, so two
  different model names never share a directory;
* the *scenario key* is the run entry's name followed by its arguments sorted by key
  (``head_qa:language=en`` becomes ``head_qa,language=en``), encoded the same way; a key longer
  than :data:`MAX_KEY_BYTES` (long path arguments) keeps its beginning and ends in ``~`` and a hash
  of the whole key, so it stays one directory name and different scenarios never share one.

A model path segment longer than a directory name may be (255 bytes once encoded) is refused
with a :class:`~helm_optimizer.errors.ConfigError`: shortening it would lose the model's name.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import quote, unquote

from helm_optimizer.errors import ConfigError

__all__ = [
    "MAX_KEY_BYTES",
    "METHOD_BASELINE",
    "METHOD_ZS_COT",
    "METHOD_ZS_PREDICT",
    "ZERO_SHOT_METHODS",
    "agent_deployment_name",
    "agent_path",
    "cell_lock_path",
    "deployment_name",
    "helm_run_name",
    "method_label",
    "method_slug",
    "model_from_path",
    "model_path",
    "parse_run_entry",
    "record_path",
    "scenario_key",
]

METHOD_BASELINE = "baseline"
METHOD_ZS_PREDICT = "ZeroShotPredict"
METHOD_ZS_COT = "ZeroShotCoT"
ZERO_SHOT_METHODS = (METHOD_ZS_PREDICT, METHOD_ZS_COT)
# Longest HELM run name kept whole: HELM makes it a directory name (255 bytes on most file systems).
_MAX_RUN_NAME = 180
# Longest scenario key kept whole (the key is a directory name, like a model path segment).
MAX_KEY_BYTES = 200
_MAX_SEGMENT_BYTES = 255
_DIGEST_CHARS = 16

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
    segments = [_encode_segment(part) for part in model.split("/")]
    for segment in segments:
        if len(segment) > _MAX_SEGMENT_BYTES:
            raise ConfigError(
                f"The model name {model[:60]!r}... has a part of {len(segment)} bytes once encoded for the file "
                f"system (at most {_MAX_SEGMENT_BYTES}); give the model a shorter name."
            )
    return "/".join(segments)


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
    key = _encode_segment(",".join(parts))
    if len(key) <= MAX_KEY_BYTES:
        return key
    digest = hashlib.sha256(key.encode("ascii")).hexdigest()[:_DIGEST_CHARS]
    head = re.sub(r"%[0-9A-F]?$", "", key[: MAX_KEY_BYTES - _DIGEST_CHARS - 1])  # never half an escape
    return f"{head}~{digest}"


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


def _fold_suffix(fold: int | None, seed: int | None = None) -> str:
    """``.seed<s>`` for an agent of one optimizer seed of a multi-seed sweep, ``.fold<k>`` for a fold."""
    return ("" if seed is None else f".seed{seed}") + ("" if fold is None else f".fold{fold}")


def agent_path(agents_dir: str | Path, scenario: str, model: str, optimizer: str, fold: int | None = None,
               seed: int | None = None) -> Path:
    """``<agents dir>/<scenario key>/<model path>/<optimizer>[.seed<s>][.fold<k>].json``."""
    return Path(agents_dir) / scenario / model_path(model) / f"{optimizer}{_fold_suffix(fold, seed)}.json"


def record_path(output_dir: str | Path, scenario: str, model: str, method: str, fold: int | None = None,
                seed: int | None = None) -> Path:
    """``<output>/evaluations/<scenario key>/<model path>/<method>[.seed<s>][.fold<k>].json``."""
    return (Path(output_dir) / "evaluations" / scenario / model_path(model)
            / f"{method}{_fold_suffix(fold, seed)}.json")


def cell_lock_path(output_dir: str | Path, kind: str, scenario: str, model: str, name: str, *,
                   seed: int | None = None) -> Path:
    """``<output>/.locks/<kind>/<scenario key>/<model path>/<name>[.seed<s>].lock``: held while one run works on
    that cell (one optimizer seed of it)."""
    return (Path(output_dir) / ".locks" / kind / scenario / model_path(model)
            / f"{_encode_segment(name)}{_fold_suffix(None, seed)}.lock")


def agent_deployment_name(model_name: str, method: str, scenario: str, fold: int | None = None,
                          seed: int | None = None) -> str:
    """The HELM deployment serving the agent of ``method`` for ``model_name`` on ``scenario`` (fold, seed).

    Its HELM model is :func:`deployment_name` (one leaderboard row per model and method); the
    deployment itself names the agent file, so the client never has to guess which one to load.
    """
    digest = hashlib.sha256(scenario.encode("utf-8")).hexdigest()[:10]
    return f"{deployment_name(model_name, method)}@{digest}{_fold_suffix(fold, seed)}"


def helm_run_name(entry_name: str, args: dict[str, str], deployment: str, *, eval_limit: int | None,
                  seed: int, fold: int | None) -> str:
    """HELM run name of one evaluation: readable, unique, and short enough to be a directory name.

    ``/`` becomes ``_`` (as in HELM's own run names), and a name that held a ``/`` ends in ``~`` and a
    hash of the exact name (``path=/a_b`` and ``path=_a/b`` must not share a run directory: HELM skips
    a run whose directory is complete). A name longer than a directory name may be keeps its
    beginning and ends in a hash of the whole, so that different runs never share a directory.
    """
    parts = [*(f"{k}={v}" for k, v in sorted(args.items())), f"model={deployment}"]
    if eval_limit is not None:
        parts.append(f"eval_limit={eval_limit}")
    if eval_limit is not None or fold is not None:
        parts.append(f"seed={seed}")
    if fold is not None:
        parts.append(f"fold={fold}")
    exact = entry_name + ":" + ",".join(parts)
    name = exact.replace("/", "_")
    digest = hashlib.sha256(exact.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
    if len(name.encode("utf-8")) + (len(digest) + 1 if "/" in exact else 0) <= _MAX_RUN_NAME:
        return f"{name}~{digest}" if "/" in exact else name
    head = name.encode("utf-8")[: _MAX_RUN_NAME - len(digest) - 1].decode("utf-8", errors="ignore")
    return f"{head}~{digest}"
