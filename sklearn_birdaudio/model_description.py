"""The JSON description of a model in a model file: which classes it may name, and how.

A description is a tree of estimators, each ``{"$estimator": name, "params": {...}}`` and,
once fitted, ``"fitted": {...}`` (:mod:`~sklearn_birdaudio.fitted_state`). Values are
JSON, or tagged objects: ``$tuple``, ``$path``, ``$array`` (a 1-D array), ``$class`` (a
class of :data:`PARAMETER_CLASSES`), ``$estimator`` and ``$tensor`` (a tensor of the
file). :class:`Writer` makes it from a fitted model; :class:`Reader` rebuilds the model,
creating allow-listed classes only (:data:`ESTIMATORS`, exact types: a subclass may
behave differently), each parameter checked against its declared domain
(:mod:`~sklearn_birdaudio.restorable`) before an estimator is built.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelBinarizer, StandardScaler
from skorch.dataset import Dataset

from .classifier import AttentionCNNClassifier
from .embeddings import BirdNETClassifier, BirdNETEmbedder
from .ensemble import VotingClassifier
from .features import MelSpectrogramTransformer
from .fitted_state import (
    FITTED_STATE,
    Invalid,
    Unstorable,
    check_budget,
    expect,
    is_estimator,
    plain,
    read_array,
    write_array,
)
from .linear import EmbeddingLogisticRegression
from .modules import AttentionCNN
from .restorable import LEGACY_NET_FRAMING, check_params, is_local

__all__ = ["ESTIMATORS", "PARAMETER_CLASSES", "Reader", "Writer", "supported"]

# The only classes a file can name. Exact types: a subclass may behave differently.
ESTIMATORS = {
    "sklearn.pipeline.Pipeline": Pipeline,
    "sklearn_birdaudio.MelSpectrogramTransformer": MelSpectrogramTransformer,
    "sklearn_birdaudio.AttentionCNNClassifier": AttentionCNNClassifier,
    "sklearn_birdaudio.VotingClassifier": VotingClassifier,
    "sklearn_birdaudio.BirdNETEmbedder": BirdNETEmbedder,
    "sklearn_birdaudio.BirdNETClassifier": BirdNETClassifier,
    "sklearn_birdaudio.EmbeddingLogisticRegression": EmbeddingLogisticRegression,
    "sklearn.preprocessing.StandardScaler": StandardScaler,
    "sklearn.linear_model.LogisticRegression": LogisticRegression,
    "sklearn.multiclass.OneVsRestClassifier": OneVsRestClassifier,
    "sklearn.preprocessing.LabelBinarizer": LabelBinarizer,
}
PARAMETER_CLASSES = {
    "sklearn_birdaudio.AttentionCNN": AttentionCNN,
    "torch.optim.AdamW": torch.optim.AdamW,
    "torch.optim.Adam": torch.optim.Adam,
    "torch.optim.SGD": torch.optim.SGD,
    "torch.nn.BCEWithLogitsLoss": torch.nn.BCEWithLogitsLoss,
    "torch.nn.CrossEntropyLoss": torch.nn.CrossEntropyLoss,
    "torch.utils.data.DataLoader": torch.utils.data.DataLoader,
    "skorch.dataset.Dataset": Dataset,
}
# Parameters that only matter for training: dropped (with a warning) when not storable.
TRAINING_ONLY_PREFIXES = ("callbacks", "train_split", "iterator_train__", "augment")
MEMBER_LISTS = ("steps", "estimators")
TAGS = ("$tuple", "$path", "$array", "$class", "$estimator", "$tensor")


def _name_of(table: dict, value) -> str | None:
    return next((name for name, known in table.items() if value is known), None)


def supported(estimator, where: str = "") -> str:
    """The allow-list name of ``estimator``'s class; TypeError when it has none."""
    name = _name_of(ESTIMATORS, type(estimator))
    if name is None:
        kind = type(estimator)
        raise TypeError(
            f"cannot save a {kind.__module__}.{kind.__qualname__}"
            f"{f' (at {where[:-2]})' if where else ''}: the safe format stores "
            f"{', '.join(ESTIMATORS)} only. joblib.dump can save any estimator, but a joblib "
            "file runs code when loaded: use it only with parties that trust each other."
        )
    return name


