"""The ``helm-optimizer`` command. Subcommands live one per module; heavy imports happen inside them."""

from __future__ import annotations

import errno
import os
import sys
from typing import Annotated, NoReturn

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
from helm_optimizer.cli.interrupt import INTERRUPTED, SigintHandler, exit_interrupted

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


PROG = "helm-optimizer"
# File-system errors nobody turned into a HelmOptimizerError still get a one-line message and exit 2.
_ENV_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR,
                         errno.EISDIR, errno.ENAMETOOLONG})


def _fail(message: str, code: int) -> NoReturn:
    from helm_optimizer.cli._common import err_console

    line = " ".join(message.split())  # one line, whatever the message held
    err_console.print(f"error: {line}", highlight=False, markup=False, soft_wrap=True)
    sys.exit(code)


def _usage_message(exc: Exception) -> str:
    """Click/typer usage errors as one line with the next step (click prints usage plus several lines)."""
    from helm_optimizer.registry import did_you_mean

    message = " ".join(str(exc.format_message() if hasattr(exc, "format_message") else exc).split())
    if not message.endswith((".", "?", "!")):
        message += "."
    ctx = getattr(exc, "ctx", None)
    command_path = getattr(ctx, "command_path", None) or PROG
    if message.startswith("No such command") and ctx is not None:
        name = message.split("'")[1] if message.count("'") >= 2 else ""
        known = list(ctx.command.list_commands(ctx)) if hasattr(ctx.command, "list_commands") else []
        hint = did_you_mean(name, known) if name and "Did you mean" not in message else ""
        listed = f" Commands: {', '.join(known)}." if known else ""
        return f"{message}{hint}{listed} Run '{command_path} --help'."
    return f"{message} Run '{command_path} --help' for the options."


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors with exit code 2 for bad input (3 over budget); 130 on Ctrl-C."""
    from helm_optimizer.errors import HelmOptimizerError

    # The commands draw one progress display; the tqdm bars DSPy and HELM start in worker threads
    # would interleave with it (and fill logs with carriage returns). tqdm reads this at import.
    os.environ.setdefault("TQDM_DISABLE", "1")
    sigint = SigintHandler()
    try:
        with sigint:
            # Without standalone mode typer turns Ctrl-C in a command into Exit(130) and *returns* the code.
            code = app(args=argv, standalone_mode=False, prog_name=PROG)
    except HelmOptimizerError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        exit_interrupted(sigint)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        exit_interrupted(sigint)
    except typer.TyperException as exc:  # usage errors (typer vendors click's exceptions)
        if type(exc).__name__ == "NoArgsIsHelpError":
            _print_help(exc)
        code = getattr(exc, "exit_code", 2)
        _fail(_usage_message(exc), code if isinstance(code, int) and code else 2)
    except OSError as exc:
        if exc.errno not in _ENV_ERRNOS:
            raise
        from helm_optimizer._io import os_error

        _fail(str(os_error(exc.filename or "a file", exc)), 2)
    except Exception as exc:
        if _is_validation_error(exc):
            first = exc.errors()[0]  # type: ignore[attr-defined]
            where = ".".join(str(p) for p in first.get("loc", ())) or "value"
            _fail(f"Invalid {where}: {str(first.get('msg', '')).removeprefix('Value error, ')}.", 2)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # a plain click exception
            if type(exc).__name__ == "NoArgsIsHelpError":
                _print_help(exc)
            _fail(_usage_message(exc), exc.exit_code or 2)
        raise
    if code == INTERRUPTED:
        exit_interrupted(sigint)
    if isinstance(code, int) and code:
        sys.exit(code)


def _print_help(exc: Exception) -> NoReturn:
    """A command run without arguments: its help (click leaves printing it to the caller), exit 0."""
    ctx = getattr(exc, "ctx", None)
    typer.echo(ctx.get_help() if ctx is not None else exc.format_message())  # type: ignore[attr-defined]
    sys.exit(0)


def _is_validation_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "ValidationError" and type(exc).__module__.startswith("pydantic")


if __name__ == "__main__":
    main()
