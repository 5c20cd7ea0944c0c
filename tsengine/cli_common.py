"""What the ``batch`` and ``monitor`` command groups share.

Errors, the registry option, and a group whose unknown first word is a deployment id.

``tsengine batch flights …`` means ``tsengine batch run flights …`` and
``tsengine monitor flights`` means ``tsengine monitor report flights``; the
subcommands (``list``, ``settings``, …) keep their names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, NoReturn, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup

from tsengine.errors import TsEngineError

__all__ = ["EXIT_BAD_INPUT", "RegistryOpt", "default_command_group", "err", "fail", "out", "run"]

err = Console(stderr=True)
out = Console()
EXIT_BAD_INPUT = 2
T = TypeVar("T")

RegistryOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry", help="Registry folder (default: $TSENGINE_REGISTRY, else ~/.tsengine/registry)."
    ),
]


def run(fn: Callable[[], T]) -> T:
    """Run an engine call; bad input → message on stderr, exit 2 (as the rest of the CLI)."""
    try:
        return fn()
    except TsEngineError as exc:
        fail(exc.message)


def fail(message: str) -> NoReturn:
    """Bad input found by the CLI itself: the same message and exit status as the engine's."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def default_command_group(default: str) -> type[TyperGroup]:
    """A typer group class that sends an unknown first word to the ``default`` command."""

    class DefaultCommandGroup(TyperGroup):
        default_command: ClassVar[str] = default

        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            """Route anything that is not a subcommand (or help) to the default command.

            ``ctx`` is typer's vendored click context, which has no public type.
            """
            if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
                args = [self.default_command, *args]
            return super().parse_args(ctx, args)

    return DefaultCommandGroup
