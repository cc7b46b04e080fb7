"""Training a student network beyond a plain fit: extra outputs, a borrowed loss, balanced epochs.

:class:`~sklearn_birdaudio.DistilledClassifier` trains an
:class:`~sklearn_birdaudio.AttentionCNNClassifier` with what a plain fit does not give it:

- **Embedding targets** (:func:`embedding_targets`): an embedder's window embeddings as
  whitened principal components squashed into (0, 1), appended to the class targets as
  extra outputs of the network's head, with per-column loss weights
  (:func:`column_weights`). After training :func:`keep_class_outputs` cuts the head back
  to the classes' outputs, so that the fitted network is the one a plain fit would make.
- **A loss for training only** (:func:`fit_with_loss`): the classifier trains with the
  criterion parameters given (a temperature, column weights) and gets its default loss
  back afterwards, so that its model file names no loss.
- **Class balance** (:func:`balanced_repeats`): how many times each window is shown per
  epoch, so that the windows of rare classes count more than their number.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA

__all__ = [
    "EMBEDDING_COMPONENTS",
    "balanced_repeats",
    "column_weights",
    "embedding_targets",
    "fit_with_loss",
    "keep_class_outputs",
]

#: Whitened principal components of the window embeddings a student regresses.
EMBEDDING_COMPONENTS = 64
#: Components whose variance is below this share of the first one's are left out.
_RELATIVE_VARIANCE_FLOOR = 1e-6


def embedding_targets(embeddings) -> np.ndarray:
    """The regression targets of window embeddings: ``sigmoid`` of whitened components.

    Parameters
    ----------
    embeddings : array-like of shape (n_windows, n_features)
        One embedding per training window.

    Returns
    -------
    ndarray of shape (n_windows, n_components), float32
        The first :data:`EMBEDDING_COMPONENTS` principal components (fewer with fewer
        windows or features), whitened, through a sigmoid; components without variance
        are left out (whitening would make their round-off noise a target).

    Raises
    ------
    ValueError
        If an embedding is not finite, or there are fewer than two windows.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if not np.isfinite(embeddings).all():
        raise ValueError("The embedder gave non-finite window embeddings.")
    n_components = min(EMBEDDING_COMPONENTS, len(embeddings) - 1, embeddings.shape[1])
    if n_components < 1:
        raise ValueError("Embedding regression needs at least two training windows.")
    pca = PCA(n_components, whiten=True, random_state=0)
    components = pca.fit_transform(embeddings)
    variances = pca.explained_variance_
    components = components[:, variances > _RELATIVE_VARIANCE_FLOOR * variances[0]]
    return (1.0 / (1.0 + np.exp(-np.clip(components, -30, 30)))).astype(np.float32)


def column_weights(n_classes: int, n_components: int, embedding_weight: float) -> np.ndarray:
    """Loss weights of the class columns, then the component columns.

    The mean loss over every column is then ``(class mean + embedding_weight *
    component mean) / (1 + embedding_weight)``: all the components together count
    ``embedding_weight`` times the classes, however many there are of each.

    Examples
    --------
    >>> column_weights(2, 4, 1.0).tolist()
    [1.5, 1.5, 0.75, 0.75, 0.75, 0.75]
    """
    share = embedding_weight * n_classes / n_components
    weights = np.r_[np.ones(n_classes), np.full(n_components, share)]
    return weights * (n_classes + n_components) / n_classes / (1 + embedding_weight)


def balanced_repeats(labels, exponent: float) -> np.ndarray:
    """How many times each training window is shown per epoch, to balance the classes.

    A window counts for the rarest class among its recording's labels (the one that
    needs it most). A class's count is the number of windows labelled with it, and a
    window of a class counted ``n`` times is shown ``round((largest count / n) **
    exponent)`` times, at least once. With ``exponent=1`` every class is shown about as
    often as the commonest (exactly, when each window has one label); ``0.5`` goes half
    the way on a log scale (the square root); ``0`` shows every window once.

    Parameters
    ----------
    labels : array-like of shape (n_windows, n_classes)
        The 0/1 labels of each window's recording; a row of zeros (an unlabelled window)
        is shown once.
    exponent : float
        In [0, 1].

    Returns
    -------
    ndarray of shape (n_windows,), int64

    Examples
    --------
    >>> balanced_repeats([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1], [0, 0]], 1.0).tolist()
    [1, 1, 1, 1, 4, 1]
    >>> balanced_repeats([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1], [0, 0]], 0.5).tolist()
    [1, 1, 1, 1, 2, 1]
    """
    labels = np.asarray(labels) > 0
    repeats = np.ones(len(labels), dtype=np.int64)
    if exponent == 0 or not labels.any():
        return repeats
    counts = labels.sum(axis=0)
    rarest = np.where(labels, counts, np.inf).min(axis=1)  # inf: unlabelled
    labelled = np.isfinite(rarest)
    shown = np.rint((counts.max() / rarest[labelled]) ** exponent)
    repeats[labelled] = np.maximum(shown, 1).astype(np.int64)
    return repeats


def fit_with_loss(classifier, windows, targets, loss: dict) -> None:
    """Fit ``classifier`` with the ``loss`` parameters, then give it its default loss back.

    Parameters
    ----------
    classifier : AttentionCNNClassifier
        Unfitted, with ``criterion=None``.
    windows, targets
        What it is fitted on.
    loss : dict
        ``criterion`` and ``criterion__*`` parameters; ``{}`` fits it as it is.
    """
    if not loss:
        classifier.fit(windows, targets)
        return
    classifier.set_params(**loss)
    try:
        classifier.fit(windows, targets)
    finally:
        for name in loss:
            if name != "criterion":
                delattr(classifier, name)
        classifier.criterion = None
        if getattr(classifier, "initialized_", False):
            classifier.initialize_criterion()


def keep_class_outputs(classifier, n_classes: int) -> None:
    """Cut the head of a fitted classifier's network to its first ``n_classes`` outputs.

    The head's parameters keep their identity (the optimizer and its learning-rate
    schedule still hold them); their data and the optimizer's state of them lose the
    rows of the other outputs, so that more training (``partial_fit``) goes on as usual.
    """
    head = classifier.module_.head
    for parameter in (head.weight, head.bias):
        parameter.data = parameter.data[:n_classes].clone()
        state = classifier.optimizer_.state.get(parameter, {})
        for name, value in state.items():
            if torch.is_tensor(value) and value.ndim and len(value) > n_classes:
                state[name] = value[:n_classes].clone()
    head.out_features = n_classes
    classifier.classes_ = classifier.classes_[:n_classes]
