"""Exception hierarchy.

Every error a user can cause derives from :class:`HelmOptimizerError`. Its message is one line that
names the problem and the fix; the CLI prints it and exits with :attr:`HelmOptimizerError.exit_code`.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "AgentError",
    "AgentExistsError",
    "BudgetExceededError",
    "ConfigError",
    "DataError",
    "HelmOptimizerError",
    "HelmRunError",
    "LeakageError",
    "LockedError",
    "ModelError",
    "PluginError",
    "ServerError",
    "UnknownNameError",
    "caused_by",
]


class HelmOptimizerError(Exception):
    """Base class of the errors this package raises on bad input or an unusable environment."""

    exit_code: int = 2


class UnknownNameError(HelmOptimizerError, LookupError):
    """A name (optimizer, scenario, model, method) that no registry knows."""

    def __str__(self) -> str:  # LookupError would quote the message otherwise
        return str(self.args[0]) if self.args else ""


class ConfigError(HelmOptimizerError, ValueError):
    """A configuration file or option that cannot be used as written."""


class DataError(HelmOptimizerError):
    """A data file that is missing, empty or malformed, or a split with no instances."""


class LeakageError(DataError):
    """Optimization data overlaps the test split."""


class ModelError(HelmOptimizerError):
    """A model that cannot be reached or configured (missing key, unreachable api base)."""


class ServerError(HelmOptimizerError):
    """A local model server that could not start."""


class AgentError(HelmOptimizerError):
    """An agent file that cannot be read or used."""


class AgentExistsError(AgentError):
    """An agent already exists where a run would write one."""


class BudgetExceededError(HelmOptimizerError):
    """A run reached its --max-calls or --max-cost limit."""

    exit_code = 3


class PluginError(HelmOptimizerError):
    """A HELM plugin that failed to import or registered a clashing name."""


class HelmRunError(HelmOptimizerError):
    """A HELM evaluation run that failed."""


class LockedError(HelmOptimizerError):
    """Another process holds the output directory."""


def caused_by(exc: BaseException, match: type[BaseException] | Callable[[BaseException], bool]) -> bool:
    """Whether ``exc`` or anything in its ``__cause__`` / ``__context__`` chain matches."""
    test = (lambda e: isinstance(e, match)) if isinstance(match, type) else match
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if test(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
