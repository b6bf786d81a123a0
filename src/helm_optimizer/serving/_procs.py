"""Local ports, health probes and process checks for the embedded server (127.0.0.1 only)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["HOST", "default_threads", "free_port", "get_json", "pid_alive", "port_in_use"]

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as llama.cpp binds
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
        return False


# 127.0.0.1 must never go through an HTTP proxy taken from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get_json(url: str, timeout: float = 2.0) -> Any:
    """The JSON body of a 200 answer to GET ``url``, or None for any other outcome."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            if response.status != 200:
                return None
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie still answers kill(pid, 0)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return "Z" not in line.split()[1]
    return True


def default_threads() -> int:
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        available = os.cpu_count() or 2
    return max(1, min(available, 8))  # decoding a small model gains little past 8 threads