class Writer:
    """Turns estimators into JSON-able descriptions, collecting the networks' tensors.

    ``prefix`` and ``where`` are the estimator's place in the model as in ``get_params``
    (``"cnn__"``), to name what cannot be saved. ``warnings`` lists what was left out.
    """

    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}
        self.n_networks = 0
        self.warnings: list[str] = []

    def value(self, value, prefix: str, key: str):
        if is_estimator(value):
            return self.estimator(value, f"{prefix}{key}__")
        if isinstance(value, tuple):
            if len(value) == 2 and isinstance(value[0], str) and is_estimator(value[1]):
                # a (name, estimator) pair of Pipeline.steps or VotingClassifier.estimators
                return {"$tuple": [value[0], self.estimator(value[1], f"{prefix}{value[0]}__")]}
            return {"$tuple": [self.value(item, prefix, key) for item in value]}
        if isinstance(value, list):
            return [self.value(item, prefix, key) for item in value]
        if isinstance(value, dict):
            if not all(isinstance(name, str) and not name.startswith("$") for name in value):
                raise Unstorable(f"dict with keys {list(value)}")
            return {name: self.value(item, prefix, key) for name, item in value.items()}
        if isinstance(value, os.PathLike):
            return {"$path": os.fspath(value)}
        if isinstance(value, np.ndarray):
            return {"$array": write_array(value)}
        if isinstance(value, type) or callable(value):
            name = _name_of(PARAMETER_CLASSES, value)
            if name is None:
                raise Unstorable(f"{getattr(value, '__qualname__', value)!r}")
            return {"$class": name}
        return plain(value)

    def estimator(self, estimator, where: str = "") -> dict:
        name = supported(estimator, where)
        params = {}
        for key, value in estimator.get_params(deep=False).items():
            if key.startswith("_"):  # skorch also lists private attributes (_seed, ...)
                continue
            if key == "memory" and value is not None:
                self.warnings.append(
                    f"{where}memory={value!r} is not saved (a joblib cache holds pickles); "
                    "the loaded model caches nothing until you set it again."
                )
                value = None
            if is_local(type(estimator), key, value):
                continue  # it describes the machine that trained the model, not the model
            try:
                params[key] = self.value(value, where, key)
            except Unstorable as error:
                if not key.startswith(TRAINING_ONLY_PREFIXES):
                    raise TypeError(
                        f"cannot save parameter {where}{key} of {type(estimator).__name__}: "
                        f"{error} is not a JSON value nor one of the known classes "
                        f"({', '.join(PARAMETER_CLASSES)}); set it to a storable value, or "
                        "use joblib.dump (whose files run code when loaded: trusted use only)."
                    ) from None
                self.warnings.append(
                    f"{where}{key} is not saved ({error} cannot be stored safely); it only "
                    "matters for training, and the loaded model has its default."
                )
        node = {"$estimator": name, "params": params}
        layout = FITTED_STATE.get(type(estimator))  # none for a Pipeline: its steps learn
        try:
            fitted = None if layout is None else layout.write(self, estimator, where)
        except Unstorable as error:
            raise TypeError(
                f"cannot save what {where[:-2] or 'the model'} learned: {error} is not storable."
            ) from None
        if fitted is not None:
            node["fitted"] = fitted
        return node


