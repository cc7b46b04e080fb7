"""Multi-GPU and mixed-precision training with Hugging Face accelerate.

:class:`AcceleratedAttentionCNNClassifier` is :class:`~sklearn_birdaudio.AttentionCNNClassifier`
with skorch's :class:`~skorch.hf.AccelerateMixin`: an ``accelerate.Accelerator`` places the
network, the optimizer and the data loaders, so the same script trains on one CPU, one GPU,
or several GPUs and machines under ``accelerate launch``. Needs the ``accelerate`` extra
(``pip install "sklearn-birdaudio[accelerate]"``).
"""

from __future__ import annotations

import contextlib

import numpy as np
from skorch.hf import AccelerateMixin

from ._deprecation import deprecate_positional
from .classifier import AttentionCNNClassifier

__all__ = ["AcceleratedAttentionCNNClassifier"]


def _discard(*args, **kwargs) -> None:
    """The epoch log's sink on every process but the main one."""


class AcceleratedAttentionCNNClassifier(AccelerateMixin, AttentionCNNClassifier):
    """:class:`~sklearn_birdaudio.AttentionCNNClassifier` trained through ``accelerate``.

    Everything of the classifier applies (targets, windows, augmentation, aggregation,
    early stopping); the accelerator decides the devices and the precision. Launch the
    training script with ``accelerate launch --multi_gpu --num_processes N script.py``
    to train on N GPUs with distributed data parallelism: each process takes a shard of
    every epoch's batches, and the validation scores are gathered over all of them.

    Parameters
    ----------
    accelerator : accelerate.Accelerator, optional
        The accelerator, e.g. ``Accelerator(mixed_precision="bf16")``. By default one is
        created at ``fit`` (``Accelerator()``: every GPU of the launch, else the CPU) and
        kept as ``accelerator_``.
    device : None, default=None
        Left to the accelerator (skorch's requirement for device placement by accelerate).
    unwrap_after_train : bool, default=True
        Unwrap the network after training, so that the fitted classifier pickles and
        saves (:func:`~sklearn_birdaudio.save_model`) like the plain one.
    callbacks__print_log__sink : "auto" or callable, default="auto"
        Where the epoch log goes: ``"auto"`` prints on the main process only, and not
        at all with ``verbose=0``.
    **kwargs
        Parameters of :class:`~sklearn_birdaudio.AttentionCNNClassifier`.

    Attributes
    ----------
    accelerator_ : accelerate.Accelerator
        The accelerator used by the last ``fit``.

    Examples
    --------
    >>> from accelerate import Accelerator  # doctest: +SKIP
    >>> model = AcceleratedAttentionCNNClassifier(  # doctest: +SKIP
    ...     accelerator=Accelerator(mixed_precision="bf16"), max_epochs=50, random_state=0
    ... ).fit(X_train, Y_train)
    """

    @deprecate_positional
    def __init__(
        self,
        *,
        accelerator=None,
        device=None,
        unwrap_after_train: bool = True,
        callbacks__print_log__sink="auto",
        **kwargs,
    ):
        super().__init__(
            accelerator=accelerator,
            device=device,
            unwrap_after_train=unwrap_after_train,
            callbacks__print_log__sink=callbacks__print_log__sink,
            **kwargs,
        )

    @contextlib.contextmanager
    def _on_resolved_device(self):
        # Fit and predict run inside this: the mixin reads self.accelerator throughout,
        # so the parameter (None by default) is swapped for the one in use meanwhile.
        requested = self.accelerator
        if requested is not None:
            self.accelerator_ = requested
        elif getattr(self, "accelerator_", None) is None:
            from .extras import import_extra

            self.accelerator_ = import_extra("accelerate").Accelerator()
        self.accelerator = self.accelerator_
        try:
            yield
        finally:
            self.accelerator = requested

    def predict_proba(self, X) -> np.ndarray:
        """As :meth:`AttentionCNNClassifier.predict_proba`, under the accelerator.

        skorch's mixin reads ``self.accelerator`` while predicting, which is swapped in
        for the call: unlike the plain classifier, do not share one fitted model between
        threads.
        """
        with self._on_resolved_device():
            return super().predict_proba(X)

    def _initialize_callbacks(self):
        # skorch's mixin makes accelerator.print the sink, which prints whatever verbose
        # says; Python's print is silenced by verbose=0, so the main process gets it.
        requested = self.callbacks__print_log__sink
        if requested == "auto":
            main = self.accelerator.is_main_process
            self.callbacks__print_log__sink = print if main else _discard
        try:
            return AttentionCNNClassifier._initialize_callbacks(self)
        finally:
            self.callbacks__print_log__sink = requested

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)  # unwraps the network
        if self.unwrap_after_train:
            # ... and here the optimizer and the learning-rate schedule, which skorch's
            # mixin leaves wrapped (their wrappers do not pickle).
            for name in self._optimizers:
                optimizer = getattr(self, name + "_")
                setattr(self, name + "_", getattr(optimizer, "optimizer", optimizer))
            for _, callback in self.callbacks_:
                scheduler = getattr(callback, "lr_scheduler_", None)
                if scheduler is None:
                    continue
                scheduler = getattr(scheduler, "scheduler", scheduler)
                optimizer = scheduler.optimizer
                scheduler.optimizer = getattr(optimizer, "optimizer", optimizer)
                callback.lr_scheduler_ = scheduler
        return self

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("accelerator_", None)  # an Accelerator holds process state; made anew
        return state
