"""The ``birdaudio`` command: train, predict, evaluate, inspect and plot from a shell.

A thin layer over the public API: each sub-command parses its arguments, calls the
package and prints or writes the result. Run ``birdaudio COMMAND --help`` for each.
Each command is one module of this package (``train``, ``predict``, ``evaluate``,
``info``, ``plot``, ``calibrate``, ``review``); ``parser`` builds the command line.

Model files
-----------
``birdaudio train --out model.safetensors`` saves with
:func:`~sklearn_birdaudio.save_model`: weights and a JSON description, no pickle, safe
to load from anyone. An ``--out`` ending in ``.joblib``, ``.pkl`` or ``.pickle`` writes a
joblib file instead, with a warning: loading a joblib or pickle file runs any code it
contains, so the other commands load one only when given ``--allow-pickle``.

Exit codes
----------
0
    Success.
1
    The command could not run: unreadable model or data, invalid values.
2
    Invalid command line (unknown option, missing argument), as argparse reports it.
3
    ``predict`` finished, but some inputs could not be read, or only part of them: they
    are listed on stderr; the tables of all the others are written, and a file read
    part-way keeps the windows read before the error (marked partial: ``--resume``
    retries it). ``review`` finished, but the audio of some sampled detections could not
    be read: they are listed (``skipped.csv``) and left out of the review. ``train``
    saved a model, but some recordings could not be read: they are listed on stderr and
    the model is trained without them (``--strict`` exits with 1 instead).
130
    Interrupted (Ctrl-C): one line on stderr, no traceback. ``predict`` keeps the tables
    written so far; ``--resume`` continues. ``train`` saves no model.
"""

from __future__ import annotations

import logging
import os
import sys

# The exit codes, CommandError and _read_thresholds stay importable from here, where they
# were before the command became a package.
from .errors import EXIT_ERROR, EXIT_INTERRUPTED, CommandError
from .errors import EXIT_OK as EXIT_OK
from .errors import EXIT_PARTIAL as EXIT_PARTIAL
from .errors import EXIT_USAGE as EXIT_USAGE
from .parser import build_parser
from .predict import read_thresholds as _read_thresholds  # noqa: F401
from .terminal import plain_text_unless_terminal

__all__ = ["build_parser", "console_main", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``birdaudio`` with ``argv`` (default: the command line); return the exit code.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``birdaudio``; default: ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit code (see *Exit codes* above). An invalid command line exits with 2
        (argparse's ``SystemExit``) instead.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="birdaudio: %(message)s")
    from ..audio import AudioError

    try:
        with plain_text_unless_terminal():
            return args.run(args)
    except (CommandError, AudioError, ValueError, ImportError) as error:
        print(f"birdaudio {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"birdaudio {args.command}: interrupted{_AFTER_INTERRUPT.get(args.command, '')}",
              file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED


# What an interrupted command leaves behind, said after "interrupted".
_AFTER_INTERRUPT = {
    "predict": "; tables written so far are kept, --resume continues",
    "train": "; no model was saved",
    "calibrate": "; no thresholds table was written",
}


def console_main() -> None:
    """The ``birdaudio`` script: :func:`main`, then exit with its code.

    After an interrupt the process ends at once (``os._exit``), once its output is
    flushed: threads still inside torch or libsndfile could otherwise abort the
    interpreter's shutdown ("terminate called without an active exception", exit 134;
    1 in 8 interrupts of ``predict`` on the soundscapes). Everything it wrote is already
    complete: tables and models are written atomically.
    """
    code = main()
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
