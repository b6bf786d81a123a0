"""Typed, frozen configuration models, validated at the edge (CLI options and config files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["DEFAULT_OUTPUT_DIR", "LMConfig", "OptimizeConfig", "ProgramKind", "redact_url", "url_has_credentials"]

ProgramKind = Literal["predict", "cot"]
DEFAULT_OUTPUT_DIR = Path("helm-optimizer-output")


def url_has_credentials(url: str) -> bool:
    """Whether ``url`` holds a user name or password before its host (``http://user:key@host/``)."""
    try:
        return "@" in urlsplit(url.strip()).netloc
    except ValueError:
        return "@" in url


def redact_url(url: str) -> str:
    """``url`` with any user name and password replaced by ``***``: safe to print or write."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "<unparseable URL>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


class LMConfig(BaseModel):
    """How to reach one language model.

    ``model`` uses litellm/DSPy naming (``openai/gpt-4o``, ``anthropic/claude-3-7-sonnet-20250219``)
    or ``local/<name>`` for a model embedded in a PyPI package and served on 127.0.0.1.
    The key is never stored: ``api_key_env`` names the environment variable that holds it, and a
    literal ``api_key`` (from ``--api-key``) lives only in memory and is excluded from every dump.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key_env: str | None = None
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    num_retries: int = Field(default=5, ge=0, le=20)
    timeout: float = Field(default=120.0, gt=0)
    structured_output: bool | None = None
    cost_per_million_input_tokens: float | None = Field(default=None, ge=0)
    cost_per_million_output_tokens: float | None = Field(default=None, ge=0)
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model_has_no_spaces(cls, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise ValueError(f"model name {value!r} contains white space")
        return value

    @field_validator("api_base")
    @classmethod
    def _no_credentials_in_url(cls, value: str | None) -> str | None:
        if value is not None and url_has_credentials(value):
            raise ValueError(
                f"api_base {redact_url(value)} carries credentials (user:password@ before the host), which would "
                "end up in logs, configs and HELM's files; give the URL without them and put the key in an "
                "environment variable named by api_key_env (--api-key-env)"
            )
        return value

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or not value.replace("_", "").isalnum()):
            raise ValueError(
                f"api_key_env must name an environment variable (letters, digits, '_'), not {value!r}; "
                "put the key itself in that variable"
            )
        return value

    @field_validator("extra")
    @classmethod
    def _no_secrets_in_extra(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            lowered = key.lower()
            if "key" in lowered or ("token" in lowered and "max" not in lowered):
                raise ValueError(f"extra option {key!r} looks like a secret; use api_key_env instead")
        return value

    def public_dict(self) -> dict[str, Any]:
        """Everything needed to reproduce the run, with no secret."""
        return self.model_dump(mode="json", exclude={"api_key"})


class OptimizeConfig(BaseModel):
    """One optimization: a scenario, an optimizer and a model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scenario: str = Field(min_length=1, description="HELM run entry, e.g. 'head_qa:language=en'")
    optimizer: str = "MIPROv2"
    lm: LMConfig
    prompt_lm: LMConfig | None = None
    program: ProgramKind = "cot"
    max_bootstrapped_demos: int = Field(default=3, ge=0)
    max_labeled_demos: int = Field(default=3, ge=0)
    num_threads: int = Field(default=8, ge=1, le=256)
    val_size: int | None = Field(default=None, gt=0)
    train_size: int | None = Field(default=None, gt=0)
    limit: int | None = Field(default=None, gt=0, description="cap on optimization examples (train + val)")
    seed: int = 0
    optimizer_seed: int | None = Field(
        default=None, description="seed of the optimizer and of the train/val draw (default: seed); the "
        "evaluated instances and folds always follow seed, so agents of several optimizer seeds share them")
    auto: Literal["light", "medium", "heavy"] | None = "light"
    data_dir: Path | None = None
    output_dir: Path = DEFAULT_OUTPUT_DIR
    cache_dir: Path | None = None
    cache: bool = True
    force: bool = False
    max_calls: int | None = Field(default=None, gt=0)
    max_cost: float | None = Field(default=None, gt=0)
    fold: int | None = Field(default=None, ge=0)
    metric: str | None = Field(default=None, description="HELM metric to optimize (default: the run spec's main one)")
    on_overlap: Literal["refuse", "drop"] = "refuse"
    optimizer_options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> OptimizeConfig:
        if self.limit is not None and self.limit < 2:
            raise ValueError("limit must be at least 2 (one training and one validation example)")
        return self

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.output_dir / "cache"

    def public_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"lm", "prompt_lm", "force", "output_dir", "cache_dir"})
        data["lm"] = self.lm.public_dict()
        data["prompt_lm"] = self.prompt_lm.public_dict() if self.prompt_lm else None
        return data
