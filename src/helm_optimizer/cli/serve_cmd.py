"""``helm-optimizer serve``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from helm_optimizer.cli._common import console, setup_logging

HELP = (
    "Serve a model on 127.0.0.1 until Ctrl-C: the embedded default model (an OpenAI-compatible llama.cpp "
    "server for local/smollm2) or, with --fake, the scripted fake server used by tests and benchmarks."
)


def serve(
    model: Annotated[str, typer.Option("--model", help="Embedded model to serve.")] = "local/smollm2",
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="Port (default: a free one).")] = None,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="Parallel request slots.")] = 4,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads for the model.")] = None,
    ctx_per_slot: Annotated[int | None, typer.Option("--ctx-per-slot", min=256, help="Tokens (prompt + answer) "
                                                     "each slot holds (default 4096 for local/smollm2).")] = None,
    log_dir: Annotated[Path | None, typer.Option("--log-dir")] = None,
    fake: Annotated[bool, typer.Option("--fake", help="Serve the scripted fake model instead.")] = False,
    latency: Annotated[float, typer.Option("--latency", min=0.0, help="Fake: seconds added per answer.")] = 0.0,
    accuracy: Annotated[float, typer.Option("--accuracy", min=0.0, max=1.0, help="Fake: share of right "
                                            "answers.")] = 1.0,
    failure_rate: Annotated[float, typer.Option("--failure-rate", min=0.0, max=1.0, help="Fake: share of "
                                                "attempts answered 429/500/hang.")] = 0.0,
    answers: Annotated[Path | None, typer.Option("--answers", help="Fake: JSON {question: gold}.")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    setup_logging(None, verbose=max(verbose, 1))
    if fake:
        import json

        from helm_optimizer.serving.fake import FakeOpenAIServer, FakeServerConfig

        key = json.loads(answers.read_text(encoding="utf-8")) if answers else {}
        server = FakeOpenAIServer(FakeServerConfig(answers=key, accuracy=accuracy, latency=latency,
                                                   failure_rate=failure_rate), port=port or 0)
        with server:
            console.print(f"Fake OpenAI-compatible server at {server.api_base} (Ctrl-C to stop)", highlight=False)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                console.print(f"Stopped. {server.stats()}", highlight=False)
        return
    from helm_optimizer.serving.models import dspy_model_name, get_embedded_model
    from helm_optimizer.serving.sharing import serve_forever

    get_embedded_model(model)  # unknown names fail before anything starts
    console.print(f"Starting {model}; use it from DSPy as {dspy_model_name(model)} with the api_base printed "
                  "below, or as model=" + model + " in helm-run.", highlight=False)
    serve_forever(model, port=port, parallel=parallel, ctx_per_slot=ctx_per_slot, threads=threads, log_dir=log_dir)
