"""Loading HELM and its plugins the way ``helm-run`` does, but with errors instead of warnings.

``helm-run`` logs a warning and carries on when a plugin fails to import, reports an unknown
``class_name`` deep inside a run, and cannot tell which two plugins registered the same run spec
name. Here each of those is a :class:`PluginError` naming the module and the cause, raised before
any model is called.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from helm_optimizer._env import prepare_nltk
from helm_optimizer.errors import PluginError, UnknownNameError
from helm_optimizer.registry import did_you_mean

__all__ = [
    "OWN_PLUGIN",
    "check_class_name",
    "declared_run_spec_names",
    "discover_run_specs",
    "extend_run_specs_namespace",
    "get_run_spec_function",
    "import_plugins",
    "load_entry_point_plugins",
    "prepare_helm",
    "run_spec_names",
    "validate_run_spec_classes",
]

logger = logging.getLogger(__name__)

_lock = threading.RLock()
_builtins_registered = False
_loaded_plugins: dict[str, ModuleType] = {}
_run_spec_origins: dict[str, str] = {}  # run spec name -> the plugin that registered it (through this module)
OWN_PLUGIN = "helm_optimizer.plugin.helm_entry"
_DUPLICATE_RE = re.compile(r"A run spec function with name (\S+) already exists")


def prepare_helm(*, plugins: Sequence[str] = (), local_path: str | os.PathLike[str] | None = None,
                 entry_points_group: str | None = "helm") -> None:
    """Make HELM ready in this process: offline settings, built-in configs, our plugin, other plugins.

    Idempotent; plugins already imported are not imported again.
    """
    global _builtins_registered
    prepare_nltk()
    with _lock:
        if not _builtins_registered:
            from helm.benchmark.config_registry import register_builtin_configs_from_helm_package

            with _libyaml_safe_load():
                register_builtin_configs_from_helm_package()
            _builtins_registered = True
        if OWN_PLUGIN not in _loaded_plugins:
            # Our own HELM plugin (deployments, run specs), loaded by name like any other plugin, so
            # that it is there even where the package's entry point is not installed.
            _loaded_plugins[OWN_PLUGIN] = _import_one(OWN_PLUGIN, what="helm-optimizer's HELM plugin")
        if local_path is not None:
            _register_local_configs(Path(local_path))
        if entry_points_group:
            load_entry_point_plugins(entry_points_group)
        extend_run_specs_namespace()
        if plugins:
            import_plugins(plugins)


@contextlib.contextmanager
def _libyaml_safe_load() -> Iterator[None]:
    """Parse HELM's large built-in config YAML with libyaml's C loader (same safe semantics).

    HELM calls ``yaml.safe_load``, the pure-Python loader: ~3 s of every start-up on this machine.
    """
    import yaml

    if not getattr(yaml, "__with_libyaml__", False):
        yield
        return
    original = yaml.safe_load

    def c_safe_load(stream: Any) -> Any:
        return yaml.load(stream, Loader=yaml.CSafeLoader)

    yaml.safe_load = c_safe_load
    try:
        yield
    finally:
        yaml.safe_load = original


_local_paths_registered: set[str] = set()


def _register_local_configs(path: Path) -> None:
    key = str(path.resolve())
    if key in _local_paths_registered:
        return
    _local_paths_registered.add(key)
    from helm.benchmark.config_registry import register_configs_from_directory

    register_configs_from_directory(str(path))


def _import_one(spec: str, *, what: str) -> ModuleType:
    """Import a module name or a ``.py`` path; any failure becomes a PluginError naming it."""
    discover_run_specs()  # HELM's own run specs first, so a plugin reusing one of their names is caught here
    is_path = "/" in spec or "\\" in spec or spec.endswith(".py") or os.path.exists(spec)
    try:
        module = _import_path(spec, what=what) if is_path else importlib.import_module(spec)
    except PluginError:
        raise
    except Exception as exc:
        raise _import_error(exc, spec, what=what) from exc
    added = sorted(declared_run_spec_names(module))
    for name in added:
        _run_spec_origins[name] = f"{what} {spec!r}"
    if added:
        logger.debug("%s %s registered run specs %s", what, spec, added)
    return module


def _import_path(spec: str, *, what: str) -> ModuleType:
    """Import a ``.py`` file as HELM does (``ubelt.import_module_from_path``), keeping its root on sys.path.

    ubelt puts the file's import root (its directory, or the directory above its package) on
    ``sys.path`` only while the file itself executes. A sibling module imported later (inside a run
    spec function, or named in a ``class_name``) would then not be found. Keeping the root on
    ``sys.path`` (appended, so it never shadows installed packages) makes both work.
    """
    import ubelt

    path = Path(spec)
    if not path.is_file():
        raise PluginError(f"{what} {spec!r} is not a file; give a module name or the path of a .py file.")
    root, _ = ubelt.split_modpath(str(path.resolve()))
    if root not in sys.path:
        sys.path.append(root)
        importlib.invalidate_caches()
        logger.debug("Added %s (the import root of plugin %s) to sys.path", root, spec)
    module: ModuleType = ubelt.import_module_from_path(str(path.resolve()))
    loaded_from = getattr(module, "__file__", None)
    if loaded_from is None or Path(loaded_from).resolve() != path.resolve():
        # ubelt imports by module name: another module of that name (an installed one, or a plugin
        # file with the same name in another directory) wins silently.
        raise PluginError(
            f"{what} {spec!r} was not imported: its module name '{module.__name__}' is already taken by "
            f"{loaded_from or 'a built-in module'}; rename the file."
        )
    return module


def _root_cause(exc: BaseException) -> BaseException:
    """The exception behind ubelt's ``RuntimeError('ERROR: Failed to import ...')`` wrapper."""
    current = exc
    seen: set[int] = set()
    while (isinstance(current, RuntimeError) and str(current).startswith("ERROR: Failed to import")
           and id(current) not in seen):
        seen.add(id(current))
        inner = current.__cause__ or current.__context__
        if inner is None:
            break
        current = inner
    return current


