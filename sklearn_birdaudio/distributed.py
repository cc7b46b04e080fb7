"""Scale out on a Dask cluster: torch threads per worker, detection one task per file.

Two kinds of work outgrow one machine, and both run on `Dask <https://dask.org>`_, the
engine scikit-learn already supports through joblib:

- **Model selection.** ``GridSearchCV``, ``cross_validate`` and friends run their fits on
  the workers under ``joblib.parallel_backend("dask")``; every estimator of the package
  pickles cleanly. Call :func:`set_torch_threads` once per cluster so that the workers'
  torch threads add up to their cores instead of each worker taking them all.
- **Detection of many recordings.** ``detect(model, sources, client=client)``
  (:func:`~sklearn_birdaudio.detect`) sends the fitted model to every worker once and
  scores one file per task; ``on_file=`` receives each file's detections as it finishes.

This module needs the ``dask`` extra (``pip install "sklearn-birdaudio[dask]"``); the rest
of the package never imports Dask.

Examples
--------
>>> from dask.distributed import Client, LocalCluster  # doctest: +SKIP
>>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))  # doctest: +SKIP
>>> set_torch_threads(client)  # doctest: +SKIP
{'tcp://127.0.0.1:40331': 1, 'tcp://127.0.0.1:41687': 1}
>>> with joblib.parallel_backend("dask"):  # doctest: +SKIP
...     search.fit(X_train, Y_train)
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator

from ._validation import check_integer
from .extras import import_extra

__all__ = ["import_extra", "set_torch_threads", "torch_threads_plan"]

logger = logging.getLogger(__name__)


def _cpu_count() -> int:
    """Cores this process may use (affinity and cgroup limits included), on a worker."""
    from dask.system import cpu_count

    return cpu_count()


def torch_threads_plan(client) -> dict[str, int]:
    """Torch threads for each worker so that the workers of a host share its cores.

    A host's cores (as its workers see them) are divided by the number of task threads
    of all the workers on that host: two single-threaded workers on 2 cores get 1 torch
    thread each, one worker with 4 threads on 16 cores gets 4 per task.

    Parameters
    ----------
    client : distributed.Client
        A client connected to the cluster.

    Returns
    -------
    plan : dict
        ``{worker address: torch threads}``.
    """
    workers = client.scheduler_info(n_workers=-1)["workers"]
    cores = client.run(_cpu_count)
    task_threads = Counter()
    for info in workers.values():
        task_threads[info["host"]] += info["nthreads"]
    return {
        address: max(1, cores.get(address, 1) // task_threads[info["host"]])
        for address, info in workers.items()
    }


# glibc's mallopt parameters, and the values that make a Dask worker as fast as a plain
# process (benchmarks/scale.py): Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536,
# and setting any threshold turns off glibc's adaptive mmap threshold, so that every
# tensor above 128 KiB is mmapped and unmapped again: the network ran 2.3x slower.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
TRIM_THRESHOLD_BYTES = 256 * 2**20
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's maximum on 64-bit machines


def _keep_tensors_on_the_heap() -> bool:
    """Let glibc keep freed tensor memory for reuse in this process; False if not glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt)
        return False
    return bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def _set_threads(plan: dict[str, int], dask_worker=None) -> int:
    import torch

    threads = plan.get(dask_worker.address, 1) if dask_worker is not None else 1
    torch.set_num_threads(threads)
    _keep_tensors_on_the_heap()
    return threads


def set_torch_threads(client, n_threads: int | None = None) -> dict[str, int]:
    """Set the torch threads of every worker of a cluster (no oversubscription).

    Each Dask worker process otherwise starts with as many torch threads as the machine
    has cores: two workers on one host then run twice as many threads as cores, which
    is slower than one worker. Call it again after workers join.

    It also lets each worker's memory allocator reuse freed tensor memory: Dask starts
    workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which makes glibc map and unmap every
    tensor above 128 KiB, and the network ran 2.3x slower in such a worker
    (``benchmarks/scale.py``). The mmap threshold is raised to 32 MiB and the trim
    threshold to 256 MiB (``mallopt``; nothing happens where the C library is not glibc).

    Parameters
    ----------
    client : distributed.Client
        A client connected to the cluster.
    n_threads : int, optional
        Threads for every worker; by default :func:`torch_threads_plan`.

    Returns
    -------
    plan : dict
        ``{worker address: torch threads}`` as set.
    """
    if n_threads is None:
        plan = torch_threads_plan(client)
    else:
        n_threads = check_integer(n_threads, "n_threads", min_val=1)
        plan = dict.fromkeys(client.scheduler_info(n_workers=-1)["workers"], n_threads)
    client.run(_set_threads, plan)
    logger.info("torch threads per worker: %s", plan)
    return plan


def _score_on_worker(plan: dict[str, int], scorer, model, source, name):
    """One file's result on a worker, with the worker's share of the cores."""
    from distributed import get_worker

    _set_threads(plan, get_worker())
    return scorer(model, source, name)


def score_on_cluster(client, scorer, model, sources: list, names: list[str]) -> Iterator:
    """``scorer(model, source, name)`` for each source as one task on ``client``'s cluster.

    Results come as they finish. The model is scattered to every worker once
    (``broadcast=True``) and each task refers to it by key, so it is not serialised again
    per file. (Dask's active memory manager may still drop the copy on a worker that has
    no task queued for a while; that worker then fetches it once more.) ``scorer`` is what
    to run (:class:`~sklearn_birdaudio.scoring.FileScorer`
    for :func:`~sklearn_birdaudio.detect`); it turns a file's own failures into its
    result. A task that fails on the cluster (a worker that died, say) gives that file's
    error, built by ``scorer.failed(name, message)``, instead of stopping the others.

    Yields
    ------
    result
        What ``scorer`` returns, per source.
    """
    distributed = import_extra("distributed")

    plan = torch_threads_plan(client)
    [model_future] = client.scatter([model], broadcast=True, hash=False)
    futures = {
        client.submit(_score_on_worker, plan, scorer, model_future, source, name, pure=False): name
        for source, name in zip(sources, names, strict=True)
    }
    try:
        yield from _gather(distributed.as_completed(futures), futures, scorer)
    finally:
        for future in futures:
            future.cancel()
        model_future.release()


def _gather(completed, futures: dict, scorer) -> Iterator:
    """Each finished task's result; a task that failed on the cluster gives its error."""
    for future in completed:
        name = futures[future]
        try:
            result = future.result()
        except Exception as error:  # the task itself failed on the cluster
            message = f"{name}: the task failed on the cluster: {type(error).__name__}: {error}"
            logger.error("skipped %s", message)
            result = scorer.failed(name, message)
        future.release()
        yield result
