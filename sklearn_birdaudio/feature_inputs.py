"""What a front end's ``X`` may hold, and how errors name each input.

Shared by :class:`~sklearn_birdaudio.MelSpectrogramTransformer` and the BirdNET front end
(:mod:`sklearn_birdaudio.embeddings`): ``X`` is a list of paths and/or waveforms, a 2-D or
3-D array of waveforms, or a one-column DataFrame or a Series of either; errors name an
input by its path, or by its position in ``X`` for a waveform.
"""

from __future__ import annotations

import os

import numpy as np


def _is_path(item) -> bool:
    return isinstance(item, (str, os.PathLike))


def _as_sources(X) -> list:
    """Split ``X`` into a list of inputs: paths, or arrays of one recording each."""
    if _is_path(X):
        raise ValueError(
            f"X must be a list of audio paths and/or waveforms, got a single path {X!r}; "
            "wrap it in a list: [path]."
        )
    if hasattr(X, "iloc") and hasattr(X, "columns"):  # a pandas DataFrame
        if X.shape[1] != 1:
            raise ValueError(
                f"X as a DataFrame must have exactly one column (of paths or waveforms), got "
                f"{X.shape[1]} columns: {list(X.columns)}."
            )
        X = X.iloc[:, 0]
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # a pandas Series
        X = X.to_numpy()
    if hasattr(X, "tocsr") or hasattr(X, "todense"):
        raise TypeError(
            f"X is a sparse {type(X).__name__}; sparse input is not supported, expected "
            "dense waveforms or audio paths."
        )
    if hasattr(X, "__array__") and not isinstance(X, (np.ndarray, list, tuple)):
        X = np.asarray(X)  # array-likes such as torch tensors
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim == 1:
            raise ValueError(
                f"X is a 1-D array of shape {X.shape}; expected a 2-D array of waveforms "
                "(n_samples, n_times), a list of waveforms or paths. Reshape your data: "
                "to transform one waveform, pass [waveform] or waveform.reshape(1, -1)."
            )
        if X.ndim not in (2, 3):
            raise ValueError(
                f"X has {X.ndim} dimensions (shape {X.shape}); expected (n_samples, n_times) "
                "waveforms or (n_samples, n_channels, n_times) multi-channel waveforms."
            )
        return list(X)
    if not hasattr(X, "__len__") or not hasattr(X, "__getitem__"):
        raise ValueError(
            f"X must be a list of audio paths and/or waveforms, got {type(X).__name__}."
        )
    return list(X)


def _input_name(source, index: int) -> str:
    """How errors name an input: its path, or its position in ``X`` for a waveform."""
    return os.fspath(source) if _is_path(source) else f"X[{index}]"
