"""Training-time data pieces of the classifier: random windows and the validation score.

Recordings longer than the network's window are trained on a fresh random window each
epoch (:class:`RandomWindows`, the training data loader's collate function, which also
applies the augmentations) and predicted on the grid of :func:`window_starts`. After each
epoch :func:`validation_map` scores the validation data by macro average precision.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score

from .log_mel import valid_frames

__all__ = ["RandomWindows", "validation_map", "window_starts"]


def _n_valid_frames(spectrograms: np.ndarray) -> np.ndarray:
    """Number of audio (non-NaN) frames of each spectrogram; padding is at the end."""
    return valid_frames(spectrograms).sum(axis=1)


def window_starts(n_frames: int, window_frames: int, hop_frames: int) -> list[int]:
    """First frame of each window covering ``n_frames`` frames; the last one ends at the end.

    Parameters
    ----------
    n_frames : int
        Frames of the recording.
    window_frames : int
        Frames per window.
    hop_frames : int
        Frames from one window's start to the next.

    Returns
    -------
    list of int
        Starts on a grid of ``hop_frames``, plus one window ending at the last frame when
        the grid does not; a single window at 0 for recordings shorter than one.

    Examples
    --------
    >>> window_starts(10, 4, 3)
    [0, 3, 6]
    >>> window_starts(11, 4, 3)
    [0, 3, 6, 7]
    >>> window_starts(3, 4, 3)
    [0]
    """
    starts = list(range(0, max(n_frames - window_frames, 0) + 1, hop_frames))
    if starts[-1] + window_frames < n_frames:
        starts.append(n_frames - window_frames)
    return starts


class RandomWindows:
    """Collate function that crops each training recording to a random window, then augments.

    The window lies inside the recording's audio (never in its NaN padding); recordings
    shorter than the window are kept whole and padded with NaN, which the network masks.
    The cropped batch then goes through ``augment`` (training batches only).

    Parameters
    ----------
    window_frames : int
        Frames per window.
    random_state : int
        Seed of the window draws and of the augmentations.
    augment : torch module or None, default=None
        Called as ``augment(spectrograms, targets, generator)`` on each cropped batch
        (see :mod:`sklearn_birdaudio.augment`).
    n_classes : int or None, default=None
        Set for multi-class targets (class indices): they are one-hot encoded before
        ``augment``, which may make them soft (mixup).
    """

    def __init__(
        self,
        window_frames: int,
        random_state: int,
        augment: torch.nn.Module | None = None,
        n_classes: int | None = None,
    ):
        self.window_frames = window_frames
        self.augment = augment
        self.n_classes = n_classes
        self.rng = np.random.default_rng(random_state)
        self.generator = torch.Generator().manual_seed(random_state)

    def __call__(self, batch):
        spectrograms = np.stack([np.asarray(item[0]) for item in batch])
        targets = np.stack([np.asarray(item[1]) for item in batch])
        n_valid = _n_valid_frames(spectrograms)
        window = min(self.window_frames, int(n_valid.max()))
        crops = np.full((*spectrograms.shape[:3], window), np.nan, dtype=np.float32)
        starts = self.rng.integers(0, np.maximum(n_valid - window, 0) + 1)
        for crop, spectrogram, start, valid in zip(
            crops, spectrograms, starts, n_valid, strict=True
        ):
            stop = min(start + window, valid)
            crop[..., : stop - start] = spectrogram[..., start:stop]
        crops, targets = torch.from_numpy(crops), torch.from_numpy(targets)
        if self.augment is None:
            return crops, targets
        if self.n_classes is not None:
            targets = torch.nn.functional.one_hot(targets.long(), self.n_classes)
        with torch.no_grad():
            return self.augment(crops, targets.float(), generator=self.generator)


def validation_map(net, X, y) -> float:
    """Macro average precision of the validation data, over classes with a positive.

    Unknown (NaN) targets are left out: a class's average precision is then computed over
    the recordings whose target for it is known. The scorer of skorch's ``EpochScoring``
    that fills the ``valid_mAP`` column of the history.

    Parameters
    ----------
    net : AttentionCNNClassifier
        The network being trained.
    X : dataset or array
        The validation spectrograms.
    y : array-like
        Their targets, encoded as the loss takes them (indicator matrix or class indices).

    Returns
    -------
    float
        NaN when no class has a positive.
    """
    probabilities = net.probabilities_from_logits(net.forward(X, training=False))
    targets = np.asarray(y)
    if getattr(net, "soft_targets", False) and net.multilabel_:  # soft labels: >= 0.5
        targets = np.where(np.isnan(targets), np.nan, (targets >= 0.5).astype(np.float32))
    if not net.multilabel_:
        targets = np.eye(len(net.classes_), dtype=int)[targets]
    elif np.isnan(targets).any():
        return _masked_macro_average_precision(targets, probabilities)
    present = targets.sum(axis=0) > 0
    if not present.any():
        return float("nan")
    return float(
        average_precision_score(targets[:, present], probabilities[:, present], average="macro")
    )


def _masked_macro_average_precision(targets: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean over classes of the average precision over each class's known (non-NaN) targets."""
    precisions = []
    for column in range(targets.shape[1]):
        known = ~np.isnan(targets[:, column])
        if targets[known, column].sum() > 0:
            precisions.append(
                average_precision_score(targets[known, column], probabilities[known, column])
            )
    return float(np.mean(precisions)) if precisions else float("nan")
