"""``python -m sklearn_birdaudio.cli``: the ``birdaudio`` command without its script."""

import sys

from . import main

sys.exit(main())
