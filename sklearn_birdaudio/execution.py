"""Where scoring runs: threads, the read-ahead thread and torch's thread count.

Nothing here knows what is scored: :func:`run_in_threads` takes a callable per item, and
:class:`ReadAhead` any iterator. :func:`~sklearn_birdaudio.detect` passes them its
per-file scorer (:mod:`sklearn_birdaudio.scoring`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

import torch

from ._validation import is_integer

__all__ = ["ReadAhead", "effective_n_jobs", "run_in_threads", "should_read_ahead", "torch_threads"]


class ReadAhead:
    """Iterate ``items`` with up to ``depth`` of them produced ahead in a thread.

    Decoding and resampling run in native code that releases the GIL, so the next batch
    of windows is read while the model scores this one. Items and exceptions arrive in
    order: an error part-way through a file is raised where the plain iterator would
    raise it. Closing the iterator (or dropping it) stops the thread.
    """

    _END = object()

    def __init__(self, items: Iterator, depth: int):
        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(items,), daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, items) -> None:
        try:
            for item in items:
                if not self._put((item, None)):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            self._put((None, error))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None and self._stop.is_set():
                close()
        self._put((self._END, None))

    def __iter__(self):
        try:
            while True:
                item, error = self._queue.get()
                if error is not None:
                    raise error
                if item is self._END:
                    return
                yield item
        finally:
            self._stop.set()


def should_read_ahead(read_ahead: bool | None, n_workers: int = 1) -> bool:
    """Whether to read ahead: as ``read_ahead`` says, or (``None``) if torch leaves a core free.

    On 2 cores with torch on both, reading ahead measured 0.85x to 1.03x in
    ``benchmarks/speed.py``; with one torch thread, 1.1x to 1.5x.
    """
    if read_ahead is not None:
        return bool(read_ahead)
    return n_workers * torch.get_num_threads() < (os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n_threads: int):
    """Set torch's intra-op threads for the duration, then restore them."""
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def effective_n_jobs(n_jobs) -> int:
    """Workers for ``n_jobs`` (``None``: 1; ``-1``: one per core; ``-2``: all but one)."""
    if n_jobs is None:
        return 1
    if not is_integer(n_jobs) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero integer or None, got {n_jobs!r}.")
    cores = os.cpu_count() or 1
    return int(n_jobs) if n_jobs > 0 else max(1, cores + 1 + int(n_jobs))


def run_in_threads(
    score: Callable,
    model,
    items: Iterable[tuple],
    n_workers: int,
    *,
    read_ahead: bool | None = None,
) -> Iterator:
    """``score(model, *item, read_ahead=...)`` for each item in ``n_workers`` threads.

    Results come as they finish. The heavy parts (decoding, resampling, FFTs,
    convolutions) release the GIL, so the threads run in parallel without the start-up
    and pickling costs of processes. The threads share ``model``: its ``predict_proba``
    must not change it (the package's estimators do not; ``tests/test_detection.py``
    checks that threads get the sequential results). torch gets ``cores / n_workers``
    threads each for the duration (restored afterwards).
    """
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    with torch_threads(threads):
        ahead = should_read_ahead(read_ahead, n_workers)
        pool = ThreadPoolExecutor(n_workers, thread_name_prefix="detect")
        try:
            futures = [pool.submit(score, model, *item, read_ahead=ahead) for item in items]
            for future in as_completed(futures):
                yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
