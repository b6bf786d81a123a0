"""Loading method 4: a wrapper script instead of ``helm-run``.

    python examples/wrapper_script/run.py --model openai/gpt-4o-mini --local-path prod_env

HELM's guide tells wrapper scripts to call ``helm.benchmark.run.run_benchmark()``, which HELM
0.5.16 does not have; ``helm_optimizer.run_benchmark`` takes the same arguments as ``helm-run``.
Python puts this script's directory first on ``sys.path``, so the sibling module
``wrapper_plugin`` loads as a plugin by name with no PYTHONPATH change. A plugin that fails to
import, an unknown ``class_name`` or a run spec name registered twice stops the script with a
one-line error before any model is called.

Prints one line per run: ``<run name>\t<run directory>\t<exact_match on test>``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from helm_optimizer import HelmOptimizerError, run_benchmark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the wrapper_arith scenario through helm-optimizer.")
    parser.add_argument("--model", required=True, help="a HELM model deployment, e.g. openai/gpt-4o-mini")
    parser.add_argument("--suite", default="tutorial")
    parser.add_argument("--max-eval-instances", type=int, default=10)
    parser.add_argument("--output-path", default="benchmark_output")
    parser.add_argument("--local-path", default="prod_env", help="helm-run's --local-path (model deployments)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    try:
        result = run_benchmark(
            run_entries=[f"wrapper_arith:model={args.model}"],
            plugins=["wrapper_plugin"],
            suite=args.suite,
            max_eval_instances=args.max_eval_instances,
            output_path=args.output_path,
            local_path=args.local_path,
        )
    except HelmOptimizerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for run in result.runs:
        stat = run.stat("exact_match")
        score = "n/a" if stat is None else f"{stat['mean']:.3f}"
        print(f"{run.name}\t{run.path}\t{score}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