class Reader:
    """Rebuilds estimators from a description, creating allow-listed classes only.

    Every parameter is checked against its declared domain (:mod:`.restorable`) before an
    estimator is built; those that act on the machine are left at their defaults and
    collected in ``dropped``. ``handle`` is the open safetensors file.
    """

    def __init__(self, handle):
        self.handle = handle
        self.keys = set(handle.keys())
        self.dropped: dict[str, tuple] = {}
        self.legacy_framing: dict = {}  # of the classifier being restored

    def value(self, value, where: str = ""):
        if isinstance(value, list):
            return [self.value(item, where) for item in value]
        if not isinstance(value, dict):
            expect(
                value is None or isinstance(value, (bool, int, float, str)),
                f"unexpected value {value!r}",
            )
            return value
        tags = [key for key in value if key.startswith("$")]
        if not tags:
            return {key: self.value(item, where) for key, item in value.items()}
        expect(tags[0] in TAGS, f"unknown tag {tags[0]!r}")
        tag, content = tags[0], value[tags[0]]
        if tag == "$estimator":
            return self.estimator(value, where)
        expect(len(value) == 1, f"unexpected keys {sorted(value)} next to {tag!r}")
        if tag == "$tuple":
            expect(isinstance(content, list), f"$tuple of {content!r}")
            if len(content) == 2 and isinstance(content[0], str):  # a (name, estimator) pair
                return (content[0], self.value(content[1], f"{where}{content[0]}__"))
            return tuple(self.value(item, where) for item in content)
        if tag == "$path":
            expect(isinstance(content, str), f"$path of {content!r}")
            return Path(content)
        if tag == "$array":
            return read_array(content)
        if tag == "$tensor":
            return self.tensor(content, where)
        expect(
            content in PARAMETER_CLASSES,
            f"names class {content!r}, which is not one of those a model may use "
            f"({', '.join(PARAMETER_CLASSES)})",
        )
        return PARAMETER_CLASSES[content]

    def tensor(self, key, where: str) -> np.ndarray:
        """A fitted attribute's tensor, refused when a real-valued one is not finite."""
        expect(isinstance(key, str) and key in self.keys, f"$tensor {key!r}")
        array = self.handle.get_tensor(key).numpy()
        expect(
            array.dtype.kind != "f" or bool(np.isfinite(array).all()),
            f"{where[:-2]} holds NaN or infinite values",
        )
        return array

    def estimator(self, node: dict, where: str = ""):
        name = node.get("$estimator")
        expect(
            name in ESTIMATORS,
            f"names estimator {name!r}, which is not one of those a model may hold "
            f"({', '.join(ESTIMATORS)})",
        )
        expect(set(node) <= {"$estimator", "params", "fitted"}, f"unexpected keys {list(node)}")
        expect(isinstance(node.get("params"), dict), f"{name} without params")
        params = {
            # members of a pipeline or an ensemble are named as in get_params(deep=True)
            key: self.value(value, where if key in MEMBER_LISTS else f"{where}{key}__")
            for key, value in node["params"].items()
        }
        kind = ESTIMATORS[name]
        legacy = {}
        if issubclass(kind, AttentionCNNClassifier):  # files from before the audio spec
            legacy = {key: params.pop(key) for key in LEGACY_NET_FRAMING if key in params}
            for key, value in legacy.items():
                expect(value in LEGACY_NET_FRAMING[key], f"{where}{key}={value!r}")
        try:
            params, dropped = check_params(kind, params, where)
        except ValueError as error:
            raise Invalid(str(error)) from None
        self.dropped.update(dropped)
        estimator = kind(**params)
        _validate(estimator, where)
        if "fitted" in node:
            expect(isinstance(node["fitted"], dict), "bad fitted state")
            self.legacy_framing = legacy
            self.restore(estimator, node["fitted"], where)
        else:
            check_budget(estimator, where)
        return estimator

    def restore(self, estimator, state: dict, where: str) -> None:
        """Set what ``estimator`` learned from ``state``, by its :data:`FITTED_STATE` layout."""
        layout = FITTED_STATE.get(type(estimator))
        if layout is None:
            expect(not state, f"unexpected fitted state of a {type(estimator).__name__}")
        else:
            layout.read(self, estimator, state, where)


def _validate(estimator, where: str) -> None:
    """The estimator's own checks of its parameters (ours and scikit-learn's)."""
    try:
        if hasattr(estimator, "_check_params"):
            estimator._check_params()
        elif hasattr(estimator, "_parameter_constraints"):
            estimator._validate_params()
    except (TypeError, ValueError) as error:  # scikit-learn raises InvalidParameterError
        raise Invalid(f"{where}{type(error).__name__}: {error}") from None
