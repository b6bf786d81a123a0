"""Calls our HELM clients refuse (a budget spent, a sweep stopping) end the HELM run instead of being retried.

HELM's ``AutoClient`` retries every exception a client raises, four more times with 10–80 s waits,
unless it is HELM's public ``NonRetriableException``. A refused call would be refused again: inside
a client, :func:`final_for_helm` turns our :class:`~helm_optimizer.errors.BudgetExceededError` into
:class:`RefusedByBudget`, which is both, so HELM stops the run at once and our callers still see a
budget error with its message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from helm.proxy.retry import NonRetriableException

from helm_optimizer.errors import BudgetExceededError

__all__ = ["RefusedByBudget", "final_for_helm"]


class RefusedByBudget(BudgetExceededError, NonRetriableException):
    """A call refused by a budget or a stopping sweep, raised inside HELM (which must not retry it)."""


@contextlib.contextmanager
def final_for_helm() -> Iterator[None]:
    """Re-raise a :class:`BudgetExceededError` of the block as :class:`RefusedByBudget`."""
    try:
        yield
    except RefusedByBudget:
        raise
    except BudgetExceededError as exc:
        raise RefusedByBudget(str(exc)) from exc
