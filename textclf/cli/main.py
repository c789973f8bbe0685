"""The ``textclf`` command line: thin wrappers over the library.

Every verb maps onto a library call; expected failures (``TextclfError``) are
printed as one clear message with exit code 2 (1 for a diverged training, a
full disk or a locked store), and only ``--debug`` shows a traceback. A full
disk or a locked MLflow store met where no textclf code was writing (inside
MLflow, HF datasets, matplotlib) is recognised here, in :func:`_expected`. The verbs live in
:mod:`textclf.cli.runs` (run, train, report, ui), :mod:`textclf.cli.reuse`
(predict, embed, export), :mod:`textclf.cli.inspect` (config show, data
inspect) and :mod:`textclf.cli.cache`; this module assembles them.
"""

from __future__ import annotations

import os
import sys

import typer

from textclf.cli import cache as cache_verbs
from textclf.cli import inspect, reuse, runs
from textclf.cli.common import console
from textclf.core.errors import TextclfError

app = typer.Typer(
    name="textclf",
    help="Compare RNN, GRU, LSTM, stacked and bidirectional text classifiers on your data, tracked in MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Show the resolved configuration.", no_args_is_help=True)
data_app = typer.Typer(help="Look at a data source before training on it.", no_args_is_help=True)
cache_app = typer.Typer(help="List or prune the stage cache.", no_args_is_help=True)


def _version(value: bool) -> None:
    if value:
        from textclf._version import __version__

        typer.echo(f"textclf {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Compare RNN, GRU, LSTM, stacked and bidirectional text classifiers on your data, tracked in MLflow."""


app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")
app.add_typer(cache_app, name="cache")

for verb in (runs.run, runs.train, runs.report, runs.ui, reuse.predict, reuse.embed, reuse.export):
    app.command()(verb)
config_app.command("show")(inspect.config_show)
data_app.command("inspect")(inspect.data_inspect)
cache_app.command("ls")(cache_verbs.cache_ls)
cache_app.command("prune")(cache_verbs.cache_prune)


# --------------------------------------------------------------------------- entry point


def _click_exceptions():
    """(usage error, Exit, Abort) classes of click *and* of typer ≥ 0.29, which vendors its own copy."""
    import click
    import typer

    errors, exits, aborts = [click.ClickException], [click.exceptions.Exit, typer.Exit], [click.exceptions.Abort]
    try:
        from typer import _click as vendored

        errors.append(vendored.exceptions.ClickException)
        aborts += [getattr(typer.exceptions, "Abort", click.exceptions.Abort)]
    except ImportError:  # older typer uses click itself
        pass
    return tuple(errors), tuple(exits), tuple(aborts)


def _terminate_like_ctrl_c() -> None:
    """SIGTERM (a scheduler, `kill`, a container stop) unwinds like Ctrl-C: runs end KILLED, temporaries are removed."""
    import signal
    import threading

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, handler)


def _interrupted() -> None:
    console.print("interrupted; re-run the same command to continue from the cache and checkpoints")


def _expected(exc: BaseException) -> TextclfError | None:
    """A failure the user can act on that reached the CLI as a library's own error: the store locked or full, any disk
    full, a stage cache that cannot be written.

    The writers textclf controls (stage cache, checkpoints, model folders)
    already raise :class:`~textclf.core.errors.DiskFullError` naming their
    path; this catches the rest, through the same recognition.
    """
    from textclf.core import disk
    from textclf.core.cache import unwritable_error
    from textclf.tracking import store

    return store.explain(exc) or disk.disk_full_error(exc) or unwritable_error(exc)


def _report(exc: TextclfError) -> int:
    # The message itself may hold brackets ("variant 'b' [..]"): never parse it as markup.
    console.print("[bold red]error:[/] ", end="")
    console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
    return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning expected errors into clean messages and exit codes."""
    click_error, click_exit, click_abort = _click_exceptions()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("TEXTCLF_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    _terminate_like_ctrl_c()
    try:
        # Non-standalone typer returns the code of an Exit raised inside a command,
        # and turns Ctrl-C into Exit(130): both must reach the shell.
        code = app(args=argv, prog_name="textclf", standalone_mode=False)
        if isinstance(code, int) and code:
            if code == 130:
                _interrupted()
            return code
        return 0
    except TextclfError as exc:
        if debug:
            raise
        return _report(exc)
    except click_exit as exc:
        return exc.exit_code
    except click_error as exc:  # usage errors: unknown option, missing argument (exit 2)
        if debug:
            raise
        exc.show()
        return exc.exit_code
    except click_abort:
        console.print("aborted")
        return 130
    except KeyboardInterrupt:
        if debug:
            raise
        _interrupted()
        return 130
    except Exception as exc:
        expected = None if debug else _expected(exc)
        if expected is None:
            raise
        return _report(expected)


if __name__ == "__main__":
    sys.exit(main())
