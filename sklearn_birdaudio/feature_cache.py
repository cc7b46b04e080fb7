"""The on-disk cache of front ends' outputs: one entry per file, keyed on its content.

:class:`~sklearn_birdaudio.MelSpectrogramTransformer` (``memory=``) stores each file's
log-mel, keyed on the file's absolute path, size and modification time (an edited file is
recomputed), the parameters that change the output (:data:`CACHE_KEY_PARAMS`) and the
package version. Cache misses are still computed in batches, and each file's spectrogram
is stored without the padding of its batch, so results do not depend on what is cached.
The BirdNET front end keeps each input's window embeddings (:func:`_cached_windows`),
keyed on the same file identity (:func:`_file_key`), or on a waveform's content.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

import numpy as np

from . import __version__
from ._validation import check_memory
from .feature_inputs import _is_path
from .log_mel import valid_frames

__all__ = ["CACHE_KEY_PARAMS", "transform_cached"]

logger = logging.getLogger(__name__)

# The parameters that change a file's spectrogram, hence part of its cache key. Not
# batch_size, device, verbose or memory (same output), nor input_sample_rate (arrays only).
CACHE_KEY_PARAMS = (
    "sample_rate",
    "duration",
    "n_fft",
    "hop_length",
    "n_mels",
    "fmin",
    "fmax",
    "top_db",
    "crop",
    "fft_precision",
)


def _file_key(path) -> tuple[str, int, int] | None:
    """Identify a file's content for the cache: absolute path, size and modification time.

    ``None`` when it cannot be read (then it is not cached, and loading reports the error).
    """
    try:
        resolved = Path(path).resolve()
        stat = resolved.stat()
    except OSError:
        return None
    return str(resolved), stat.st_size, stat.st_mtime_ns


def _cached_log_mel(path, size, mtime_ns, params, spectrogram=None):
    """One cache entry: the log-mel of a file, keyed on the file and the parameters.

    Wrapped with ``memory.cache(..., ignore=["spectrogram"])``, so only the other arguments
    are hashed. ``spectrogram`` is what a miss stores: an array already computed (in a
    batch), or a function that computes it (it defaults to None only so that
    ``check_call_in_cache`` can be called without it).
    """
    return spectrogram() if callable(spectrogram) else spectrogram


def _cached_windows(settings: tuple, key, compute=None) -> np.ndarray:
    """One cache entry: an input's per-window values, keyed on the input and settings.

    BirdNET's window embeddings, and a distillation teacher's window scores (whose
    settings start with ``"teacher"``).

    Wrapped with ``memory.cache(..., ignore=["compute"])``: ``key`` is a file's path, size
    and modification time, or a waveform's hash.
    """
    return compute()


def transform_cached(
    memory,
    params: dict,
    sources: list,
    output,
    bar,
    *,
    compute_one: Callable[[object, int], np.ndarray],
    compute_batches: Callable[..., Iterable[tuple[list[int], np.ndarray]]],
) -> None:
    """Compute the log-mel of ``sources``, reading and storing each file's in ``memory``.

    Files found in the cache are read from it; the other inputs (misses, waveforms) are
    computed in batches as without a cache, and each missing file's spectrogram is
    stored trimmed to its own frames.

    Parameters
    ----------
    memory : str, path, joblib.Memory or None
        The cache, as the transformer's ``memory``.
    params : dict
        The transformer's values of :data:`CACHE_KEY_PARAMS`; the package version is
        added to them in the key.
    sources : list
        The inputs: paths (cached) and waveforms (never cached).
    output : _PaddedRows
        Filled in input order, ``output.put(rows, spectrograms)``.
    bar : tqdm
        Counts the inputs read from the cache (``compute_batches`` counts the others).
    compute_one : callable
        ``compute_one(source, index)``: the log-mel of one input, computed only if its
        entry vanished since it was found (a concurrent clear).
    compute_batches : callable
        ``compute_batches(sources, positions=indices)`` yields ``(rows, log-mel)`` of
        ``sources`` batch by batch; ``indices`` are their positions in the input.
    """
    cached = check_memory(memory).cache(_cached_log_mel, ignore=["spectrogram"])
    params = {**params, "version": __version__}  # a new release may compute differently
    keys = [_file_key(source) if _is_path(source) else None for source in sources]
    to_compute = []
    for index, key in enumerate(keys):
        if key is not None and cached.check_call_in_cache(*key, params):
            # Computes only if the entry vanished since the check (a concurrent clear).
            compute = partial(compute_one, sources[index], index)
            output.put([index], cached(*key, params, spectrogram=compute)[np.newaxis])
            bar.update(1)
        else:
            to_compute.append(index)
    logger.debug(
        "%d of %d inputs read from the cache", len(sources) - len(to_compute), len(sources)
    )
    misses = [sources[index] for index in to_compute]
    for rows, spectrograms in compute_batches(misses, positions=to_compute):
        for row, spectrogram in zip(rows, spectrograms, strict=True):
            index = to_compute[row]
            spectrogram = spectrogram[..., : valid_frames(spectrogram[np.newaxis]).sum()]
            if keys[index] is not None:
                cached(*keys[index], params, spectrogram=spectrogram)
            output.put([index], spectrogram[np.newaxis])