def _import_error(exc: BaseException, spec: str, *, what: str) -> PluginError:
    from helm.benchmark.run_spec import get_run_spec_function as helm_get

    cause = _root_cause(exc)
    match = _DUPLICATE_RE.search(str(cause))
    if isinstance(cause, ValueError) and match:
        name = match.group(1)
        first = helm_get(name)
        first_module = getattr(first, "__module__", "?")
        origin = _run_spec_origins.get(name)
        first_desc = f"module {first_module}" + (f" ({origin})" if origin else "")
        return PluginError(
            f"Run spec '{name}' is registered twice: by {first_desc} and by {what} {spec!r}; "
            "rename one of the two run spec functions."
        )
    message = _one_line(cause)
    if isinstance(cause, ModuleNotFoundError):
        return PluginError(f"{what} {spec!r} failed to import: {message}; check the name, install its package "
                           "or add its directory to PYTHONPATH.")
    return PluginError(f"{what} {spec!r} failed to import: {type(cause).__name__}: {message}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else repr(exc)


def discover_run_specs() -> None:
    """Import every module of HELM's run spec package (as HELM does), naming the module that fails.

    HELM imports them all whenever it looks a run spec up; a module that fails to import (or
    registers a name twice) then surfaces as a bare exception naming no module.
    """
    import pkgutil

    import helm.benchmark.run_specs as run_specs_pkg

    for info in pkgutil.iter_modules(run_specs_pkg.__path__, run_specs_pkg.__name__ + "."):
        if info.name in sys.modules:
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            where = getattr(info.module_finder, "path", "?")
            raise _import_error(exc, info.name, what=f"Run spec module (from {where})") from exc


def import_plugins(paths_or_names: Iterable[str]) -> list[ModuleType]:
    """Import ``helm-run --plugins`` style plugins (module names or ``.py`` paths)."""
    modules = []
    for spec in paths_or_names:
        with _lock:
            if spec in _loaded_plugins:
                modules.append(_loaded_plugins[spec])
                continue
            module = _import_one(spec, what="Plugin")
            _loaded_plugins[spec] = module
            modules.append(module)
    return modules


def load_entry_point_plugins(group: str = "helm") -> list[Any]:
    """Load every entry point of ``group``; a failing one is an error naming it and its cause."""
    loaded = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        key = f"entry-point:{group}:{ep.name}"
        with _lock:
            if key in _loaded_plugins:
                continue
            module_name = ep.value.split(":", 1)[0]
            module = _import_one(module_name, what=f"HELM plugin entry point '{ep.name}' ->")
            _loaded_plugins[key] = module
            loaded.append(module)
    return loaded


def extend_run_specs_namespace() -> list[str]:
    """Add every ``helm/benchmark/run_specs`` directory on ``sys.path`` to HELM's run spec package.

    HELM discovers run specs by iterating ``helm.benchmark.run_specs.__path__``. That package is a
    regular package (it has an ``__init__.py``), so Python does not merge a second
    ``helm/benchmark/run_specs`` directory found on ``PYTHONPATH`` or in an editable install into it:
    only files that land in HELM's own directory (a regular wheel install into the same
    site-packages) are found. Extending ``__path__`` makes the documented namespace method work for
    every install style. Returns the directories added.
    """
    import helm.benchmark.run_specs as run_specs_pkg

    current = [os.path.realpath(p) for p in run_specs_pkg.__path__]
    added = []
    for entry in sys.path:
        candidate = os.path.join(entry or os.getcwd(), "helm", "benchmark", "run_specs")
        if os.path.isdir(candidate) and os.path.realpath(candidate) not in current:
            run_specs_pkg.__path__.append(candidate)
            current.append(os.path.realpath(candidate))
            added.append(candidate)
    if added:
        logger.debug("Added run spec directories to HELM's namespace: %s", added)
    return added


def declared_run_spec_names(module: ModuleType) -> set[str]:
    """Names that ``module`` registers with HELM's ``@run_spec_function("NAME")`` decorator.

    HELM offers no public listing of its run spec registry, so the names are read from the
    decorators in the module's source; a name built at run time is not listed (it still works
    when given).
    """
    path = getattr(module, "__file__", None)
    if not path or not str(path).endswith(".py"):
        return set()
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and decorator.args):
                continue
            func = decorator.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            first = decorator.args[0]
            if called == "run_spec_function" and isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value)
    return names


