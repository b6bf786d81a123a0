"""Figures for the embedded llama.cpp model (``local/smollm2``): not a test, prints a table.

    .venv/bin/python benchmarks/embedded_model.py [--model local/smollm2] [--calls 20] [--starts 3]

Measures start-up (spawn to healthy), prompt and decode tokens/s (wall clock and llama.cpp's own
``timings``), aggregate decode throughput with concurrent requests, the child's resident memory, and
how often a DSPy ``ChainOfThought("inputs -> output")`` call returns a non-empty ``output`` without
raising, with ``dspy.ChatAdapter()`` (with and without its JSON fallback) and with structured output
(``correct``: the gold letter, or the gold choice's text and no other choice's).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from helm_optimizer._env import prepare_offline_environment
from helm_optimizer.serving.embedded import EmbeddedServer
from helm_optimizer.serving.models import dspy_model_name

QUESTIONS: list[tuple[str, list[str], str]] = [
    ("What is the capital of France?", ["Berlin", "Paris", "Rome", "Madrid"], "B"),
    ("How many legs does a spider have?", ["6", "8", "10", "4"], "B"),
    ("Which planet is known as the Red Planet?", ["Venus", "Jupiter", "Mars", "Saturn"], "C"),
    ("What is 7 + 5?", ["12", "13", "11", "14"], "A"),
    ("Which gas do plants absorb from the air?", ["Oxygen", "Nitrogen", "Helium", "Carbon dioxide"], "D"),
    ("What is the largest ocean on Earth?", ["Atlantic", "Indian", "Pacific", "Arctic"], "C"),
    ("Which animal is a mammal?", ["Shark", "Dolphin", "Trout", "Octopus"], "B"),
    ("What is the boiling point of water at sea level in Celsius?", ["50", "90", "100", "120"], "C"),
    ("Who wrote 'Romeo and Juliet'?", ["Dickens", "Shakespeare", "Austen", "Tolstoy"], "B"),
    ("What is 9 times 3?", ["27", "24", "21", "30"], "A"),
    ("Which is the smallest prime number?", ["0", "1", "2", "3"], "C"),
    ("What color do you get by mixing blue and yellow?", ["Green", "Purple", "Orange", "Red"], "A"),
    ("Which continent is Egypt in?", ["Asia", "Europe", "South America", "Africa"], "D"),
    ("How many days are in a leap year?", ["365", "366", "364", "360"], "B"),
    ("What is the chemical symbol for gold?", ["Ag", "Gd", "Au", "Go"], "C"),
    ("Which instrument has 88 keys?", ["Guitar", "Piano", "Violin", "Flute"], "B"),
    ("What is the freezing point of water in Fahrenheit?", ["0", "32", "100", "212"], "B"),
    ("Which organ pumps blood through the body?", ["Lung", "Liver", "Heart", "Kidney"], "C"),
    ("What is 15 minus 6?", ["8", "9", "7", "10"], "B"),
    ("Which language is mainly spoken in Brazil?", ["Spanish", "Portuguese", "French", "English"], "B"),
]


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=600) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def _chat(server: EmbeddedServer, prompt: str, max_tokens: int, **extra: Any) -> tuple[dict[str, Any], float]:
    body = {
        "model": server.model_alias,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "cache_prompt": False,
        **extra,
    }
    started = time.perf_counter()
    answer = _post(f"{server.api_base}/chat/completions", body)
    return answer, time.perf_counter() - started


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _structured_adapter() -> Any:
    from dspy.adapters.json_adapter import JSONAdapter, _get_structured_outputs_response_format

    class StructuredJSONAdapter(JSONAdapter):  # type: ignore[misc]
        def _prepare_response_format(self, lm: Any, lm_kwargs: dict[str, Any], signature: Any) -> None:
            lm_kwargs["response_format"] = _get_structured_outputs_response_format(
                signature, self.use_native_function_calling
            )

    return StructuredJSONAdapter()


def _is_correct(output: str, choices: list[str], gold: str) -> bool:
    """The gold letter ("B", "B.", "(B)") or the gold choice's text, and no other choice's text."""
    letter = re.match(r"^\(?([A-D])\)?(?:[.):]|$)", output)
    if letter:
        return letter.group(1) == gold
    named = {i for i, choice in enumerate(choices) if choice.lower() in output.lower()}
    return named == {"ABCD".index(gold)}


def _parse_rate(server: EmbeddedServer, adapter: Any, calls: int) -> dict[str, float]:
    import dspy

    lm = dspy.LM(
        dspy_model_name(server.model),
        api_base=server.api_base,
        api_key="local",
        temperature=0.0,
        max_tokens=256,
        cache=False,
        num_retries=0,
    )
    program = dspy.ChainOfThought("inputs -> output")

    def one(item: tuple[str, list[str], str]) -> tuple[bool, bool, float]:
        question, choices, gold = item
        letters = "ABCD"
        text = question + "\n" + "\n".join(f"{letters[i]}. {c}" for i, c in enumerate(choices))
        text += "\nAnswer with the letter of the correct choice."
        started = time.perf_counter()
        try:
            with dspy.context(lm=lm, adapter=adapter):
                output = program(inputs=text).output
        except Exception:
            return False, False, time.perf_counter() - started
        output = str(output or "").strip()
        return bool(output), _is_correct(output, choices, gold), time.perf_counter() - started

    items = [QUESTIONS[i % len(QUESTIONS)] for i in range(calls)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=server.parallel) as pool:
        results = list(pool.map(one, items))
    return {
        "parsed": sum(r[0] for r in results),
        "correct": sum(r[1] for r in results),
        "mean_latency": statistics.mean(r[2] for r in results),
        "wall": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    prepare_offline_environment()
    log_dir = Path(tempfile.mkdtemp(prefix="embedded-bench-"))
    rows: list[tuple[str, str]] = []

    startups = []
    for _ in range(args.starts):
        with EmbeddedServer(args.model, parallel=args.parallel, log_dir=log_dir) as server:
            assert server.startup_seconds is not None
            startups.append(server.startup_seconds)
    rows.append(("start-up, spawn to healthy (s)", " / ".join(f"{s:.2f}" for s in startups)))

    with EmbeddedServer(args.model, parallel=args.parallel, log_dir=log_dir) as server:
        assert server.pid is not None
        rss_idle = _rss_mb(server.pid)
        _chat(server, "Say hello.", 8)  # warm-up

        story = "Write a long, detailed story about a lighthouse keeper and a storm."
        answer, wall = _chat(server, story, 512, ignore_eos=True)
        tokens = answer["usage"]["completion_tokens"]
        rows.append(("decode, 1 request: completion_tokens / wall (tok/s)", f"{tokens / wall:.1f} ({tokens} tok)"))
        rows.append(
            (
                "decode, 1 request: server predicted_per_second",
                f"{answer['timings']['predicted_per_second']:.1f}",
            )
        )

        long_prompt = "Summarize the following notes in one sentence.\n" + "\n".join(
            f"Note {i}: the {q[0].lower()} The options were {', '.join(q[1])}." for i, q in enumerate(QUESTIONS * 2)
        )
        answer, _ = _chat(server, long_prompt, 1)
        timings = answer["timings"]
        rows.append(
            (
                "prompt, server prompt_per_second",
                f"{timings['prompt_per_second']:.1f} ({timings['prompt_n']} tok)",
            )
        )

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            answers = list(pool.map(lambda _: _chat(server, story, 256, ignore_eos=True)[0], range(args.parallel)))
        wall = time.perf_counter() - started
        total = sum(a["usage"]["completion_tokens"] for a in answers)
        rows.append((f"decode, {args.parallel} concurrent: total tokens / wall (tok/s)", f"{total / wall:.1f}"))
        rows.append(("child RSS idle / after requests (MB)", f"{rss_idle:.0f} / {_rss_mb(server.pid):.0f}"))

        import dspy

        adapters = [
            ("dspy.ChatAdapter() (default, JSON fallback)", dspy.ChatAdapter()),
            (
                "dspy.ChatAdapter(use_json_adapter_fallback=False)",
                dspy.ChatAdapter(use_json_adapter_fallback=False),
            ),
            ("StructuredJSONAdapter (json_schema)", _structured_adapter()),
        ]
        for label, adapter in adapters:
            result = _parse_rate(server, adapter, args.calls)
            rows.append(
                (
                    f"DSPy CoT parsed / correct of {args.calls}: {label}",
                    f"{result['parsed']:.0f} / {result['correct']:.0f} "
                    f"(mean {result['mean_latency']:.1f} s/call, {result['wall']:.0f} s wall)",
                )
            )

    width = max(len(k) for k, _ in rows)
    print(f"\nEmbedded model {args.model} (python {sys.version.split()[0]}, logs in {log_dir})")
    print(f"{'measure'.ljust(width)}  value")
    print(f"{'-' * width}  {'-' * 30}")
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
