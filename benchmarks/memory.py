"""Memory of detect() on a 3-hour recording and over 1,000 sequential files.

Usage (from the repository root, after ``make install``)::

    .venv/bin/python benchmarks/memory.py [--model outputs/birdaudio_model.joblib] [--quick]

Builds, in a temporary folder, a 3-hour recording by repeating the seven real soundscapes
of ../shared/data/soundscapes (62 minutes of 22.05 kHz MP3), decoded block by block and
written as 22.05 kHz mono 16-bit WAV (476 MB; the 3 hours are never in memory at once),
and 1,000 WAV files of 10 s cut from the same soundscapes (each a separate path; after
the first 372 the excerpts repeat). Then, in this process:

1. scores the 3-hour file with one :func:`sklearn_birdaudio.detect` call and reports the
   process's peak resident memory (``VmHWM``, reset just before) against its resident
   memory before the call (``VmRSS``); target: peak < 1 GB;
2. scores the 1,000 files one ``detect`` call each, sampling ``VmRSS`` every 100 files,
   and reports the growth from after the first 100 files to after all 1,000, and the
   maximum; target: flat, growth < 50 MB;
3. scores the 1,000 files in one ``detect`` call and reports its peak and growth.

``--model`` loads a fitted pipeline saved with joblib; without it the default pipeline is
fitted for one epoch on eight xeno-canto recordings (memory does not depend on the
weights). ``--quick`` uses a 20-minute recording and 100 files (a fast check). Linux only
(reads /proc/self/status).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from itertools import cycle
from pathlib import Path

import joblib
import soundfile
import torch
from _measure import memory_mb, reset_peak_memory
from detection import DATA, default_model

from sklearn_birdaudio import detect, stream_audio

SAMPLE_RATE = 22050
MIB = 2**20
PEAK_TARGET_MIB = 1e9 / MIB  # 1 GB
DRIFT_TARGET_MIB = 50e6 / MIB  # 50 MB


def write_long_recording(path: Path, soundscapes: list, seconds: float) -> float:
    """Write ``seconds`` of the soundscapes, repeated, to ``path``; return the seconds written."""
    remaining = int(round(seconds * SAMPLE_RATE))
    with soundfile.SoundFile(path, "w", SAMPLE_RATE, 1, subtype="PCM_16") as output:
        for soundscape in cycle(soundscapes):
            for block in stream_audio(soundscape, block_seconds=60.0, sample_rate=SAMPLE_RATE):
                block = block[:remaining]
                output.write(block)
                remaining -= len(block)
                if remaining == 0:
                    return seconds
    raise AssertionError("unreachable")


def write_excerpts(folder: Path, soundscapes: list, count: int, seconds: float) -> list:
    """Write ``count`` files of ``seconds`` each, cut in turn from the soundscapes."""
    paths = []
    excerpt_samples = int(round(seconds * SAMPLE_RATE))
    for soundscape in cycle(soundscapes):
        for block in stream_audio(soundscape, block_seconds=seconds, sample_rate=SAMPLE_RATE):
            if len(block) < excerpt_samples:
                continue  # a soundscape's short tail
            path = folder / f"excerpt_{len(paths):04d}.wav"
            soundfile.write(path, block, SAMPLE_RATE, subtype="PCM_16")
            paths.append(path)
            if len(paths) == count:
                return paths
    raise AssertionError("unreachable")


def measure_call(function) -> dict:
    """Wall time, ``VmRSS`` before and after, and peak ``VmHWM`` of one call, in MiB."""
    reset_peak_memory()
    before = memory_mb("VmRSS")
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    return {
        "result": result,
        "seconds": seconds,
        "before": before,
        "after": memory_mb("VmRSS"),
        "peak": memory_mb("VmHWM"),
    }


def met(condition: bool) -> str:
    return "**met**" if condition else "**not met**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a fitted pipeline saved with joblib")
    parser.add_argument("--soundscapes", type=Path, default=DATA / "soundscapes" / "audio")
    parser.add_argument("--quick", action="store_true", help="a 20-minute recording, 100 files")
    parser.add_argument("--excerpt-seconds", type=float, default=10.0, help="short files' length")
    args = parser.parse_args()
    hours = 1 / 3 if args.quick else 3.0
    n_files = 100 if args.quick else 1000
    sample_every = 10 if args.quick else 100

    model = joblib.load(args.model) if args.model else default_model()
    soundscapes = sorted(args.soundscapes.glob("*.mp3"))

    with tempfile.TemporaryDirectory(prefix="birdaudio_memory_") as folder:
        folder = Path(folder)
        long_path = folder / "long.wav"
        start = time.perf_counter()
        long_seconds = write_long_recording(long_path, soundscapes, hours * 3600)
        write_long_s = time.perf_counter() - start
        start = time.perf_counter()
        paths = write_excerpts(folder, soundscapes, n_files, args.excerpt_seconds)
        write_files_s = time.perf_counter() - start
        detect(model, paths[:2], verbose=0)  # warm up: first-call allocations, lazy imports

        # 1. One long recording.
        long_call = measure_call(lambda: detect(model, [long_path], verbose=0))

        # 2. One call per file, resident memory sampled as it goes.
        samples = []
        reset_peak_memory()
        sequential_before = memory_mb("VmRSS")
        start = time.perf_counter()
        n_detections = 0
        for index, path in enumerate(paths, start=1):
            n_detections += len(detect(model, [path], verbose=0))
            if index % sample_every == 0:
                samples.append((index, memory_mb("VmRSS")))
        sequential_s = time.perf_counter() - start
        sequential_peak = memory_mb("VmHWM")

        # 3. The same files in one call.
        batch_call = measure_call(lambda: detect(model, paths, verbose=0))
        long_mib = long_path.stat().st_size / MIB

    files_seconds = n_files * args.excerpt_seconds
    first_rss, last_rss = samples[0][1], samples[-1][1]
    drift = last_rss - first_rss
    max_rss = max(rss for _, rss in samples)
    long_peak = long_call["peak"]
    print(
        f"# detect() memory: a {long_seconds / 60:.0f}-minute recording and {n_files} "
        f"sequential files ({platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, detect batch 64, "
        f"forward batch {model.named_steps['cnn']._predict_batch_size})"
    )
    print()
    print(
        "| measure | audio | wall time | x real time | RSS before | peak RSS (VmHWM) | "
        "growth | target |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| one call, {long_seconds / 3600:.2g} h WAV ({len(long_call['result'])} detections) | "
        f"{long_seconds / 60:.0f} min | {long_call['seconds']:.1f} s | "
        f"{long_seconds / long_call['seconds']:.0f} | {long_call['before']:.0f} MiB | "
        f"{long_peak:.0f} MiB | {long_peak - long_call['before']:.0f} MiB | "
        f"peak < 1 GB ({PEAK_TARGET_MIB:.0f} MiB): {met(long_peak < PEAK_TARGET_MIB)} |"
    )
    print(
        f"| {n_files} calls, one {args.excerpt_seconds:.0f}-s file each ({n_detections} "
        f"detections) | {files_seconds / 60:.0f} min | {sequential_s:.1f} s | "
        f"{files_seconds / sequential_s:.0f} | {first_rss:.0f} MiB after {samples[0][0]} files | "
        f"{sequential_peak:.0f} MiB (max sampled RSS {max_rss:.0f}) | {drift:+.1f} MiB "
        f"(to {last_rss:.0f} after {n_files}) | growth < 50 MB ({DRIFT_TARGET_MIB:.0f} MiB): "
        f"{met(drift < DRIFT_TARGET_MIB)} |"
    )
    print(
        f"| one call, {n_files} files ({len(batch_call['result'])} detections) | "
        f"{files_seconds / 60:.0f} min | {batch_call['seconds']:.1f} s | "
        f"{files_seconds / batch_call['seconds']:.0f} | {batch_call['before']:.0f} MiB | "
        f"{batch_call['peak']:.0f} MiB | {batch_call['peak'] - batch_call['before']:.0f} MiB | "
        "(none) |"
    )
    print()
    print(
        "RSS (MiB) every "
        f"{sample_every} files: "
        + ", ".join(f"{index}: {rss:.0f}" for index, rss in samples)
        + f" (before the loop: {sequential_before:.0f})."
    )
    print(
        f"Writing the {long_seconds / 60:.0f}-min WAV ({long_mib:.0f} MiB) took "
        f"{write_long_s:.1f} s, the {n_files} files {write_files_s:.1f} s. The "
        f"{long_seconds / 60:.0f} minutes as float32 at 32 kHz would be "
        f"{long_seconds * 32000 * 4 / MIB:.0f} MiB."
    )


if __name__ == "__main__":
    main()
