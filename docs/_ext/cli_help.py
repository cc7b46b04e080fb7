"""``.. cli-help:: module:function``: the ``--help`` of an argparse command and its sub-commands.

A small local Sphinx extension, so that the CLI reference is generated from the parser the
command uses and cannot drift from it. ``function`` is called without arguments and must
return an ``argparse.ArgumentParser``. The directive renders the parser's help, then one
section per sub-command (titled ``<prog> <name>``) holding that sub-parser's help, each as
a literal block. Help is formatted at a fixed width so the output does not depend on the
terminal of whoever builds the docs.
"""

from __future__ import annotations

import argparse
import importlib

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

HELP_WIDTH = 88


def _help(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=HELP_WIDTH)
    original = parser._get_formatter
    parser._get_formatter = lambda: formatter
    try:
        return parser.format_help().rstrip()
    finally:
        parser._get_formatter = original


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    commands = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                commands.setdefault(name, sub)  # aliases point to the same parser
    return commands


class CliHelp(SphinxDirective):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module_name, _, function_name = self.arguments[0].partition(":")
        if not function_name:
            raise self.error(f"expected module:function, got {self.arguments[0]!r}")
        module = importlib.import_module(module_name)
        self.env.note_dependency(module.__file__)
        parser = getattr(module, function_name)()
        result: list[nodes.Node] = [self._literal(_help(parser))]
        for name, sub in _subcommands(parser).items():
            title = f"{parser.prog} {name}"
            section = nodes.section(ids=[nodes.make_id(f"cli-{parser.prog}-{name}")])
            section += nodes.title(text=title)
            section += self._literal(_help(sub))
            result.append(section)
        return result

    def _literal(self, text: str) -> nodes.literal_block:
        block = nodes.literal_block(text, text)
        block["language"] = "none"
        return block


def setup(app):
    app.add_directive("cli-help", CliHelp)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
