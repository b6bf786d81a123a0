"""Imported once by the forkserver that a sweep's HELM worker processes fork from.

HELM, DSPy and HELM's configs take seconds of CPU to load; done here once, every worker forked
afterwards starts warm. Importing this module has no other effect.
"""

from __future__ import annotations

import contextlib

with contextlib.suppress(Exception):  # a failure must not kill the forkserver: workers then load lazily
    import dspy  # noqa: F401

    import helm_optimizer.evaluate
    import helm_optimizer.sweep.run  # noqa: F401
    from helm_optimizer.helm.loading import prepare_helm

    prepare_helm()
