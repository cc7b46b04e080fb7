"""AttentionCNNClassifier: the skorch network that classifies log-mel spectrograms.

The classifier takes what :class:`~sklearn_birdaudio.MelSpectrogramTransformer` returns,
``(n_samples, 1, n_mels, n_frames)`` with NaN frames marking padding, and targets that are
either a 0/1 indicator matrix (multi-label: sigmoid and binary cross-entropy) or 1-D labels
(multi-class: softmax and cross-entropy). Recordings longer than ``window_seconds`` are
trained on a fresh random window each epoch (inside the audio, never in padding) and
predicted window by window, the windows' logits aggregated by ``max`` or ``mean``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import torch
from sklearn.base import ClassifierMixin
from sklearn.metrics import average_precision_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping, EpochScoring, LRScheduler
from skorch.dataset import ValidSplit
from skorch.utils import to_tensor

from .devices import resolve_device
from .log_mel import valid_frames
from .modules import AttentionCNN

__all__ = ["AttentionCNNClassifier"]

AGGREGATIONS = ("max", "mean")


def _n_valid_frames(spectrograms: np.ndarray) -> np.ndarray:
    """Number of audio (non-NaN) frames of each spectrogram; padding is at the end."""
    return valid_frames(spectrograms).sum(axis=1)


def window_starts(n_frames: int, window_frames: int, hop_frames: int) -> list[int]:
    """First frame of each window covering ``n_frames`` frames; the last one ends at the end.

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
    """Collate function that crops each training recording to a random window.

    The window lies inside the recording's audio (never in its NaN padding); recordings
    shorter than the window are kept whole and padded with NaN, which the network masks.

    Parameters
    ----------
    window_frames : int
        Frames per window.
    random_state : int
        Seed of the window draws.
    """

    def __init__(self, window_frames: int, random_state: int):
        self.window_frames = window_frames
        self.rng = np.random.default_rng(random_state)

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
        return torch.from_numpy(crops), torch.from_numpy(targets)


def validation_map(net, X, y) -> float:
    """Macro average precision of the validation data, over classes with a positive."""
    probabilities = net.probabilities_from_logits(net.forward(X, training=False))
    targets = np.asarray(y)
    if not net.multilabel_:
        targets = np.eye(len(net.classes_), dtype=int)[targets]
    present = targets.sum(axis=0) > 0
    if not present.any():
        return float("nan")
    return float(
        average_precision_score(targets[:, present], probabilities[:, present], average="macro")
    )


