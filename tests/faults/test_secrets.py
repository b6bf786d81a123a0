"""A whole sweep with a sentinel API key: not one file it writes contains the key."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.faults.conftest import Reference
from tests.faults.procs import KEY_ENV, SENTINEL_KEY


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []


def test_sentinel_key_is_in_no_file_the_sweep_wrote(reference: Reference) -> None:
    # The reference sweep ran with KEY_ENV=SENTINEL_KEY, api_key_env naming it, and -vv (debug logs).
    assert KEY_ENV in reference.config.read_text()
    scanned = {
        "output dir": _files(reference.output_dir),  # agents, meta, records, report, HELM runs, prod_env, caches, logs
        "HELM_OPTIMIZER_CACHE_DIR": _files(reference.cache_dir),  # (a sweep caches under the output dir)
        "console output": [reference.config.parent / "child.log"],
        # where HELM is pointed while building prompts, outside the output directory
        "prompt-builder prod_env": [p for d in Path(tempfile.gettempdir()).glob("helm-optimizer-prod-env*")
                                    for p in _files(d)],
    }
    kinds = {p.parent.name for p in scanned["output dir"]} | {p.suffix for p in scanned["output dir"]}
    assert {".json", ".log", "logs", "prod_env"} <= kinds, kinds  # the scan saw every kind of output
    assert any("cache" in p.parts for p in scanned["output dir"])  # LM caches included
    leaks = [str(p) for files in scanned.values() for p in files if SENTINEL_KEY.encode() in p.read_bytes()]
    assert leaks == []
    assert SENTINEL_KEY not in reference.output
