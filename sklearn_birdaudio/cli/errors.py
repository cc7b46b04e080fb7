"""The exit codes of the ``birdaudio`` command and the error its commands report.

The meaning of each code is listed in the package docstring (``birdaudio --help`` shows
it too); every command module returns one of these from its ``run``.
"""

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


class CommandError(Exception):
    """A failure to report as one line on stderr with exit code 1."""
