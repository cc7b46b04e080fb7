"""Checking spectrogram inputs: what the classifier accepts as ``X`` to fit and predict.

:func:`check_spectrograms` is the input contract of
:class:`~sklearn_birdaudio.AttentionCNNClassifier`: dense, real, finite float32 log-mel
spectrograms ``(n_samples, 1, n_mels, n_frames)`` whose NaN frames are padding at the end,
as :class:`~sklearn_birdaudio.MelSpectrogramTransformer` returns them. What the classifier
learned from its training spectrograms (their spec, their mel bands) it checks itself.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from .log_mel import valid_frames

__all__ = ["check_spectrograms"]


def check_spectrograms(X) -> np.ndarray:
    """``X`` as float32 spectrograms ``(n_samples, 1, n_mels, n_frames)``, or an error.

    Parameters
    ----------
    X : array-like of shape (n_samples, 1, n_mels, n_frames) or (n_samples, n_mels, n_frames)
        Log-mel spectrograms in dB; NaN frames are padding. The channel axis is added to
        3-D input.

    Returns
    -------
    ndarray of float32, shape (n_samples, 1, n_mels, n_frames)
        A plain array (a view of ``X`` when it is float32 already): read the spec that a
        :class:`~sklearn_birdaudio.Spectrograms` carries before.

    Raises
    ------
    TypeError
        If ``X`` is a sparse matrix.
    ValueError
        If ``X`` is complex, not 4-D, empty, holds infinite values, or a sample holds no
        valid (non-NaN) frame.

    Examples
    --------
    >>> import numpy as np
    >>> check_spectrograms(np.zeros((2, 8, 5))).shape
    (2, 1, 8, 5)
    >>> check_spectrograms(np.zeros((2, 16000)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: X has shape (2, 16000); expected log-mel spectrograms of shape ...
    """
    if scipy.sparse.issparse(X):
        raise TypeError(
            f"X is a sparse {type(X).__name__}; sparse input is not supported: expected "
            "dense log-mel spectrograms (n_samples, 1, n_mels, n_frames)."
        )
    X = np.asarray(X)
    if np.iscomplexobj(X):
        raise ValueError("Complex data not supported; expected real log-mel dB values.")
    X = X.astype(np.float32, copy=False)
    if X.ndim == 3:
        X = X[:, np.newaxis]
    if X.ndim != 4:
        raise ValueError(
            f"X has shape {X.shape}; expected log-mel spectrograms of shape (n_samples, "
            "1, n_mels, n_frames) as MelSpectrogramTransformer returns. Reshape your "
            "data, or turn waveforms into spectrograms with MelSpectrogramTransformer."
        )
    if 0 in X.shape:
        raise ValueError(
            f"X has shape {X.shape}; expected at least one sample, mel band and frame."
        )
    if np.isinf(X).any():
        raise ValueError("X contains infinite values; expected finite dB values or NaN padding.")
    n_valid = valid_frames(X).sum(axis=1)
    if (n_valid == 0).any():
        empty = np.flatnonzero(n_valid == 0)[:10].tolist()
        raise ValueError(f"X samples {empty} have no valid frame (all NaN).")
    return X
