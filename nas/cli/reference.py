"""The CLI reference of the documentation site, generated from the argparse parser
(``nas.cli.parser.build_parser``) so it cannot drift; ``nas.cli.reference_yaml`` does the same for
the YAML files. ``docs/hooks.py`` calls both at ``mkdocs build`` time; nothing generated is
committed."""

from __future__ import annotations

import argparse
import html
from collections.abc import Iterator, Mapping

__all__ = ["GENERATED", "cli_reference", "md_escape", "walk_commands"]

GENERATED = "*Generated from {src} when the site is built: it lists {what}.*"


def md_escape(text: str) -> str:
    """Text safe in a Markdown table cell: no HTML, no table pipes, no emphasis, one line."""
    out = html.escape(" ".join(str(text).split()), quote=False)
    for ch in "\\`*_[]|":
        out = out.replace(ch, "\\" + ch)
    return out


# ---------------------------------------------------------------------- the CLI


def walk_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ("nas",)
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    """Every (sub)command below ``parser``, depth first: (``("nas", "surrogate", "fit")``, its
    parser, its one-line help)."""
    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            helps = {a.dest: a.help or "" for a in action._choices_actions}  # noqa: SLF001
            for name, child in action.choices.items():
                yield (*path, name), child, helps.get(name, "")
                yield from walk_commands(child, (*path, name))


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions  # noqa: SLF001
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)  # noqa: SLF001
        and a.help != argparse.SUPPRESS
    ]


def _argument_row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if action.option_strings:
        name = ", ".join(action.option_strings)
        if action.nargs != 0:
            name += " " + (action.metavar or action.dest.upper())
    else:
        name = action.metavar or action.dest
    help_text = parser._get_formatter()._expand_help(action) if action.help else ""  # noqa: SLF001
    if action.choices is not None and not isinstance(action.choices, Mapping):
        help_text += f" (one of: {', '.join(map(str, action.choices))})"
    if action.required and action.option_strings:
        help_text += " (required)"
    default = action.default
    hidden = default is None or default is False or default == argparse.SUPPRESS
    shown = "" if hidden or action.nargs == 0 else default
    return f"| `{name}` | {md_escape(str(shown))} | {md_escape(help_text)} |"


def _command_section(path: tuple[str, ...], parser: argparse.ArgumentParser, summary: str) -> str:
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
    lines = [f"## {' '.join(path)}", "", md_escape(parser.description or summary), ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""]
    args = _arguments(parser)
    if args:
        lines += ["| argument | default | what it does |", "| --- | --- | --- |"]
        lines += [_argument_row(parser, a) for a in args]
        lines.append("")
    return "\n".join(lines)


def cli_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """The CLI reference page (Markdown): a table of commands, then each command's usage and
    every argument with its default and help."""
    if parser is None:
        from nas.cli.parser import build_parser

        parser = build_parser()
    commands = list(walk_commands(parser))
    out = [
        "# CLI reference",
        "",
        GENERATED.format(src="`nas.cli.parser.build_parser()`", what="every command and flag"),
        "",
        "Every command prints the same text with `--help`. Exit codes: 0 done, 1 a failure, "
        "2 bad input (one line on stderr naming the file or flag, what was found and what is "
        "allowed; no traceback), 3 a campaign stopped waiting for resources (`nas resume` "
        "continues it).",
        "",
        "| command | what it does |",
        "| --- | --- |",
    ]
    for path, _, summary in commands:
        anchor = "-".join(path)
        out.append(f"| [`{' '.join(path)}`](#{anchor}) | {md_escape(summary)} |")
    out.append("")
    out += [_command_section(path, p, summary) for path, p, summary in commands]
    return "\n".join(out)
