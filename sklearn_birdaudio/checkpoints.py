"""Resumable training: the per-epoch checkpoint of a whole training run, and its reading.

:class:`TrainingCheckpoint` saves everything training depends on after every epoch;
``_read_checkpoint`` finds an unfinished run in a folder, and :func:`describe_run` says
what makes two fits the same run (their parameters and data), so that a run is resumed
only by a fit that would have computed the same thing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback

__all__ = ["CHECKPOINT_FILE", "TrainingCheckpoint", "describe_run"]

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 2  # 2: the augmentations' generator
# Parameters that do not change what training computes: a run resumes whatever their value.
NOT_PART_OF_THE_RUN = frozenset(
    {"checkpoint_dir", "verbose", "device", "threshold", "callbacks", "inference"}
)


def _json_value(value):
    """A JSON value standing for a parameter value, the same in every process."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    # Classes and functions by name; other objects by their class (no addresses).
    named = value if hasattr(value, "__qualname__") else type(value)
    return f"{named.__module__}.{named.__qualname__}"


def _plain_json(value):
    """``json.dumps`` default: NumPy scalars and arrays as Python numbers and lists."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _digest(array: np.ndarray) -> str:
    """Hash of an array's dtype, shape and values."""
    array = np.ascontiguousarray(array)
    digest = hashlib.blake2b(f"{array.dtype.str}{array.shape}".encode(), digest_size=16)
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def describe_run(net, X: np.ndarray, targets: np.ndarray) -> dict:
    """What makes two fits the same training run: parameters and data (as JSON).

    Parameters
    ----------
    net : AttentionCNNClassifier
        The classifier being fitted, its ``classes_`` set.
    X : ndarray
        The validated training spectrograms.
    targets : ndarray
        The encoded training targets.

    Returns
    -------
    dict
        ``{"params": ..., "data": ...}``: the parameters that change what training
        computes (not those in ``NOT_PART_OF_THE_RUN``) as JSON values, and digests of the
        data with the class labels and the audio spec the data carries (equal values
        framed otherwise are another run).
    """
    params = {
        name: _json_value(value)
        for name, value in net.get_params(deep=False).items()
        if name not in NOT_PART_OF_THE_RUN and not name.startswith(("callbacks__", "_"))
    }
    data = {
        "X": _digest(X),
        "y": _digest(targets),
        "classes": [str(label) for label in net.classes_],
        "audio_spec": dataclasses.asdict(net.audio_spec_),
    }
    return json.loads(json.dumps({"params": params, "data": data}))


