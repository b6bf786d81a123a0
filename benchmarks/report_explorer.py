"""The report's instance explorer in headless Chromium: a screenshot, and how it copes with thousands of rows.

Usage::

    python benchmarks/report_explorer.py OUTPUT_DIR [--hash 'flip=up'] [--rows 3000] [--chromium PATH]

Cuts the ``<section id="instances">`` out of ``OUTPUT_DIR/report/report.html`` into a page of its
own, renders it in headless Chromium (Debian package ``chromium``) opened as
``#instances:<hash>``, saves ``OUTPUT_DIR/report/explorer.png`` and prints how many grid rows the
browser drew. Then it builds a synthetic explorer of ``--rows`` rows × 5 methods (answers,
reasoning and prompts of realistic length) and prints its page size and Chromium's time to load it
and draw the first page of the grid. Exits 2 when Chromium or the report is absent.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helm_optimizer.report.explorer import ExplorerData, render_explorer

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--virtual-time-budget=15000"]


def _chromium(binary: str, url: str, *extra: str) -> tuple[str, float]:
    with tempfile.TemporaryDirectory() as profile:
        started = time.perf_counter()
        done = subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *extra, url], capture_output=True,
                              text=True, timeout=300, check=False)
        return done.stdout, time.perf_counter() - started


def _page(section: str) -> str:
    return f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>body{{font-family:sans-serif;margin:1rem}}' \
           f"table{{border-collapse:collapse;font-size:.85rem}}th,td{{border:1px solid #ddd;padding:.2rem .4rem}}" \
           f"</style></head><body>{section}</body></html>"


def _synthetic(rows: int, seed: int = 0) -> ExplorerData:
    rng = random.Random(seed)
    methods = ["baseline", "ZeroShotPredict", "ZeroShotCoT", "BootstrapFewShotWithRandomSearch", "MIPROv2"]
    words = ["the", "patient", "presents", "with", "acute", "pain", "fever", "and", "elevated", "markers"]

    def text(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    data = []
    for i in range(rows):
        cells = {}
        for k in range(len(methods)):
            cells[str(k)] = [float(rng.random() < 0.5), rng.choice("ABCD"), text(80) if k >= 2 else None,
                             text(60) + "\nAnswer:"]
        data.append({"s": 0, "m": i % 2, "id": f"id{i}", "q": text(50), "g": "B. " + text(6), "c": cells})
    payload = {"scenarios": ["synthetic"], "models": ["model-a", "model-b"], "methods": methods,
               "metrics": {"synthetic": "exact_match"}, "baseline": 0, "right_at": 0.5,
               "prefixes": {f"0|{m}|{k}": text(200) + "\n" for m in range(2) for k in range(len(methods))},
               "rows": data}
    return ExplorerData(payload)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--hash", default="flip=up")
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = parser.parse_args()
    if not args.chromium:
        print("Chromium not found: apt-get install chromium (Debian), or pass --chromium PATH.")
        return 2
    report = args.output_dir / "report" / "report.html"
    if not report.is_file():
        print(f"No report at {report}; run `helm-optimizer report {args.output_dir}` first.")
        return 2
    match = re.search(r'<section id="instances">.*?</section>', report.read_text(encoding="utf-8"), re.S)
    if not match:
        print(f"{report} has no instance explorer.")
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        page = Path(scratch) / "explorer.html"
        page.write_text(_page(match.group(0)), encoding="utf-8")
        url = f"{page.as_uri()}#instances:{args.hash}"
        dom, seconds = _chromium(args.chromium, url, "--dump-dom")
        shot = args.output_dir / "report" / "explorer.png"
        _chromium(args.chromium, url, f"--screenshot={shot}", "--window-size=1400,1400")
        grid = dom[dom.find('id="ix-grid"'):dom.find('id="instance-detail"')]
        print(f"report explorer: {len(re.findall(r'<tr data-id=', grid))} grid rows drawn for #instances:"
              f"{args.hash} in {seconds:.1f} s; screenshot {shot} ({shot.stat().st_size if shot.is_file() else 0} "
              "bytes)")
        big = Path(scratch) / "synthetic.html"
        big.write_text(_page(render_explorer(_synthetic(args.rows))), encoding="utf-8")
        dom, seconds = _chromium(args.chromium, big.as_uri(), "--dump-dom")
        drawn = len(re.findall(r"<tr data-id=", dom[dom.find('id="ix-grid"'):]))
        print(f"synthetic explorer: {args.rows} rows x 5 methods, page {big.stat().st_size / 1e6:.1f} MB; Chromium "
              f"loaded it and drew {drawn} rows (first page) in {seconds:.1f} s (process start included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
