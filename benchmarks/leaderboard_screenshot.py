"""Open a sweep's HELM leaderboard in a real headless browser and check it lists every method.

Usage::

    python benchmarks/leaderboard_screenshot.py OUTPUT_DIR [--suite SUITE] [--chromium /usr/bin/chromium]

Starts ``helm-server`` for the sweep's suite on a free port (queried only on 127.0.0.1), renders
``#/leaderboard`` in headless Chromium (Debian package ``chromium``), saves
``OUTPUT_DIR/report/leaderboard.png``, and prints, for every deployment of the sweep, whether its
display name appears on the rendered page. Exits 1 when a method is missing, 2 when Chromium or the
suite is absent.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=20000", "--window-size=1400,1000"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chromium(binary: str, url: str, *extra: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
                              capture_output=True, text=True, timeout=120, check=False)
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--suite", default=None)
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = parser.parse_args()
    if not args.chromium:
        print("Chromium not found: apt-get install chromium (Debian), or pass --chromium PATH.")
        return 2
    sweep = json.loads((args.output_dir / "sweep.json").read_text()) if (args.output_dir / "sweep.json").is_file() \
        else {}
    suite = args.suite or sweep.get("suite", "helm-optimizer")
    benchmark_output = args.output_dir / "helm" / "benchmark_output"
    suite_dir = benchmark_output / "runs" / suite
    if not (suite_dir / "schema.json").is_file():
        print(f"No summarized suite at {suite_dir}; run the sweep with summarize: true first.")
        return 2
    schema = json.loads((suite_dir / "schema.json").read_text())
    expected = {m["name"]: m.get("display_name", m["name"]) for m in schema.get("models", [])}
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "helm.benchmark.server", "-p", str(port), "-o",
                               str(benchmark_output), "--suite", suite],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        leaderboard = url + "#/leaderboard"
        started = time.perf_counter()
        dom = _chromium(args.chromium, leaderboard, "--dump-dom")
        shot = args.output_dir / "report" / "leaderboard.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        _chromium(args.chromium, leaderboard, f"--screenshot={shot}")
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"leaderboard: {leaderboard}  (rendered twice in {elapsed:.1f} s)")
    print(f"screenshot:  {shot} ({shot.stat().st_size if shot.exists() else 0} bytes)")
    print(f"{'deployment':55} {'display name':55} on page")
    missing = 0
    for name, display in sorted(expected.items()):
        if name == "helm-optimizer/prompt-builder":
            continue
        found = display in dom
        missing += 0 if found else 1
        print(f"{name:55} {display:55} {'yes' if found else 'NO'}")
    dspy_rows = sum(1 for display in expected.values() if "DSPy" in display and display in dom)
    print(f"DSPy methods listed on the leaderboard: {dspy_rows}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
