"""Detection throughput on a Dask cluster: 1 vs 2 workers, and the cluster's overhead.

Usage (from the repository root, after ``make install``)::

    .venv/bin/python benchmarks/scale.py [--files 7] [--model model.safetensors]

Scores the real soundscapes of ``../shared/data/soundscapes`` (7 files, 62 minutes of
22.05 kHz MP3) with :func:`sklearn_birdaudio.detect` four ways on this machine and prints
one table of seconds of audio per wall second (decoding, resampling, features, network
and table included):

- in this process (the local path, torch with every core);
- ``n_jobs=2`` (two threads of this process, sharing the model);
- a ``distributed.LocalCluster`` of 1 worker process (``client=``), torch with every core;
- a ``LocalCluster`` of 2 worker processes with 1 thread each, torch threads set by
  :func:`~sklearn_birdaudio.distributed.set_torch_threads` (cores / 2 each).

Every way first scores a 10-s clip (imports and first-call allocations in every process);
the cluster's start-up time is printed apart. The overhead of the cluster path is its
1-worker time against the local one. Without ``--model`` the default pipeline is fitted for
one epoch on eight xeno-canto recordings (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from detection import DATA, default_model

from sklearn_birdaudio import audio_info, detect, load_model
from sklearn_birdaudio.distributed import import_extra, set_torch_threads


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a fitted pipeline saved with save_model")
    parser.add_argument("--soundscapes", type=Path, default=DATA / "soundscapes" / "audio")
    parser.add_argument("--files", type=int, default=7, help="how many soundscapes to score")
    args = parser.parse_args()
    distributed = import_extra("distributed")

    model = load_model(args.model) if args.model else default_model()
    files = [str(path) for path in sorted(args.soundscapes.glob("*.mp3"))[: args.files]]
    audio_seconds = sum(audio_info(path).duration_seconds for path in files)
    warm_up = [np.zeros(10 * 32000, dtype=np.float32)]
    rows, reference = [], None

    def measure(name: str, **options) -> None:
        nonlocal reference
        detect(model, warm_up, verbose=0, **options)
        seconds, detections = timed(lambda: detect(model, files, verbose=0, **options))
        if reference is None:
            reference = detections
        assert detections.durations == reference.durations
        assert len(detections) == len(reference), (name, len(detections), len(reference))
        rows.append((name, seconds))
        print(f"{name}: {seconds:.1f} s", flush=True)

    measure("local, this process")
    measure("local, n_jobs=2 (threads)", n_jobs=2)
    start_up = {}
    for n_workers in (1, 2):
        start = time.perf_counter()
        with (
            distributed.LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            plan = set_torch_threads(client)
            start_up[n_workers] = time.perf_counter() - start
            threads = sorted(set(plan.values()))
            measure(
                f"Dask LocalCluster, {n_workers} worker(s) x 1 thread, torch threads {threads}",
                client=client,
            )

    local = rows[0][1]
    one_worker = rows[2][1]
    print()
    print(
        f"# detect() on {len(files)} soundscapes ({audio_seconds / 60:.0f} min), "
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"dask {distributed.__version__}"
    )
    print()
    print("| how | wall time | x real time | vs local | vs 1 Dask worker |")
    print("|---|---|---|---|---|")
    for name, seconds in rows:
        print(
            f"| {name} | {seconds:.1f} s | {audio_seconds / seconds:.0f} | "
            f"{local / seconds:.2f}x | {one_worker / seconds:.2f}x |"
        )
    print()
    print(
        f"Cluster path overhead (1 worker vs this process): "
        f"{(one_worker - local) / local * 100:+.1f} %. Cluster start-up (not in the times "
        f"above): {start_up[1]:.1f} s for 1 worker, {start_up[2]:.1f} s for 2."
    )


if __name__ == "__main__":
    main()
