"""Plain text for output that is not a terminal: colour codes removed from a log file.

skorch's epoch table colours the best values whatever the output is; ``main`` runs every
command inside :func:`plain_text_unless_terminal`, which strips them unless the stream is
a terminal.
"""

from __future__ import annotations

import contextlib
import re
import sys

# Terminal control sequences (colours, cursor moves).
ANSI_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


class PlainText:
    """A text stream that drops terminal control sequences (colours) written to it.

    Parameters
    ----------
    stream : text stream
        Where the text goes, without the control sequences; every other attribute is
        the stream's.
    """

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(ANSI_SEQUENCE.sub("", text))
        return len(text)

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str):
        if name == "stream":
            raise AttributeError(name)
        return getattr(self.stream, name)


@contextlib.contextmanager
def plain_text_unless_terminal():
    """stdout and stderr without colour codes when they are not a terminal (a log file).

    Yields
    ------
    None
        While the context is open, ``sys.stdout`` and ``sys.stderr`` are wrapped in
        :class:`PlainText` where they are not a terminal.
    """
    with contextlib.ExitStack() as stack:
        for name, redirect in (
            ("stdout", contextlib.redirect_stdout),
            ("stderr", contextlib.redirect_stderr),
        ):
            stream = getattr(sys, name)
            if not is_terminal(stream):
                stack.enter_context(redirect(PlainText(stream)))
        yield


def is_terminal(stream) -> bool:
    """Whether ``stream`` is a terminal.

    Parameters
    ----------
    stream : object
        A text stream.

    Returns
    -------
    bool
        False also for an object without ``isatty`` or a closed stream.
    """
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
