"""AttentionCNNClassifier: the skorch network that classifies log-mel spectrograms.

The classifier takes what :class:`~sklearn_birdaudio.MelSpectrogramTransformer` returns,
``(n_samples, 1, n_mels, n_frames)`` with NaN frames marking padding, and targets that are
either a 0/1 indicator matrix (multi-label: sigmoid and binary cross-entropy) or 1-D labels
(multi-class: softmax and cross-entropy). NaN in an indicator matrix marks an unknown
target, which the loss leaves out (:class:`~sklearn_birdaudio.losses.MaskedBCEWithLogitsLoss`).
Inputs are checked by :mod:`~sklearn_birdaudio.spectrogram_inputs` and targets encoded by
:mod:`~sklearn_birdaudio.targets`; this module keeps what the estimator learns from them.
Recordings longer than ``window_seconds`` are trained on a fresh random window each epoch
(inside the audio, never in padding; :mod:`~sklearn_birdaudio.training`) and predicted
window by window, the windows' logits aggregated by ``max`` or ``mean``, through the
network's fused or compiled copy (:mod:`~sklearn_birdaudio.inference`).
With ``checkpoint_dir`` set, training saves its whole state after every epoch
(:class:`~sklearn_birdaudio.checkpoints.TrainingCheckpoint`) and a later ``fit`` resumes an
interrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import os

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping, EpochScoring, LRScheduler
from skorch.dataset import ValidSplit, unpack_data
from skorch.history import History
from skorch.utils import to_tensor

from ._deprecation import deprecate_positional
from ._validation import check_integer, check_real
from .augment import make_augmentation
from .checkpoints import TrainingCheckpoint, _read_checkpoint, describe_run
from .devices import resolve_device
from .inference import (
    AGGREGATIONS,
    _check_inference,
    cached_inference_module,
    windowed_logits,
)
from .losses import MaskedBCEWithLogitsLoss
from .modules import AttentionCNN
from .spec import AudioSpec, spec_of
from .spectrogram_inputs import check_spectrograms
from .targets import encode_targets
from .training import RandomWindows, validation_map

__all__ = ["AttentionCNNClassifier"]

logger = logging.getLogger(__name__)


class AttentionCNNClassifier(ClassifierMixin, NeuralNet):
    """Residual CNN with attention pooling for log-mel spectrograms, as a scikit-learn classifier.

    A skorch :class:`~skorch.NeuralNet` around :class:`~sklearn_birdaudio.AttentionCNN`,
    trained with AdamW, a cosine learning-rate schedule and early stopping on the
    validation macro mAP that restores the best epoch's weights.

    Parameters
    ----------
    module : torch module class, default=AttentionCNN
        The network; ``n_classes`` and ``n_mels`` are set from the data in ``fit``. Its
        sizes are parameters: ``module__base_filters``, ``module__n_blocks``,
        ``module__n_heads``, ``module__dropout``.
    criterion : torch loss class, optional
        ``None`` picks :class:`~sklearn_birdaudio.losses.MaskedBCEWithLogitsLoss` for
        multi-label targets (``BCEWithLogitsLoss``, bit for bit, on targets without NaN;
        NaN targets, unknown, are left out of it) and ``CrossEntropyLoss`` for
        multi-class ones. Another criterion refuses NaN targets.
    optimizer : torch optimizer class, default=torch.optim.AdamW
    lr : float, default=1e-3
    max_epochs : int, default=50
    batch_size : int, default=32
    optimizer__weight_decay : float, default=1e-5
    patience : int, default=5
        Epochs without a higher validation macro mAP before training stops (the best
        epoch's weights are then restored). ``None`` disables early stopping. The mAP is
        what users care about: under augmentation and on few recordings the validation
        loss stops improving long before it does (a default pipeline on
        ``make_birdsong`` stopped at macro mAP 0.49 on the loss, see
        ``docs/benchmarks.md``).
    validation_fraction : float or None, default=0.2
        Share of the training data held out for validation (not stratified, so it works
        for multi-label targets). ``None`` trains on everything, without early stopping.
    window_seconds : float, default=5.0
        Length of the window the network sees. Longer recordings are trained on a random
        window per epoch and predicted window by window.
    overlap_seconds : float, default=2.5
        Overlap of successive windows at prediction.
    crops_per_recording : int, default=1
        Random windows drawn from every training recording per epoch: an epoch then
        passes over the training data this many times, each time with fresh crops (and
        fresh augmentations), so early stopping and the learning-rate schedule count in
        larger steps.
    augment : None, "default", torch module or list of torch modules, default=None
        Augmentation of the training batches after cropping (never at prediction or
        validation): ``"default"`` is
        :func:`~sklearn_birdaudio.augment.default_augmentation`; a module or a list of
        modules from :mod:`sklearn_birdaudio.augment` (or your own with the same
        ``forward(spectrograms, targets, generator)``). Multi-class targets are one-hot
        encoded for them, and mixup makes them soft. Seeded by ``random_state``.
    aggregation : {"max", "mean"}, default="max"
        How a recording's window logits become its logit.
    threshold : float, default=0.5
        Probability at which ``predict`` says a class is present (multi-label).
    soft_targets : bool, default=False
        Accept soft labels: an indicator matrix ``y`` of probabilities in [0, 1] (a
        teacher's, in :class:`~sklearn_birdaudio.DistilledClassifier`), which the binary
        cross-entropy takes as they are. The validation mAP counts a target >= 0.5 as
        present.
    predict_batch_size : int or None, default=None
        Windows per forward pass when predicting and validating. ``None`` means 1 on
        the CPU, where single windows are fastest (32 vs 14 clips/s at batch 32 for the
        default network on 2 cores, benchmarks/model.py: activations stay in cache) and
        lightest in memory, and ``batch_size`` on CUDA. ``iterator_valid__batch_size``,
        when given, wins.
    inference : {"fused", "eager", "compiled"}, default="fused"
        How the fitted network runs when predicting and validating (training is
        unaffected); every path runs under ``torch.inference_mode``.

        - ``"fused"``: a copy of the network with its batch norms folded into the
          convolutions and, on the CPU, channels-last weights
          (:meth:`AttentionCNN.for_inference`). It gives the same probabilities as
          ``"eager"`` up to float rounding and is rebuilt whenever the weights change.
          A module without ``for_inference`` runs as it is.
        - ``"eager"``: the trained module itself.
        - ``"compiled"``: the fused copy through ``torch.compile`` with inductor's
          ``freezing`` (``compile__...`` parameters are passed on; see
          :func:`~sklearn_birdaudio.inference.inference_module`). The first prediction
          after every change of weights compiles, for seconds to a minute, and the CPU
          needs a C++ compiler.

        ``benchmarks/speed.py`` measures the three (docs/benchmarks.md).
    random_state : int, RandomState or None, default=None
        Seeds the weights, the validation split, the shuffling, the windows and dropout,
        without touching the global generators. On the CPU, two fits with the same integer
        seed give identical weights and predictions (same torch version and number of
        threads). On CUDA, cuDNN and atomic additions make training nondeterministic
        unless ``torch.use_deterministic_algorithms(True)`` is set (see the user guide).
    checkpoint_dir : str, path-like or None, default=None
        Folder where ``fit`` saves the whole training state after every epoch (file
        ``checkpoint.pt``, see :class:`~sklearn_birdaudio.checkpoints.TrainingCheckpoint`).
        If the folder holds an unfinished run with the same parameters and training data,
        ``fit`` resumes it at the epoch after the last one saved and ends with the same
        weights as an uninterrupted run. A finished run, or one with other parameters (a
        warning says which), is started afresh and overwritten. ``verbose``, ``device``,
        ``threshold`` and ``callbacks`` may change between the two fits; the state of
        callbacks you add is not saved. Use one folder per model: clones (in
        ``GridSearchCV``, say) share it.
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
    audio_spec_ : AudioSpec
        The spec of the training spectrograms (what
        :class:`~sklearn_birdaudio.MelSpectrogramTransformer` made them with: they carry
        it), with the window this classifier scores. It turns ``window_seconds`` into
        frames; spectrograms of another sample rate or hop are refused at prediction.
        Plain arrays that carry no spec are taken as the default front end's (32 kHz,
        hop 512): wrap others in :class:`~sklearn_birdaudio.Spectrograms`.
    n_features_in_ : int
        The same number, by scikit-learn's name: the mel bands are the features of each
        frame (the number of frames may vary).
    history_ : skorch History
        Per-epoch train and validation loss, validation macro mAP, learning rate.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_birdaudio import AttentionCNNClassifier, AudioSpec, Spectrograms
    >>> spectrograms = np.random.default_rng(0).normal(size=(8, 1, 16, 40))
    >>> cnn = AttentionCNNClassifier(
    ...     module__base_filters=4, module__n_blocks=2, module__n_heads=2, max_epochs=2,
    ...     validation_fraction=None, window_seconds=1.0, overlap_seconds=0.5,
    ...     random_state=0, verbose=0,
    ... ).fit(Spectrograms(spectrograms, AudioSpec(sample_rate=16000)), ["wren", "owl"] * 4)
    >>> cnn.predict_proba(spectrograms).shape
    (8, 2)
    >>> cnn.classes_.tolist()
    ['owl', 'wren']
    """

    @deprecate_positional
    def __init__(
        self,
        *,
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
        crops_per_recording: int = 1,
        augment=None,
        aggregation: str = "max",
        threshold: float = 0.5,
        soft_targets: bool = False,
        predict_batch_size: int | None = None,
        inference: str = "fused",
        random_state=None,
        checkpoint_dir: str | os.PathLike | None = None,
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
        self.crops_per_recording = crops_per_recording
        self.augment = augment
        self.aggregation = aggregation
        self.threshold = threshold
        self.soft_targets = soft_targets
        self.predict_batch_size = predict_batch_size
        self.inference = inference
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir

    def __setattr__(self, name, value):
        if name == "augment":  # a parameter that may hold modules, not a part of the net
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _get_param_names(self):
        # skorch takes every attribute not ending in "_" for a parameter, private ones
        # included: what fit keeps (_seed, _random_windows) and skorch's own bookkeeping
        # (_params_to_validate, rebuilt from the keyword arguments) must not be cloned.
        return [name for name in super()._get_param_names() if not name.startswith("_")]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN frames mark padding
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True  # a 0/1 indicator y
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

    def set_params(self, **params):
        """As skorch's; a fitted net re-initialized by it lands on the resolved device, and
        its new optimizer resumes the learning-rate schedule (``partial_fit``)."""
        if "device" in params or not getattr(self, "initialized_", False):
            return super().set_params(**params)
        with self._on_resolved_device():  # skorch moves a re-made module to self.device
            super().set_params(**params)
        for group in self.optimizer_.param_groups:  # what a resumed scheduler starts from
            group.setdefault("initial_lr", group["lr"])
        return self

    def __setstate__(self, state):
        state.setdefault("inference", "fused")  # pickled before these parameters existed
        state.setdefault("soft_targets", False)
        # Pickled when the classifier kept its own copy of the front end's framing.
        legacy = {name: state.pop(name) for name in ("sample_rate", "hop_length") if name in state}
        if legacy and "n_mels_" in state and "audio_spec_" not in state:
            state["audio_spec_"] = _legacy_spec(legacy, state["window_seconds"])
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

    # -- model files (sklearn_birdaudio.persistence) -------------------------------------
    def _safe_state(self) -> dict | None:
        """What a model file keeps of this fitted classifier; ``None`` when unfitted.

        Returns
        -------
        state : dict or None
            ``classes_`` (1-D array), ``multilabel_`` (bool), ``n_mels_`` (int),
            ``audio_spec_`` (:class:`~sklearn_birdaudio.AudioSpec`), ``seed`` (int, of
            the training windows), ``history`` (list of the history's dicts) and
            ``weights`` (the network's state dict: weights and buffers, copied to the CPU).
            Optimizer state is not kept.
        """
        if not hasattr(self, "module_"):
            return None
        module = getattr(self.module_, "_orig_mod", self.module_)  # compiled
        weights = {
            key: tensor.detach().to("cpu").clone().contiguous()
            for key, tensor in module.state_dict().items()
        }
        return {
            "classes_": np.asarray(self.classes_),
            "multilabel_": bool(self.multilabel_),
            "n_mels_": int(self.n_mels_),
            "audio_spec_": self.audio_spec_,
            "seed": int(self._seed),
            "history": list(self.history_),
            "weights": weights,
        }

    def _restore_safe_state(self, state: dict) -> None:
        """Become the fitted classifier that :meth:`_safe_state` described.

        The network is built on the resolved device and takes the weights; building it
        draws random initial weights, so the caller's random generator is left as it was.

        Parameters
        ----------
        state : dict
            As :meth:`_safe_state` returns it, every value already checked by the caller
            (``weights`` with exactly the names, shapes and dtypes of the network that
            ``classes_``, ``n_mels_`` and the ``module__`` parameters make).
        """
        self.audio_spec_ = state["audio_spec_"]
        self.classes_ = state["classes_"]
        self.multilabel_ = state["multilabel_"]
        self.n_mels_ = state["n_mels_"]
        self._seed = state["seed"]
        self._random_windows = RandomWindows(self._window_frames, self._seed)
        with self._on_resolved_device(), torch.random.fork_rng(devices=[]):
            self.initialize()
        getattr(self.module_, "_orig_mod", self.module_).load_state_dict(state["weights"])
        self.history_ = History(state["history"])

    # -- inputs and targets -------------------------------------------------------------
    def _check_spectrograms(self, X, reset: bool) -> np.ndarray:
        """Validate spectrograms (:func:`~sklearn_birdaudio.spectrogram_inputs.check_spectrograms`).

        With ``reset``, learn the spec ``X`` carries (``audio_spec_``) and its mel bands
        (``n_mels_``); otherwise refuse spectrograms framed otherwise than those it was
        fitted on, or of other mel bands.
        """
        carried = spec_of(X)
        if not reset and carried is not None and not carried.frames_match(self.audio_spec_):
            raise ValueError(
                f"X holds spectrograms at sample_rate={carried.sample_rate}, "
                f"hop_length={carried.hop_length}, but {type(self).__name__} was fitted on "
                f"sample_rate={self.audio_spec_.sample_rate}, "
                f"hop_length={self.audio_spec_.hop_length}: its windows would cover other "
                "lengths of audio. Use the MelSpectrogramTransformer settings of the fit."
            )
        X = check_spectrograms(X)
        if reset:  # only once X is valid: a refused fit leaves the fitted model as it was
            self.audio_spec_ = self.learned_spec(carried)
            self.n_mels_ = X.shape[2]
        elif X.shape[2] != self.n_mels_:
            # The first words are scikit-learn's, which tools and tests match.
            raise ValueError(
                f"X has {X.shape[2]} features, but {type(self).__name__} is expecting "
                f"{self.n_mels_} features as input (mel bands); use the same "
                "MelSpectrogramTransformer(n_mels=...) for fit and predict."
            )
        return X

    @property
    def n_features_in_(self) -> int:
        """Mel bands of the training spectrograms, as ``n_mels_`` (frames may vary)."""
        return self.n_mels_

    def _encode_targets(self, y, reset: bool, classes=None) -> np.ndarray:
        """Targets as the loss expects them; ``reset`` sets ``classes_`` and ``multilabel_``.

        See :func:`~sklearn_birdaudio.targets.encode_targets`: NaN in an indicator matrix
        (unknown targets) is kept when the criterion leaves it out, and refused otherwise.
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        criterion = self.criterion
        if criterion is not None and not isinstance(criterion, type):
            criterion = type(criterion)  # an instance, or a callable such as a partial
        targets, self.classes_, self.multilabel_ = encode_targets(
            y,
            allow_unknown=criterion is None or issubclass(criterion, MaskedBCEWithLogitsLoss),
            classes=classes,
            fitted=None if reset else (self.classes_, self.multilabel_),
            soft=bool(self.soft_targets),
        )
        return targets

    def _validate_params(self):
        moved = sorted({"sample_rate", "hop_length"} & set(self._params_to_validate))
        if moved:  # parameters of the classifier before the audio spec
            raise ValueError(
                f"{type(self).__name__} has no {' or '.join(moved)} any more: the front "
                f"end frames the audio (MelSpectrogramTransformer({moved[0]}=...)) and the "
                "classifier learns it from the spectrograms it is given (audio_spec_). For "
                "plain arrays, wrap them: Spectrograms(X, AudioSpec(sample_rate=..., "
                "hop_length=...))."
            )
        super()._validate_params()

    def _check_params(self) -> None:
        for name in ("max_epochs", "crops_per_recording"):
            check_integer(getattr(self, name), name, min_val=1)
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(
                f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}."
            )
        window_message = (
            f"window_seconds must be > 0 and 0 <= overlap_seconds < window_seconds, got "
            f"window_seconds={self.window_seconds!r}, overlap_seconds={self.overlap_seconds!r}."
        )
        window = check_real(
            self.window_seconds, "window_seconds", min_val=0, include_boundaries="neither",
            message=window_message,
        )  # fmt: skip
        check_real(
            self.overlap_seconds, "overlap_seconds", min_val=0, max_val=window,
            include_boundaries="left", message=window_message,
        )  # fmt: skip
        check_real(
            self.validation_fraction, "validation_fraction", min_val=0, max_val=1,
            include_boundaries="neither", allow_none=True,
            message=f"validation_fraction must be in (0, 1) or None, got "
            f"{self.validation_fraction!r}.",
        )  # fmt: skip
        check_real(
            self.threshold, "threshold", min_val=0, max_val=1, include_boundaries="neither",
            message=f"threshold must be in (0, 1), got {self.threshold!r}.",
        )  # fmt: skip
        _check_inference(self.inference)
        make_augmentation(self.augment)  # raises on what it cannot use
        check_integer(self.predict_batch_size, "predict_batch_size", min_val=1, allow_none=True)

    @property
    def _window_frames(self) -> int:
        return self.audio_spec_.frames(self.window_seconds)

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
        return self.audio_spec_.hop_frames(self.window_seconds - self.overlap_seconds)

    def legacy_spec(self, framing: dict) -> AudioSpec:
        """The spec of a classifier saved when it kept ``sample_rate`` and ``hop_length``.

        Only its framing is known; the rest of a pipeline's spec is its front end's, which
        :func:`~sklearn_birdaudio.get_audio_spec` asks.
        """
        return _legacy_spec(framing, self.window_seconds)

    def learned_spec(self, spec: AudioSpec | None) -> AudioSpec:
        """The spec this classifier takes from data of ``spec`` (``None``: the default's).

        Its window is the clip's when the front end crops (each input is one window),
        else ``window_seconds``.
        """
        spec = AudioSpec() if spec is None else spec
        window = spec.clip_seconds if spec.clip_seconds is not None else self.window_seconds
        return spec.replace(window_seconds=float(window))

    # -- skorch hooks -------------------------------------------------------------------
    def initialize_module(self):
        kwargs = {"n_classes": len(self.classes_), "n_mels": self.n_mels_}
        kwargs.update(self.get_params_for("module"))
        self.module_ = self.initialized_instance(self.module, kwargs)
        return self

    def initialize_criterion(self):
        criterion = self.criterion
        if criterion is None:
            criterion = MaskedBCEWithLogitsLoss if self.multilabel_ else torch.nn.CrossEntropyLoss
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
                    EarlyStopping(
                        monitor="valid_mAP",
                        lower_is_better=False,
                        patience=self.patience,
                        load_best=True,
                    ),
                )
            )
        if self.checkpoint_dir is not None:  # last: it saves what the others updated
            ours.append(("checkpoint", TrainingCheckpoint(self.checkpoint_dir)))
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
            seed = getattr(self, "_training_seed", self._seed)
            kwargs.setdefault("generator", torch.Generator().manual_seed(seed))
            kwargs["collate_fn"] = self._random_windows
            if self.crops_per_recording > 1:  # every recording k times, shuffled together
                indices = np.tile(np.arange(len(dataset)), self.crops_per_recording)
                dataset = torch.utils.data.Subset(dataset, indices.tolist())
            iterator = self.iterator_train(dataset, **kwargs)
            self._train_generator = getattr(iterator, "generator", None)  # for checkpoints
            return iterator
        if not training:
            kwargs = self.get_params_for("iterator_valid")
            kwargs["batch_size"] = self._predict_batch_size
            if kwargs["batch_size"] == -1:  # skorch's "the whole dataset"
                kwargs["batch_size"] = len(dataset)
            return self.iterator_valid(dataset, **kwargs)
        iterator = super().get_iterator(dataset, training=training)
        self._train_generator = getattr(iterator, "generator", None)
        return iterator

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self._announce_training(X)
        state = getattr(self, "_resume", None)
        if state is None:
            return
        # Restored before the callbacks begin: the scorers then find their best scores in
        # the history and the learning-rate scheduler the epochs done (TrainingCheckpoint
        # restores the rest, after them).
        self.module_.load_state_dict(state["module"])
        self.optimizer_.load_state_dict(state["optimizer"])
        self.history_ = History(state["metadata"]["history"])

    def _announce_training(self, X) -> None:
        """One line before the first epoch, whose row can take minutes to come."""
        log = dict(self.callbacks_).get("print_log")
        if not self.verbose or log is None or X is None:
            return
        n_weights = sum(parameter.numel() for parameter in self.module_.parameters())
        held_out = (
            f", {self.validation_fraction:.0%} of them held out for validation"
            if self.validation_fraction
            else ""
        )
        log.sink(
            f"Training {n_weights:,} weights on {len(X)} clips{held_out}: up to "
            f"{self.max_epochs} epochs on {next(self.module_.parameters()).device.type}, a row "
            "after each."
        )

    def evaluation_step(self, batch, training=False):
        """Forward pass for prediction; without training, under ``torch.inference_mode``."""
        if training:
            return super().evaluation_step(batch, training=True)
        self.check_is_fitted()
        Xi, _ = unpack_data(batch)
        with torch.inference_mode():
            self._set_training(False)
            return self.infer(Xi)

    def _inference_module(self) -> torch.nn.Module:
        """The module that scores batches: ``module_`` in training, else per ``inference``.

        The fused (or compiled) copy is cached, and rebuilt whenever the weights change
        (:func:`~sklearn_birdaudio.inference.cached_inference_module`).
        """
        return cached_inference_module(self.module_, self.inference, self.get_params_for("compile"))

    def infer(self, x, **fit_params):
        """Logits of a batch; inputs longer than the window are scored window by window."""
        x = to_tensor(x, device=resolve_device(self.device))
        return windowed_logits(
            self._inference_module(),
            x,
            window_frames=self._window_frames,
            hop_frames=self._hop_frames,
            batch_size=self._predict_batch_size,
            aggregation=self.aggregation,
        )

    # -- scikit-learn API ---------------------------------------------------------------
    def fit(self, X, y):
        """Train on spectrograms ``X`` and targets ``y``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, 1, n_mels, n_frames)
            Log-mel spectrograms; NaN frames are padding.
        y : array-like of shape (n_samples, n_classes) or (n_samples,)
            A 0/1 indicator matrix (multi-label; a DataFrame's columns name the classes)
            or class labels (multi-class). In an indicator matrix of two or more columns,
            NaN marks an unknown target (a recording known to hold one species, say,
            and not known to lack the others): the loss and the validation mAP leave it
            out. Only with ``criterion=None`` or a
            :class:`~sklearn_birdaudio.losses.MaskedBCEWithLogitsLoss`.

        Returns
        -------
        self : AttentionCNNClassifier
        """
        return self._train(X, y, initialize=not (self.warm_start and self.initialized_))

    def partial_fit(self, X, y, classes=None):
        """Train ``max_epochs`` more epochs, from the current weights once fitted.

        The first call initializes the network as ``fit`` does; later ones need spectrograms
        with as many mel bands and targets of the same classes. Not checkpointed.

        Parameters
        ----------
        X : ndarray of shape (n_samples, 1, n_mels, n_frames)
            Log-mel spectrograms; NaN frames are padding.
        y : array-like of shape (n_samples, n_classes) or (n_samples,)
            As in :meth:`fit`.
        classes : array-like, optional
            Every class label, for a first call whose ``y`` lacks some (multi-class), or
            the names of the columns of ``y`` (multi-label). Ignored after the first call.

        Returns
        -------
        self : AttentionCNNClassifier
        """
        return self._train(X, y, initialize=not self.initialized_, classes=classes)

    def _train(self, X, y, initialize: bool, classes=None):
        """``fit`` (``initialize``: a new network; a checkpoint) and ``partial_fit``."""
        self._check_params()
        X = self._check_spectrograms(X, reset=initialize)
        targets = self._encode_targets(y, reset=initialize, classes=classes)
        if initialize:
            self._seed = int(check_random_state(self.random_state).randint(2**31 - 1))
            self._training_seed = self._seed
        else:  # more training draws other batches and dropout masks, reproducibly
            sequence = np.random.SeedSequence([self._seed, len(self.history)])
            self._training_seed = int(sequence.generate_state(1)[0] >> 1)
        fit_params = {"_routing_method": "fit" if initialize else "partial_fit"}
        self._resume = None
        if initialize and self.checkpoint_dir is not None:
            self._checkpoint_run = describe_run(self, X, targets)
            self._resume = _read_checkpoint(self.checkpoint_dir, self._checkpoint_run)
        if self._resume is not None:
            done = self._resume["metadata"]["epochs"]
            self._seed = self._training_seed = self._resume["metadata"]["seed"]
            fit_params["epochs"] = max(self.max_epochs - done, 0)
            logger.info("Resuming training after epoch %d of %d.", done, self.max_epochs)
        if initialize:
            self._random_windows = RandomWindows(self._window_frames, self._seed)
        self._random_windows.window_frames = self._window_frames
        self._random_windows.augment = make_augmentation(self.augment)
        self._random_windows.n_classes = None if self.multilabel_ else len(self.classes_)
        device = resolve_device(self.device)
        cuda = []
        if device.type == "cuda":
            cuda = [torch.cuda.current_device() if device.index is None else device.index]
        try:
            # Seed (and afterwards restore) only the generators training draws from.
            with self._on_resolved_device(), torch.random.fork_rng(devices=cuda):
                torch.default_generator.manual_seed(self._training_seed)
                for index in cuda:
                    with torch.cuda.device(index):
                        torch.cuda.manual_seed(self._training_seed)
                if initialize:
                    self.initialize()
                super().partial_fit(X, targets, **fit_params)
        finally:
            for name in ("_resume", "_checkpoint_run", "_train_generator", "_training_seed"):
                self.__dict__.pop(name, None)
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
        # Nothing here sets an attribute: threads may share one fitted classifier.
        logits = self.forward(X, training=False)
        return self.probabilities_from_logits(logits)

    def predict(self, X) -> np.ndarray:
        """Predicted classes: a 0/1 matrix (multi-label, at ``threshold``) or labels."""
        probabilities = self.predict_proba(X)
        if self.multilabel_:
            return (probabilities >= self.threshold).astype(np.int64)
        return self.classes_[probabilities.argmax(axis=1)]


def _legacy_spec(framing: dict, window_seconds: float) -> AudioSpec:
    """A spec of the framing parameters of an older classifier and its window."""
    return AudioSpec(**framing, window_seconds=float(window_seconds), clip_seconds=None)
