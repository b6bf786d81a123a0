"""The ``helm-optimizer`` command. Subcommands live one per module; heavy imports happen inside them."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from helm_optimizer import __version__
from helm_optimizer.cli import (
    agents_cmd,
    demo_cmd,
    evaluate_cmd,
    misc_cmd,
    optimize_cmd,
    report_cmd,
    scenarios_cmd,
    serve_cmd,
    sweep_cmd,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="helm-optimizer",
    help="Optimize prompts per model and per HELM benchmark with DSPy, evaluate baseline vs optimized inside "
    "HELM, and report the difference.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"helm-optimizer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """helm-optimizer."""


app.command("optimize", help=optimize_cmd.HELP)(optimize_cmd.optimize)
app.command("evaluate", help=evaluate_cmd.HELP)(evaluate_cmd.evaluate)
app.command("sweep", help=sweep_cmd.HELP)(sweep_cmd.sweep)
app.command("validate", help=sweep_cmd.VALIDATE_HELP)(sweep_cmd.validate)
app.command("report", help=report_cmd.HELP)(report_cmd.report)
app.command("serve", help=serve_cmd.HELP)(serve_cmd.serve)
app.command("demo", help=demo_cmd.HELP)(demo_cmd.demo)
app.command("register", help=misc_cmd.REGISTER_HELP)(misc_cmd.register)
app.command("list", help=misc_cmd.LIST_HELP)(misc_cmd.list_things)
app.add_typer(scenarios_cmd.app, name="scenarios")
app.add_typer(agents_cmd.app, name="agents")


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors with exit code 2 for bad input; 130 on Ctrl-C."""
    from helm_optimizer.errors import HelmOptimizerError

    try:
        app(args=argv, standalone_mode=False)
    except HelmOptimizerError as exc:
        from helm_optimizer.cli._common import err_console

        err_console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        from helm_optimizer.cli._common import err_console

        err_console.print("Interrupted. Finished work is saved; run the same command again to resume.",
                          highlight=False)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.NoArgsIsHelpError):
            # typer has already printed the help text
            sys.exit(0)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code if exc.exit_code else 2)
        raise


if __name__ == "__main__":
    main()
