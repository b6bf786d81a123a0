"""Preloaded by the test forkserver: HELM, DSPy and the CLI imported once, then forked per run.

A fresh ``python -m helm_optimizer.cli.main`` spends ~10 s importing HELM and parsing its
configs before any work; children forked from this warm process start in ~0.1 s, with none of the
pytest process's state (registered HELM deployments, DSPy caches, threads). Also the child
entry point, with optional simulated file-system faults (a read-only directory, a full disk) for
the cases where chmod cannot help (tests running as root).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import sys
from typing import Any

try:  # a failure here must not kill the forkserver; the child then imports lazily
    from helm_optimizer.helm.loading import prepare_helm

    prepare_helm()
    import dspy  # noqa: F401

    import helm_optimizer.cli.main
    import helm_optimizer.evaluate
    import helm_optimizer.optimize
    import helm_optimizer.sweep.run  # noqa: F401
except Exception:  # pragma: no cover
    pass


def _under(path: Any, roots: tuple[str, ...]) -> bool:
    try:
        real = os.path.realpath(os.fspath(path))
    except TypeError:
        return False
    return any(real == root or real.startswith(root + os.sep) for root in roots)


def install_fault(kind: str, roots: list[str]) -> None:
    """Make writes under ``roots`` fail like a read-only directory (``readonly``) or a full disk (``full``)."""
    real_roots = tuple(os.path.realpath(r) for r in roots)
    code = errno.EACCES if kind == "readonly" else errno.ENOSPC

    def fail(path: Any) -> OSError:
        return OSError(code, os.strerror(code), os.fspath(path))

    if kind == "full":
        real_fsync = os.fsync

        def fsync(fd: Any) -> None:
            number = fd if isinstance(fd, int) else fd.fileno()
            target = ""
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/self/fd/{number}")
            if target and _under(target, real_roots):
                raise fail(target)
            real_fsync(fd)

        os.fsync = fsync
        return
    if kind != "readonly":
        raise ValueError(f"unknown fault {kind!r}")
    real_open, real_replace, real_rename, real_mkdir = os.open, os.replace, os.rename, os.mkdir
    real_unlink, real_builtin_open = os.unlink, builtins.open
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & writing and _under(path, real_roots):
            raise fail(path)
        return real_open(path, flags, *args, **kwargs)

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if _under(dst, real_roots) or _under(src, real_roots):
            raise fail(dst)
        real_replace(src, dst, *args, **kwargs)

    def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if _under(dst, real_roots) or _under(src, real_roots):
            raise fail(dst)
        real_rename(src, dst, *args, **kwargs)

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if _under(path, real_roots) and not os.path.isdir(path):
            raise fail(path)
        real_mkdir(path, *args, **kwargs)

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        if _under(path, real_roots):
            raise fail(path)
        real_unlink(path, *args, **kwargs)

    def builtin_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | bytes | os.PathLike) and any(c in mode for c in "wax+") and _under(
                file, real_roots):
            raise fail(file)
        return real_builtin_open(file, mode, *args, **kwargs)

    os.open, os.replace, os.rename, os.mkdir, os.unlink = os_open, replace, rename, mkdir, unlink
    builtins.open = builtin_open
    io.open = builtin_open


def cli_child(argv: list[str], env: dict[str, str | None], log_path: str | None,
              fault: tuple[str, list[str]] | None) -> None:
    """Body of a forked run: set the environment, redirect output, inject a fault, run the CLI."""
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if log_path is not None:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    if fault is not None:
        install_fault(*fault)
    from helm_optimizer.cli.main import main

    try:
        main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