class AttentionCNNClassifier(ClassifierMixin, NeuralNet):
    """Residual CNN with attention pooling for log-mel spectrograms, as a scikit-learn classifier.

    A skorch :class:`~skorch.NeuralNet` around :class:`~sklearn_birdaudio.AttentionCNN`,
    trained with AdamW, a cosine learning-rate schedule and early stopping on the
    validation loss that restores the best epoch's weights.

    Parameters
    ----------
    module : torch module class, default=AttentionCNN
        The network; ``n_classes`` and ``n_mels`` are set from the data in ``fit``. Its
        sizes are parameters: ``module__base_filters``, ``module__n_blocks``,
        ``module__n_heads``, ``module__dropout``.
    criterion : torch loss class, optional
        ``None`` picks ``BCEWithLogitsLoss`` for multi-label targets and
        ``CrossEntropyLoss`` for multi-class ones.
    optimizer : torch optimizer class, default=torch.optim.AdamW
    lr : float, default=1e-3
    max_epochs : int, default=50
    batch_size : int, default=32
    optimizer__weight_decay : float, default=1e-5
    patience : int, default=5
        Epochs without a lower validation loss before training stops (the best epoch's
        weights are then restored). ``None`` disables early stopping.
    validation_fraction : float or None, default=0.2
        Share of the training data held out for validation (not stratified, so it works
        for multi-label targets). ``None`` trains on everything, without early stopping.
    window_seconds : float, default=5.0
        Length of the window the network sees. Longer recordings are trained on a random
        window per epoch and predicted window by window.
    overlap_seconds : float, default=2.5
        Overlap of successive windows at prediction.
    aggregation : {"max", "mean"}, default="max"
        How a recording's window logits become its logit.
    sample_rate, hop_length : int, default=32000, 512
        Those of the spectrograms (the transformer's), to turn seconds into frames.
    threshold : float, default=0.5
        Probability at which ``predict`` says a class is present (multi-label).
    predict_batch_size : int or None, default=None
        Windows per forward pass when predicting and validating. ``None`` means 1 on
        the CPU, where single windows are fastest (25 vs 17 clips/s at batch 32 for the
        default network on 2 cores: activations stay in cache) and lightest in memory,
        and ``batch_size`` on CUDA. ``iterator_valid__batch_size``, when given, wins.
    random_state : int, RandomState or None, default=None
        Seeds the weights, the validation split, the windows and dropout.
    device : str, default="auto"
        ``"auto"`` trains and predicts on CUDA when available, else on the CPU.
    verbose : int, default=1
        Print a line per epoch; 0 is silent.
    **kwargs
        Other skorch parameters (``callbacks``, ``iterator_train__...``, ...). A
        ``train_split`` given here replaces the ``validation_fraction`` split.

    Attributes
    ----------
    classes_ : ndarray
        Class labels (column names of a DataFrame ``y``, else the column indices or the
        sorted labels).
    multilabel_ : bool
        Whether ``y`` was an indicator matrix.
    n_mels_ : int
        Mel bands of the training spectrograms.
    history_ : skorch History
        Per-epoch train and validation loss, validation macro mAP, learning rate.
    """

    def __init__(
        self,
        module=AttentionCNN,
        criterion=None,
        optimizer=torch.optim.AdamW,
        lr: float = 1e-3,
        max_epochs: int = 50,
        batch_size: int = 32,
        optimizer__weight_decay: float = 1e-5,
        patience: int | None = 5,
        validation_fraction: float | None = 0.2,
        window_seconds: float = 5.0,
        overlap_seconds: float = 2.5,
        aggregation: str = "max",
        sample_rate: int = 32000,
        hop_length: int = 512,
        threshold: float = 0.5,
        predict_batch_size: int | None = None,
        random_state=None,
        device: str = "auto",
        verbose: int = 1,
        **kwargs,
    ):
        super().__init__(
            module=module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            optimizer__weight_decay=optimizer__weight_decay,
            device=device,
            verbose=verbose,
            # skorch's own split stays available; by default validation_fraction drives it.
            **{"train_split": None, **kwargs},
        )
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.window_seconds = window_seconds
        self.overlap_seconds = overlap_seconds
        self.aggregation = aggregation
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.threshold = threshold
        self.predict_batch_size = predict_batch_size
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN frames mark padding
        tags.target_tags.multi_output = True
        return tags

    # -- device "auto" ------------------------------------------------------------------
    @contextlib.contextmanager
    def _on_resolved_device(self):
        """Let skorch see a concrete device while keeping the ``device`` parameter as set."""
        requested = self.device
        self.device = str(resolve_device(requested))
        try:
            yield
        finally:
            self.device = requested

    def __setstate__(self, state):
        requested = state["device"]
        if requested not in (None, "auto"):
            # skorch maps tensors saved on an unavailable CUDA device to the CPU and sets
            # device="cpu", with a DeviceWarning.
            super().__setstate__(state)
            return
        # device="auto" loads its tensors wherever it is unpickled and stays "auto".
        state["device"] = str(resolve_device(requested))
        super().__setstate__(state)
        self.device = requested

    # -- inputs and targets -------------------------------------------------------------
    def _check_spectrograms(self, X, reset: bool) -> np.ndarray:
        """Validate spectrograms: float32 (n, 1, n_mels, n_frames), NaN only as padding."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 3:
            X = X[:, np.newaxis]
        if X.ndim != 4:
            raise ValueError(
                f"X has shape {X.shape}; expected log-mel spectrograms of shape (n_samples, "
                "1, n_mels, n_frames) as MelSpectrogramTransformer returns."
            )
        if X.shape[0] == 0 or X.shape[-1] == 0:
            raise ValueError(f"X has shape {X.shape}; expected at least one sample and frame.")
        if np.isinf(X).any():
            raise ValueError(
                "X contains infinite values; expected finite dB values or NaN padding."
            )
        n_valid = _n_valid_frames(X)
        if (n_valid == 0).any():
            empty = np.flatnonzero(n_valid == 0)[:10].tolist()
            raise ValueError(f"X samples {empty} have no valid frame (all NaN).")
        if reset:
            self.n_mels_ = X.shape[2]
        elif X.shape[2] != self.n_mels_:
            raise ValueError(
                f"X has {X.shape[2]} mel bands but the classifier was fitted on {self.n_mels_}; "
                "use the same MelSpectrogramTransformer(n_mels=...) for fit and predict."
            )
        return X

    def _encode_targets(self, y) -> np.ndarray:
        """Set ``classes_``/``multilabel_`` and return targets as the loss expects them."""
        columns = list(y.columns) if isinstance(y, pd.DataFrame) else None
        y = np.asarray(y)
        kind = type_of_target(y)
        if kind == "multilabel-indicator":
            self.multilabel_ = True
            self.classes_ = np.asarray(columns if columns is not None else range(y.shape[1]))
            return y.astype(np.float32)
        if kind in ("binary", "multiclass") and y.ndim == 1:
            self.multilabel_ = False
            encoder = LabelEncoder().fit(y)
            if len(encoder.classes_) < 2:
                raise ValueError(
                    f"y has a single class {encoder.classes_.tolist()}; a classifier needs at "
                    "least 2 classes."
                )
            self.classes_ = encoder.classes_
            return encoder.transform(y).astype(np.int64)
        raise ValueError(
            f"y is {kind!r} of shape {y.shape}; expected a 2-D 0/1 indicator matrix "
            "(multi-label) or 1-D class labels (multi-class)."
        )

    def _check_params(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(
                f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}."
            )
        if not (self.window_seconds > 0 and 0 <= self.overlap_seconds < self.window_seconds):
            raise ValueError(
                f"window_seconds must be > 0 and 0 <= overlap_seconds < window_seconds, got "
                f"window_seconds={self.window_seconds!r}, overlap_seconds={self.overlap_seconds!r}."
            )
        if self.validation_fraction is not None and not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1) or None, got {self.validation_fraction!r}."
            )
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold!r}.")
        size = self.predict_batch_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(
                f"predict_batch_size must be a positive integer or None, got {size!r}."
            )

    @property
    def _window_frames(self) -> int:
        return 1 + int(round(self.window_seconds * self.sample_rate)) // self.hop_length

    @property
    def _predict_batch_size(self) -> int:
        """Windows per forward pass at prediction (see ``predict_batch_size``)."""
        explicit = self.get_params_for("iterator_valid").get("batch_size")
        if explicit is not None:
            return explicit
        if self.predict_batch_size is not None:
            return self.predict_batch_size
        return 1 if resolve_device(self.device).type == "cpu" else self.batch_size

    @property
    def _hop_frames(self) -> int:
        hop_seconds = self.window_seconds - self.overlap_seconds
        return max(1, int(round(hop_seconds * self.sample_rate / self.hop_length)))

    # -- skorch hooks -------------------------------------------------------------------
    def initialize_module(self):
        kwargs = {"n_classes": len(self.classes_), "n_mels": self.n_mels_}
        kwargs.update(self.get_params_for("module"))
        self.module_ = self.initialized_instance(self.module, kwargs)
        return self

    def initialize_criterion(self):
        criterion = self.criterion
        if criterion is None:
            criterion = (
                torch.nn.BCEWithLogitsLoss if self.multilabel_ else torch.nn.CrossEntropyLoss
            )
        self.criterion_ = self.initialized_instance(criterion, self.get_params_for("criterion"))
        return self

    def get_default_callbacks(self):
        default = super().get_default_callbacks()  # ends with print_log
        ours = []
        if self.validation_fraction is not None:
            ours.append(
                ("valid_mAP", EpochScoring(validation_map, name="valid_mAP", lower_is_better=False))
            )
        ours.append(
            ("lr_scheduler", LRScheduler(policy="CosineAnnealingLR", T_max=self.max_epochs))
        )
        if self.validation_fraction is not None and self.patience is not None:
            ours.append(
                (
                    "early_stopping",
                    EarlyStopping(monitor="valid_loss", patience=self.patience, load_best=True),
                )
            )
        return [*default[:-1], *ours, default[-1]]

    def get_split_datasets(self, X, y=None, **fit_params):
        if self.train_split is not None:
            return super().get_split_datasets(X, y, **fit_params)
        dataset = self.get_dataset(X, y)
        if self.validation_fraction is None:
            return dataset, None
        split = ValidSplit(self.validation_fraction, stratified=False, random_state=self._seed)
        return split(dataset, y, **fit_params)

    def get_iterator(self, dataset, training=False):
        if training and "collate_fn" not in self.get_params_for("iterator_train"):
            kwargs = self.get_params_for("iterator_train")
            kwargs.setdefault("batch_size", self.batch_size)
            kwargs.setdefault("shuffle", True)
            generator = torch.Generator().manual_seed(self._seed)
            kwargs.setdefault("generator", generator)
            kwargs["collate_fn"] = self._random_windows
            return self.iterator_train(dataset, **kwargs)
        if not training:
            kwargs = self.get_params_for("iterator_valid")
            kwargs["batch_size"] = self._predict_batch_size
            if kwargs["batch_size"] == -1:  # skorch's "the whole dataset"
                kwargs["batch_size"] = len(dataset)
            return self.iterator_valid(dataset, **kwargs)
        return super().get_iterator(dataset, training=training)

    def infer(self, x, **fit_params):
        """Logits of a batch; inputs longer than the window are scored window by window."""
        x = to_tensor(x, device=self.device)
        window = self._window_frames
        if x.shape[-1] <= window:
            return self.module_(x)
        n_valid = (~torch.isnan(x[:, 0, 0, :])).sum(dim=1).tolist()
        # Each recording gets the grid of its own length, so padding never shifts it.
        grid = [
            (row, start)
            for row, n_frames in enumerate(n_valid)
            for start in window_starts(n_frames, window, self._hop_frames)
        ]
        # Copy out only a forward pass's windows at a time, not every window of the batch.
        size = self._predict_batch_size if self._predict_batch_size > 0 else len(grid)
        logits = torch.cat(
            [
                self.module_(
                    torch.stack([x[row, ..., start : start + window] for row, start in chunk])
                )
                for chunk in (grid[first : first + size] for first in range(0, len(grid), size))
            ]
        )
        owners = torch.tensor([row for row, _ in grid], device=logits.device)
        owners = owners[:, None].expand_as(logits)
        reduce = "amax" if self.aggregation == "max" else "mean"
        aggregated = logits.new_zeros(x.shape[0], logits.shape[-1])
        return aggregated.scatter_reduce(0, owners, logits, reduce=reduce, include_self=False)

    # -- scikit-learn API ---------------------------------------------------------------
    def fit(self, X, y, **fit_params):
        """Train on spectrograms ``X`` and targets ``y``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, 1, n_mels, n_frames)
            Log-mel spectrograms; NaN frames are padding.
        y : array-like of shape (n_samples, n_classes) or (n_samples,)
            A 0/1 indicator matrix (multi-label; a DataFrame's columns name the classes)
            or class labels (multi-class).

        Returns
        -------
        self : AttentionCNNClassifier
        """
        self._check_params()
        X = self._check_spectrograms(X, reset=True)
        targets = self._encode_targets(y)
        self._seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        self._random_windows = RandomWindows(self._window_frames, self._seed)
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with self._on_resolved_device(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(self._seed)
            super().fit(X, targets, **fit_params)
        return self

    def probabilities_from_logits(self, logits: torch.Tensor) -> np.ndarray:
        """Sigmoid (multi-label) or softmax (multi-class) of logits, as a numpy array."""
        logits = logits.float()
        if self.multilabel_:
            return torch.sigmoid(logits).cpu().numpy()
        return torch.softmax(logits, dim=-1).cpu().numpy()

    def predict_proba(self, X) -> np.ndarray:
        """Probability of each class, ``(n_samples, n_classes)``.

        Multi-label: independent sigmoid probabilities; multi-class: softmax (rows sum to
        1). Recordings longer than the window aggregate their windows (``aggregation``).
        """
        check_is_fitted(self, "module_")
        self._check_params()
        X = self._check_spectrograms(X, reset=False)
        with self._on_resolved_device():
            logits = self.forward(X, training=False)
        return self.probabilities_from_logits(logits)

    def predict(self, X) -> np.ndarray:
        """Predicted classes: a 0/1 matrix (multi-label, at ``threshold``) or labels."""
        probabilities = self.predict_proba(X)
        if self.multilabel_:
            return (probabilities >= self.threshold).astype(np.int64)
        return self.classes_[probabilities.argmax(axis=1)]
