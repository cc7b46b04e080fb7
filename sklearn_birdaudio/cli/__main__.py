"""``python -m sklearn_birdaudio.cli``: the ``birdaudio`` command without its script."""

from . import console_main

console_main()
