"""Memory and time of computing whole-recording training features, with and without a cache.

Usage (from the repository root, after ``make install``)::

    .venv/bin/python benchmarks/features_memory.py [--limit N] [--device cpu]

Transforms the 225 training recordings of ../shared/data/xc-puerto-rico (MP3s of up to
60 s at 44.1/48 kHz, resampled to 32 kHz) with ``MelSpectrogramTransformer(duration=None)``
and reports, per setting, the wall time and the growth of the process's peak resident
memory during ``transform`` (``VmHWM`` after, reset just before, minus ``VmRSS`` before),
against the size of the output and of all the decoded waveforms at 32 kHz float32. The
transformer loads ``batch_size`` recordings at a time, so the peak should follow the output
plus one batch of waveforms, not all of them.

Settings: ``batch_size`` 8 and 64 without a cache; then ``batch_size=64`` with
``memory=<a temporary folder>``, once with the cache cold and once with it warm, and checks
that both give the same features. Each setting runs in a fresh Python process (this script
with ``--child``), so that one setting's allocations do not hide the next one's peak. Before
the measured call each child transforms one second of one file, so that lazily imported
decoders and torch's first-call allocations are not counted. ``--limit N`` uses only the
first N recordings (a quick check). Linux only (reads /proc/self/status).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _measure import memory_mb, reset_peak_memory

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MANIFEST = DATA / "xc-puerto-rico" / "labels.csv"
SAMPLE_RATE = 32000
MIB = 2**20
# libmpg123 reports recoverable frame errors of some xeno-canto MP3s on stderr.
HARMLESS_STDERR = ("part2_3_length",)


def training_paths(limit: int | None) -> list:
    from sklearn_birdaudio import load_manifest

    paths, _, _ = load_manifest(MANIFEST, split="train")
    return list(paths[:limit] if limit else paths)


def child(args) -> None:
    """Run one setting in this (fresh) process; print its measures as JSON on stdout."""
    from sklearn_birdaudio import MelSpectrogramTransformer
    from sklearn_birdaudio.devices import resolve_device

    paths = training_paths(args.limit)
    # Warm up on one second of one file, without the cache: imports, decoder, torch.
    MelSpectrogramTransformer(duration=1.0, device=args.device).transform(paths[:1])
    transformer = MelSpectrogramTransformer(
        duration=None, batch_size=args.batch_size, device=args.device, memory=args.memory
    )

    reset_peak_memory()
    before = memory_mb("VmRSS")
    start = time.perf_counter()
    features = transformer.transform(paths)
    seconds = time.perf_counter() - start
    peak = memory_mb("VmHWM")

    if args.save:
        np.save(args.save, features)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_before_mib": before,
                "peak_growth_mib": peak - before,
                "output_mib": features.nbytes / MIB,
                "shape": list(features.shape),
                "device": str(resolve_device(args.device)),
            }
        )
    )


def run_child(args, batch_size: int, memory: str | None = None, save: str | None = None) -> dict:
    """This script with ``--child`` in a new interpreter; its JSON result."""
    command = [sys.executable, __file__, "--child", "--batch-size", str(batch_size)]
    command += ["--device", args.device]
    if args.limit:
        command += ["--limit", str(args.limit)]
    if memory:
        command += ["--memory", memory]
    if save:
        command += ["--save", save]
    result = subprocess.run(command, capture_output=True, text=True)
    for line in result.stderr.splitlines():
        if not any(harmless in line for harmless in HARMLESS_STDERR):
            print(line, file=sys.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"child {command} failed with exit status {result.returncode}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, help="use only the first N training recordings")
    parser.add_argument("--device", default="auto", help="the transformer's device")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--memory", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import torch

    from sklearn_birdaudio import audio_info

    paths = training_paths(args.limit)
    audio_seconds = sum(audio_info(path).duration_seconds for path in paths)
    waveforms_mib = audio_seconds * SAMPLE_RATE * 4 / MIB

    rows = []
    for batch_size in (8, 64):
        rows.append((f"batch_size={batch_size}, no cache", run_child(args, batch_size)))
    with tempfile.TemporaryDirectory(prefix="features_memory_") as folder:
        cache = os.path.join(folder, "cache")
        cold_file, warm_file = os.path.join(folder, "cold.npy"), os.path.join(folder, "warm.npy")
        rows.append(("batch_size=64, cache cold", run_child(args, 64, cache, cold_file)))
        rows.append(("batch_size=64, cache warm", run_child(args, 64, cache, warm_file)))
        cold, warm = np.load(cold_file), np.load(warm_file)
        same = cold.shape == warm.shape and np.allclose(cold, warm, atol=1e-4, equal_nan=True)

    shape = rows[0][1]["shape"]
    print(
        f"# MelSpectrogramTransformer(duration=None).transform on {len(paths)} xeno-canto "
        f"recordings, {audio_seconds / 60:.0f} min ({platform.machine()}, {os.cpu_count()} "
        f"cores, torch {torch.__version__}, {torch.get_num_threads()} threads, device "
        f"{rows[0][1]['device']}; output shape {tuple(shape)})"
    )
    print()
    print("| setting | wall s | peak RSS growth MiB | output MiB | waveforms MiB |")
    print("|---|---|---|---|---|")
    for setting, result in rows:
        print(
            f"| {setting} | {result['seconds']:.1f} | {result['peak_growth_mib']:.0f} | "
            f"{result['output_mib']:.0f} | {waveforms_mib:.0f} |"
        )
    print()
    print(
        f"Warm-cache output equals cold-cache output (allclose, atol 1e-4, NaN = NaN): {same}. "
        f"Resident memory before the transform: {rows[0][1]['rss_before_mib']:.0f} MiB."
    )


if __name__ == "__main__":
    main()
