"""How `rrtool` talks about itself: help text that never cuts a word, usage errors as one line.

Typer's rich help draws tables fitted to the terminal, or to 80 columns when
the output is not one, and ellipsizes what does not fit: an option's own name
(`--checkpoints-per-pa…`), the `--net` syntax. Its usage errors are boxed
panels of several lines. Both are replaced here, for every command, by
subclassing the command and group classes typer builds (`cls=`):

- help is plain text wrapped at the width click computes, between words only
  (a word longer than the line overflows it rather than being broken or cut),
  flags show no value, and a group lists each command's first sentence whole;
- the root group's `main` runs the command with click's standalone mode off
  and prints any usage error itself, as one line: `rrtool: error: MESSAGE (see
  rrtool CMD --help)`, exit 2. The same path serves `rrtool` the script,
  `python -m rrtool.cli` and typer's test runner, which all call `main`.

The click classes are reached through typer (`typer.BadParameter`'s module,
`typer.core`), so this works whether typer vendors click or depends on it.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

import typer
import typer.core

from rrtool.cli.console import err, print_error

#: click's exception classes, from whichever click typer uses (its own copy or the package).
_click_exceptions: Any = sys.modules[typer.BadParameter.__module__]


def _wrap(text: str, width: int, indent: int = 0, first: str = "") -> list[str]:
    """Wrap between words only: never break a word (an option name, a path, a syntax) or a hyphenated one."""
    wrapper = textwrap.TextWrapper(
        width=max(width, indent + 20),
        initial_indent=first or " " * indent,
        subsequent_indent=" " * indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return wrapper.wrap(text) or [first.rstrip()]


def _paragraphs(doc: str) -> list[list[str]]:
    """The docstring's paragraphs; an `Example:` line stays a line of its own (it is a command to copy)."""
    result: list[list[str]] = []
    for block in inspect.cleandoc(doc).split("\n\n"):
        pieces: list[str] = []
        prose: list[str] = []
        for line in block.splitlines():
            if line.strip().startswith("Example:"):
                if prose:
                    pieces.append(" ".join(prose))
                    prose = []
                pieces.append("\0" + line.strip())
            else:
                prose.append(line.strip())
        if prose:
            pieces.append(" ".join(prose))
        result.append(pieces)
    return result


def _definitions(rows: Sequence[tuple[str, str]], width: int) -> list[str]:
    """Two columns, as click lays them out: a term too long for the first column puts its text below."""
    if not rows:
        return []
    column = min(max(len(term) for term, _ in rows), 30) + 2
    lines: list[str] = []
    for term, text in rows:
        head = f"  {term}"
        if not text:
            lines.append(head)
        elif len(term) <= column - 2:
            lines.extend(_wrap(text, width, column + 2, head.ljust(column + 2)))
        else:
            lines.append(head)
            lines.extend(_wrap(text, width, column + 2))
    return lines


def _usage_pieces(command: Any, ctx: Any) -> list[str]:
    """`[OPTIONS] IMAGE`, `TRACE...`: the metavars as given (typer wraps them in braces, `{image}`)."""
    pieces = ["[OPTIONS]"]
    for param in command.get_params(ctx):
        if param.param_type_name != "argument":
            continue
        name = param.metavar or param.human_readable_name
        if param.nargs == -1 and "..." not in name:
            name += "..."
        pieces.append(name if param.required else f"[{name}]")
    if isinstance(command, typer.core.TyperGroup):
        pieces.append("COMMAND [ARGS]...")
    return pieces


def render_help(command: Any, ctx: Any, width: int) -> str:
    """The whole help of a command or group as text: usage, description, arguments, options, commands."""
    pieces = _usage_pieces(command, ctx)
    lines = _wrap(" ".join([ctx.command_path, *pieces]), width, 7, "Usage: ")
    for paragraph in _paragraphs(command.help or ""):
        lines.append("")
        for piece in paragraph:
            if piece.startswith("\0"):
                lines.append("  " + piece[1:])
            else:
                lines.extend(_wrap(piece, width, 2))
    arguments: list[tuple[str, str]] = []
    options: list[tuple[str, str]] = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None or getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            # Typer puts the value's type after the metavar (`IMAGE <str>`); the metavar says enough.
            arguments.append((param.metavar or param.human_readable_name, record[1]))
        else:
            options.append(record)
    for title, rows in (("Arguments", arguments), ("Options", options)):
        if rows:
            lines += ["", f"{title}:", *_definitions(rows, width)]
    if isinstance(command, typer.core.TyperGroup):
        commands = []
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                commands.append((name, sub.get_short_help_str(limit=10_000)))
        if commands:
            lines += ["", "Commands:", *_definitions(commands, width)]
    return "\n".join(lines) + "\n"


class Command(typer.core.TyperCommand):
    """A command whose help is `render_help`'s."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        formatter.write(render_help(self, ctx, formatter.width))


class ProgramCommand(Command):
    """`run` and `record`: everything after a Linux PROGRAM belongs to the program, as with rr and qemu-user.

    `rrtool record -o t.arrow /bin/busybox ls -l` must hand `-l` to ls, not to rrtool, so a `--` is put
    right after the program before click parses. An SDK guest takes no arguments, and its options have
    always been allowed after it (`rrtool run timers --max-insns 100`): for one, the line is left alone.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        takes_value = {
            name
            for param in self.params
            if getattr(param, "param_type_name", "") == "option" and not getattr(param, "is_flag", False)
            for name in (*param.opts, *param.secondary_opts)
        }
        i = 0
        while i < len(args):
            token = args[i]
            if token == "--":
                return super().parse_args(ctx, args)
            if token.startswith("-") and token != "-":
                i += 2 if token in takes_value else 1
                continue
            if _is_linux_program(token):
                args = [*args[: i + 1], "--", *args[i + 1 :]]
            break
        return super().parse_args(ctx, args)


def _is_linux_program(token: str) -> bool:
    """A path to a file that is not an SDK guest (bundled example names are SDK guests)."""
    from pathlib import Path

    path = Path(token)
    if not path.is_file():
        return False
    from rrtool.machine.image import PLATFORM_LINUX, platform_of

    return platform_of(path) == PLATFORM_LINUX


class Group(typer.core.TyperGroup):
    """A group whose help is `render_help`'s and whose `main` prints usage errors as one line."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        formatter.write(render_help(self, ctx, formatter.width))

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
            code = result if isinstance(result, int) else 0
        except _click_exceptions.ClickException as exc:
            code = report_usage_error(exc)
        except typer.Abort:
            err.print("rrtool: aborted", markup=False)
            code = 1
        except BrokenPipeError:
            # The reader of a pipe went away (`rrtool sql ... | head`): nothing left to say, to anyone. Python
            # would complain once more when it flushes stdout at exit, so stdout becomes /dev/null first.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


def report_usage_error(exc: Any) -> int:
    """One line on stderr for a click exception; the help of the command for a bare group (`rrtool export`)."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        sys.stdout.write(exc.ctx.get_help() + "\n")
        return 2
    ctx = getattr(exc, "ctx", None)
    hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    message = exc.format_message().strip()
    print_error((message.removesuffix(".") if hint else message) + hint)
    return int(exc.exit_code)
