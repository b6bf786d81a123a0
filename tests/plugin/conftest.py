"""Fixtures for the HELM plugin tests: one fake server and one prod_env per session, real helm-run.

Each ``helm-run`` subprocess costs 5-10 s of imports, so the fake server and its ``prod_env`` are
shared by every test here, and tests that can run in this process do.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from helm_optimizer.serving.fake import FakeOpenAIServer
from tests.plugin.helpers import lm_dict


@pytest.fixture(scope="session")
def server() -> Iterator[FakeOpenAIServer]:
    """One fake OpenAI-compatible server for the whole session (all answers right)."""
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture(scope="session")
def prod_env(server: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A helm-run --local-path with the baseline deployment of MODEL on the fake server."""
    from helm_optimizer.helm.deployments import DeploymentSet, baseline_deployment, core_set, write_prod_env

    path = tmp_path_factory.mktemp("prod_env")
    out = DeploymentSet(tokenizer_configs=list(core_set().tokenizer_configs))
    out.extend(baseline_deployment(lm_dict(server.api_base)))
    write_prod_env(path, out)
    return path


@pytest.fixture
def helm_state(tmp_path: Path) -> Iterator[None]:
    """Undo what in-process plugin imports from ``tmp_path`` leave behind (modules, run specs, sys.path)."""
    from helm.benchmark.run_spec import _REGISTERED_RUN_SPEC_FUNCTIONS

    from helm_optimizer.helm import loading

    path_before = list(sys.path)
    modules_before = set(sys.modules)
    yield
    root = str(tmp_path.resolve())

    def ours(module: ModuleType | None) -> bool:
        file = getattr(module, "__file__", None)
        return bool(file) and str(Path(file).resolve()).startswith(root)

    dropped = {name for name in set(sys.modules) - modules_before if ours(sys.modules.get(name))}
    for name in dropped:
        del sys.modules[name]
    for spec_name, func in list(_REGISTERED_RUN_SPEC_FUNCTIONS.items()):
        if getattr(func, "__module__", None) in dropped:
            del _REGISTERED_RUN_SPEC_FUNCTIONS[spec_name]
            loading._run_spec_origins.pop(spec_name, None)
    for key, module in list(loading._loaded_plugins.items()):
        if module.__name__ in dropped:
            del loading._loaded_plugins[key]
    sys.path[:] = [p for p in sys.path if p in path_before or not p.startswith(root)]
