"""``birdaudio plot``: a recording's spectrogram, with a model's detections and scores.

Only the part drawn (``--start``, ``--duration``) is read and scored, on the window grid
``predict`` uses, so the boxes are predict's.
"""

from __future__ import annotations

import numpy as np

from .errors import EXIT_OK, CommandError
from .models import load_fitted_model


def run(args) -> int:
    """Run ``birdaudio plot`` on its parsed command line ``args``.

    Returns the exit code: ``EXIT_OK``.
    """
    from ..audio import audio_info
    from ..features import MelSpectrogramTransformer
    from ..plotting import plot_detections

    if args.audio.is_dir():
        raise CommandError(
            f"{args.audio}: a folder; expected one audio file (plot draws one recording)."
        )
    if not args.audio.is_file():
        raise CommandError(f"{args.audio}: not found; expected an audio file.")
    if not (np.isfinite(args.start) and args.start >= 0):
        raise CommandError(f"--start must be a number of seconds >= 0, got {args.start:g}.")
    if not (np.isfinite(args.duration) and args.duration > 0):
        raise CommandError(
            f"--duration must be a positive number of seconds, got {args.duration:g}."
        )
    length_s = audio_info(args.audio).duration_seconds
    if args.start >= length_s:
        raise CommandError(
            f"--start {args.start:g} s is past the end of {args.audio} ({length_s:g} s)."
        )
    duration_s = min(args.duration, length_s - args.start)
    detections = scores = None
    mel = MelSpectrogramTransformer(duration=None)
    if args.model:
        model = load_fitted_model(args.model, allow_pickle=args.allow_pickle)
        if hasattr(model, "steps") and isinstance(model.steps[0][1], MelSpectrogramTransformer):
            mel = model.steps[0][1]
        detections, scores = _detect_part(model, args, duration_s)
    figure = plot_detections(
        args.audio,
        detections=detections,
        scores=scores,
        mel=mel,
        start_s=args.start,
        duration_s=duration_s,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=100)
    end_s = args.start + duration_s
    rest = "" if end_s >= length_s else f" (of {length_s:g} s: --start and --duration draw others)"
    print(f"Figure: {args.out}, {args.start:g}-{end_s:g} s{rest}")
    return EXIT_OK


def _detect_part(model, args, duration_s: float):
    """detect and window_scores of the part drawn only, at the file's times.

    Scoring starts at the window that holds ``--start`` on the grid predict uses (windows
    from 0 s, no overlap), so the boxes are predict's; only that part of the file is read.
    """
    import dataclasses

    from ..audio import audio_info, load_audio
    from ..detection import detect, window_scores
    from ..spec import get_audio_spec

    spec = get_audio_spec(model)  # what detect asks the model for its windows
    window_s = float(spec.window_seconds) if spec is not None and spec.window_seconds else 0.0
    begin_s = np.floor(args.start / window_s) * window_s if window_s else args.start
    rate = audio_info(args.audio).sample_rate
    waveform = load_audio(
        args.audio,
        sample_rate=rate,
        offset_seconds=begin_s,
        duration_seconds=args.start + duration_s - begin_s,
    )
    detections = detect(
        model, [waveform], min_confidence=args.min_confidence, input_sample_rate=rate, verbose=0
    )
    detections = detections.assign(
        file=str(args.audio),
        start_s=detections["start_s"] + begin_s,
        end_s=detections["end_s"] + begin_s,
    )
    scores = window_scores(model, waveform, input_sample_rate=rate)
    scores = dataclasses.replace(
        scores, start_s=scores.start_s + begin_s, end_s=scores.end_s + begin_s
    )
    return detections, scores
