"""Detection speed and memory on the real soundscapes in ../shared/data/soundscapes.

Usage (from the repository root, after ``make install``)::

    .venv/bin/python benchmarks/detection.py [--model outputs/birdaudio_model.safetensors]

Runs :func:`sklearn_birdaudio.detect` with the default network (5-s windows, no overlap)
over ``SSW50.mp3`` (10 minutes, 22.05 kHz MP3) and reports seconds of audio scored per
wall second, decoding, resampling, features, model and table included; the same for
decoding and resampling alone (``stream_audio``), which bounds what the rest costs; then
scores all seven soundscapes (62 minutes) in one call and reports the process's peak
resident memory against its resident memory before the call.

``--model`` loads a fitted pipeline saved with ``save_model`` (``make demo`` writes one). Without
it the default pipeline is fitted for one epoch on eight xeno-canto recordings: speed and
memory do not depend on the weights, only on the network's size.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
from _measure import memory_mb, reset_peak_memory

from sklearn_birdaudio import (
    AttentionCNNClassifier,
    MelSpectrogramTransformer,
    audio_info,
    detect,
    load_manifest,
    load_model,
    stream_audio,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def default_model():
    """The default pipeline, fitted briefly (speed does not depend on the weights)."""
    from sklearn.pipeline import Pipeline

    X, Y, _ = load_manifest(DATA / "xc-puerto-rico" / "labels.csv", split="train")
    pipeline = Pipeline(
        [
            ("mel", MelSpectrogramTransformer(duration=None)),
            ("cnn", AttentionCNNClassifier(max_epochs=1, validation_fraction=None, verbose=0)),
        ]
    )
    return pipeline.fit(X[:8], Y[:8])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a fitted pipeline saved with save_model")
    parser.add_argument("--soundscapes", type=Path, default=DATA / "soundscapes" / "audio")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per detect batch")
    parser.add_argument(
        "--predict-batch-size", type=int, help="the classifier's windows per forward pass"
    )
    args = parser.parse_args()

    model = load_model(args.model) if args.model else default_model()
    if args.predict_batch_size:
        model.set_params(cnn__predict_batch_size=args.predict_batch_size)
    files = sorted(args.soundscapes.glob("*.mp3"))
    one = args.soundscapes / "SSW50.mp3"
    seconds_one = audio_info(one).duration_seconds
    detect(model, [one], verbose=0)  # warm up: first-call allocations, lazy imports

    start = time.perf_counter()
    for _ in stream_audio(one, block_seconds=60.0, sample_rate=32000):
        pass
    decode = time.perf_counter() - start
    start = time.perf_counter()
    detections = detect(model, [one], batch_size=args.batch_size, verbose=0)
    whole = time.perf_counter() - start

    reset_peak_memory()  # fitting the model peaked higher than what is measured here
    before = memory_mb("VmRSS")
    start = time.perf_counter()
    everything = detect(model, files, batch_size=args.batch_size, verbose=0)
    seconds_all = time.perf_counter() - start
    peak = memory_mb("VmHWM")
    audio_all = sum(everything.durations.values())

    print(
        f"# detect() on real soundscapes ({platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, detect batch "
        f"{args.batch_size}, forward batch {model.named_steps['cnn']._predict_batch_size})"
    )
    print()
    print("| measure | audio | wall time | x real time |")
    print("|---|---|---|---|")
    print(
        f"| decode + resample only, {one.name} | {seconds_one:.0f} s | {decode:.2f} s | "
        f"{seconds_one / decode:.0f} |"
    )
    print(
        f"| detect(), {one.name} ({len(detections)} detections) | {seconds_one:.0f} s | "
        f"{whole:.2f} s | {seconds_one / whole:.0f} |"
    )
    print(
        f"| detect(), all {len(files)} soundscapes | {audio_all / 60:.0f} min | "
        f"{seconds_all:.1f} s | {audio_all / seconds_all:.0f} |"
    )
    print()
    print(
        f"Peak resident memory: {peak:.0f} MiB (process, model loaded: {before:.0f} MiB before "
        f"the call); the {audio_all / 60:.0f} minutes as float32 at 32 kHz would be "
        f"{audio_all * 32000 * 4 / 2**20:.0f} MiB."
    )


if __name__ == "__main__":
    main()
