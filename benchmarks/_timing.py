"""Timing helper shared by the benchmark scripts."""

import time


def best_seconds(function, repeats: int = 3, warm_up: bool = True) -> float:
    """Fastest of ``repeats`` calls of ``function``, in seconds (these machines are noisy)."""
    if warm_up:
        function()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return min(timings)