class TrainingCheckpoint(Callback):
    """Save the whole training state after every epoch; restore it to resume a run.

    :class:`~sklearn_birdaudio.AttentionCNNClassifier` adds it when ``checkpoint_dir`` is
    set. After each epoch it writes ``checkpoint.pt`` in ``dirname`` (atomically: a new
    file replaces the old one): the network's weights and buffers, the optimizer's and the
    learning-rate scheduler's states, early stopping's state and best weights, the
    history, and the states of every random number generator training draws from
    (torch's, the window draws', the augmentations', the data loader's shuffling). The
    file holds tensors and plain values only, and is read with
    ``torch.load(weights_only=True)``, which refuses to run code.

    skorch's :class:`~skorch.callbacks.Checkpoint` and
    :class:`~skorch.callbacks.LoadInitState` do not fit: they save the parameters, the
    optimizer and the history in separate files (a crash between two writes leaves a mixed
    state), neither the learning-rate scheduler's nor early stopping's state nor any
    random generator's (a resumed run would then draw other windows, augmentations and
    batches than an uninterrupted one, where this one ends with the same weights bit for
    bit), they do not say which parameters and data a checkpoint belongs to, and they read
    the history and pickled models with code-running ``pickle``.

    Parameters
    ----------
    dirname : str or path-like
        Folder of the checkpoint; created if needed.
    """

    def __init__(self, dirname):
        self.dirname = dirname

    def initialize(self):
        self.epochs_saved_ = 0
        self.pending_random_state_ = None
        return self

    def on_train_begin(self, net, **kwargs):
        self.epochs_saved_ = 0
        self.pending_random_state_ = None
        state = getattr(net, "_resume", None)
        if state is None:
            return
        # The net restored the weights, the optimizer and the history before the other
        # callbacks began (see AttentionCNNClassifier.on_train_begin); what they reset is
        # restored here: early stopping's count, the scorers' best scores, the scheduler
        # (built from the history, it may have set the learning rate: the optimizer again).
        metadata = state["metadata"]
        self.epochs_saved_ = metadata["epochs"]
        net.optimizer_.load_state_dict(state["optimizer"])
        scheduler = getattr(dict(net.callbacks_).get("lr_scheduler"), "lr_scheduler_", None)
        if scheduler is not None and state["lr_scheduler"] is not None:
            scheduler.load_state_dict(state["lr_scheduler"])
        early_stopping = dict(net.callbacks_).get("early_stopping")
        if early_stopping is not None and metadata["early_stopping"] is not None:
            for name, value in metadata["early_stopping"].items():
                setattr(early_stopping, name, value)
            early_stopping.best_model_weights_ = state["best_module"]
        for name, callback in net.callbacks_:  # the scorers' "_best" flags
            if name in metadata["best_scores"]:
                callback.best_score_ = metadata["best_scores"][name]
        self.pending_random_state_ = state

    def on_epoch_begin(self, net, **kwargs):
        # Generators are restored here, once the data loader exists and nothing else can
        # draw from them before the epoch does.
        state, self.pending_random_state_ = self.pending_random_state_, None
        if state is None:
            return
        torch.set_rng_state(state["torch_rng"])
        device = torch.device(net.device)
        if device.type == "cuda" and state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        generator = getattr(net, "_train_generator", None)
        if generator is not None and state["loader_rng"] is not None:
            generator.set_state(state["loader_rng"])
        net._random_windows.rng.bit_generator.state = state["metadata"]["random_windows"]
        net._random_windows.generator.set_state(state["augment_rng"])

    def on_epoch_end(self, net, **kwargs):
        self.epochs_saved_ = len(net.history)
        self.save(net, finished=False)

    def on_train_end(self, net, **kwargs):
        early_stopping = dict(net.callbacks_).get("early_stopping")
        stopped = early_stopping is not None and early_stopping.misses_ >= early_stopping.patience
        if stopped or self.epochs_saved_ >= net.max_epochs:
            self.save(net, finished=True)
        elif getattr(net, "_checkpoint_run", None) is not None:
            logger.warning(
                "Training stopped after epoch %d of %d; fit again with checkpoint_dir=%r "
                "to resume it.", self.epochs_saved_, net.max_epochs, str(self.dirname)
            )  # fmt: skip

    def save(self, net, finished: bool) -> None:
        """Write the training state of ``net`` (``finished``: the run is complete)."""
        run = getattr(net, "_checkpoint_run", None)
        if run is None:  # not inside AttentionCNNClassifier.fit
            return
        callbacks = dict(net.callbacks_)
        early_stopping = callbacks.get("early_stopping")
        scheduler = getattr(callbacks.get("lr_scheduler"), "lr_scheduler_", None)
        generator = getattr(net, "_train_generator", None)
        device = torch.device(net.device)
        metadata = {
            "format": CHECKPOINT_FORMAT,
            "run": run,
            "seed": net._seed,
            # Early stopping ends training before this callback saves the last epoch.
            "epochs": len(net.history) if finished else self.epochs_saved_,
            "finished": finished,
            "history": net.history.to_list(),
            "random_windows": net._random_windows.rng.bit_generator.state,
            "best_scores": {
                name: callback.best_score_
                for name, callback in net.callbacks_
                if hasattr(callback, "best_score_")
            },
            "early_stopping": None
            if early_stopping is None
            else {
                "misses_": early_stopping.misses_,
                "dynamic_threshold_": early_stopping.dynamic_threshold_,
                "best_epoch_": early_stopping.best_epoch_,
            },
        }
        state = {
            "metadata": json.dumps(metadata, default=_plain_json),
            "module": net.module_.state_dict(),
            "optimizer": net.optimizer_.state_dict(),
            "lr_scheduler": None if scheduler is None else scheduler.state_dict(),
            "best_module": getattr(early_stopping, "best_model_weights_", None),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "loader_rng": None if generator is None else generator.get_state(),
            "augment_rng": net._random_windows.generator.get_state(),
        }
        folder = Path(self.dirname)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{CHECKPOINT_FILE}.partial"
        torch.save(state, partial)
        os.replace(partial, folder / CHECKPOINT_FILE)  # a crash never leaves half a file


def _read_checkpoint(dirname, run: dict) -> dict | None:
    """The state of an unfinished run of ``run`` saved in ``dirname``, else ``None``.

    Warns when the folder holds an unfinished run with other parameters or data (the new
    run then overwrites it); raises ``ValueError`` when the file is not a checkpoint.
    """
    path = Path(dirname) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        metadata = json.loads(state["metadata"])
        if not isinstance(metadata, dict):
            raise TypeError(f"its metadata is a {type(metadata).__name__}, not an object")
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, KeyError, IndexError,
            TypeError, ValueError) as error:  # fmt: skip
        raise ValueError(
            f"{path} is not a training checkpoint this version can read ({error}); delete it "
            "or choose another checkpoint_dir."
        ) from error
    if metadata.get("format") != CHECKPOINT_FORMAT:
        changed = ["the checkpoint format"]
    elif metadata["finished"]:
        return None  # nothing to resume: train afresh
    else:
        stored, current = metadata["run"]["params"], run["params"]
        changed = sorted(
            key for key in stored.keys() | current.keys() if stored.get(key) != current.get(key)
        )
        if metadata["run"]["data"] != run["data"]:
            changed.append("the training data")
        if not changed:
            state["metadata"] = metadata
            return state
    warnings.warn(
        f"{path} holds an unfinished run that differs in {', '.join(changed)}; training "
        "starts afresh and overwrites it.",
        UserWarning,
        stacklevel=3,
    )
    return None