def run_spec_names() -> list[str]:
    """Every run spec name HELM knows in this process (HELM's own, plugins', the namespace's)."""
    from helm.benchmark.run_spec import discover_run_spec_functions, run_spec_function
    from helm.benchmark.run_spec import get_run_spec_function as helm_get

    discover_run_spec_functions()
    names: set[str] = set()
    for module in list(sys.modules.values()):
        if isinstance(module, ModuleType) and getattr(module, "run_spec_function", None) is run_spec_function:
            names |= declared_run_spec_names(module)
    return sorted(name for name in names if helm_get(name) is not None)


def get_run_spec_function(name: str) -> Any:
    """HELM's run spec function for ``name``, or UnknownNameError suggesting close names."""
    from helm.benchmark.run_spec import get_run_spec_function as helm_get

    try:
        func = helm_get(name)
    except ValueError as exc:
        raise PluginError(f"Loading HELM run specs failed: {exc}") from exc
    if func is None:
        known = run_spec_names()
        raise UnknownNameError(
            f"Unknown scenario (HELM run entry) '{name}'.{did_you_mean(name, known)} "
            "Run `helm-optimizer scenarios list`, or load the plugin that defines it with --plugins."
        )
    return func


def check_class_name(class_name: str, *, role: str) -> None:
    """Import ``class_name`` now; an error names the class, the module tried and the cause."""
    module_name, _, attr = class_name.rpartition(".")
    if not module_name:
        raise PluginError(f"{role} class_name '{class_name}' is not fully qualified (module.Class).")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise PluginError(
            f"{role} class '{class_name}': module '{module_name}' could not be imported "
            f"({type(exc).__name__}: {exc}); install it or add its directory to PYTHONPATH."
        ) from exc
    if not hasattr(module, attr):
        known = [n for n in dir(module) if not n.startswith("_")]
        raise PluginError(
            f"{role} class '{class_name}': module '{module_name}' has no attribute '{attr}'."
            f"{did_you_mean(attr, known)}"
        )


def validate_run_spec_classes(run_spec: Any) -> None:
    """Import every class a run spec names (scenario, metrics, annotators) before running it."""
    check_class_name(run_spec.scenario_spec.class_name, role=f"Scenario of run spec '{run_spec.name}'")
    for metric_spec in run_spec.metric_specs:
        check_class_name(metric_spec.class_name, role=f"Metric of run spec '{run_spec.name}'")
    for annotator in run_spec.annotators or []:
        check_class_name(annotator.class_name, role=f"Annotator of run spec '{run_spec.name}'")
