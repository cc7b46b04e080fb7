"""Safe persistence of fitted models: safetensors weights and a JSON description, no pickle.

:func:`save_model` writes a single `safetensors <https://huggingface.co/docs/safetensors>`_
file. Its tensors are the weights and buffers (batch-norm statistics included) of every
network in the model; its metadata header holds a JSON description of the model: the
structure (pipeline steps, ensemble members), each estimator's parameters and what it
learned besides weights (``classes_``, ``multilabel_``, ``n_mels_``, the training history).
:func:`load_model` rebuilds the estimators from that description and loads the weights.

Reading a file never runs code from it: classes are looked up by name in a fixed
allow-list (never imported from a name found in the file), and safetensors holds tensors
only. ``joblib.load`` and ``pickle.load``, by contrast, run whatever code the file asks
for: load those only from sources you trust.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelBinarizer, StandardScaler
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted
from skorch.dataset import Dataset
from skorch.history import History

from . import __version__
from .classifier import AttentionCNNClassifier
from .embeddings import BirdNETClassifier, BirdNETEmbedder
from .ensemble import VotingClassifier
from .features import MelSpectrogramTransformer
from .linear import EmbeddingLogisticRegression
from .modules import AttentionCNN
from .restorable import (
    AUDIO_SPEC,
    LEGACY_NET_FRAMING,
    MAX_FREQUENCY,
    check_params,
    check_work_budget,
    is_local,
)
from .spec import AudioSpec
from .training import RandomWindows

__all__ = ["DroppedParameterWarning", "is_model_file", "load_model", "save_model"]

FORMAT = "sklearn-birdaudio-model"
FORMAT_VERSION = 1

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
# Estimators whose fitted state is their public attributes ending in "_": numbers, strings,
# arrays (numeric ones as tensors) and allow-listed estimators, nested in lists.
PLAIN_STATE = (
    BirdNETEmbedder,
    EmbeddingLogisticRegression,
    BirdNETClassifier,
    StandardScaler,
    LogisticRegression,
    OneVsRestClassifier,
    LabelBinarizer,
)
NUMERIC_KINDS = "biuf"
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
ARRAY_KINDS = "biufUO"
MAX_ARRAY_BYTES = 64 * 2**20  # an $array of the JSON description, once decoded
# Fitted attributes that hold real numbers: a file cannot relabel them as integers.
FLOAT_STATE = frozenset({"coef_", "intercept_", "mean_", "var_", "scale_", "weights_"})
MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit on the JSON header
# First bytes of a pickle (protocol 2 or later) and of joblib's compressed pickles (zlib,
# gzip, bz2, xz, lzma, lz4): how a joblib model without its usual suffix is recognised,
# once the file has been found not to be safetensors.
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
PICKLE_MAGIC = (
    b"\x80", b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda", b"\x1f\x8b", b"BZh",
    b"\xfd7zXZ", b"\x5d\x00\x00", b"\x04\x22\x4d\x18",
)  # fmt: skip
SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip
MEMBER_LISTS = ("steps", "estimators")
TAGS = ("$tuple", "$path", "$array", "$class", "$estimator", "$tensor")


class _Unstorable(Exception):
    """A value that JSON and the allow-lists cannot represent."""


class _Invalid(Exception):
    """A model description that load_model refuses."""


class DroppedParameterWarning(UserWarning):
    """A model file set parameters that act on the machine; they were not restored.

    Attributes
    ----------
    dropped : dict
        ``{parameter: (value in the file, why it is not restored)}``, parameters named as
        in ``get_params(deep=True)`` (``"cnn__device"``).
    """

    def __init__(self, message: str, dropped: dict):
        super().__init__(message)
        self.dropped = dropped


def _name_of(table: dict, value) -> str | None:
    return next((name for name, known in table.items() if value is known), None)


def _is_estimator(value) -> bool:
    # skorch callbacks have get_params too, but no fit
    return not isinstance(value, type) and hasattr(value, "get_params") and hasattr(value, "fit")


def _plain(value):
    """``value`` as JSON numbers, strings, lists and dicts; _Unstorable otherwise."""
    if isinstance(value, np.generic) and value.dtype.kind in "biufU":
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain(item) for key, item in value.items()}
    raise _Unstorable(f"{type(value).__name__} {value!r}")


# -- writing ----------------------------------------------------------------------------


class _Writer:
    """Turns estimators into JSON-able descriptions, collecting the networks' tensors.

    ``prefix`` is the estimator's place in the model as in ``get_params`` (``"cnn__"``),
    to name what cannot be saved.
    """

    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}
        self.n_networks = 0
        self.warnings: list[str] = []

    def value(self, value, prefix: str, key: str):
        if _is_estimator(value):
            return self.estimator(value, f"{prefix}{key}__")
        if isinstance(value, tuple):
            if len(value) == 2 and isinstance(value[0], str) and _is_estimator(value[1]):
                # a (name, estimator) pair of Pipeline.steps or VotingClassifier.estimators
                return {"$tuple": [value[0], self.estimator(value[1], f"{prefix}{value[0]}__")]}
            return {"$tuple": [self.value(item, prefix, key) for item in value]}
        if isinstance(value, list):
            return [self.value(item, prefix, key) for item in value]
        if isinstance(value, dict):
            if not all(isinstance(name, str) and not name.startswith("$") for name in value):
                raise _Unstorable(f"dict with keys {list(value)}")
            return {name: self.value(item, prefix, key) for name, item in value.items()}
        if isinstance(value, os.PathLike):
            return {"$path": os.fspath(value)}
        if isinstance(value, np.ndarray):
            return {"$array": self.array(value)}
        if isinstance(value, type) or callable(value):
            name = _name_of(PARAMETER_CLASSES, value)
            if name is None:
                raise _Unstorable(f"{getattr(value, '__qualname__', value)!r}")
            return {"$class": name}
        return _plain(value)

    def state_value(self, value, where: str):
        """A fitted attribute: numeric arrays become tensors, estimators descriptions."""
        if isinstance(value, np.ndarray) and value.dtype.kind in NUMERIC_KINDS:
            key = f"state/{where}"
            self.tensors[key] = torch.from_numpy(np.ascontiguousarray(value).copy())
            return {"$tensor": key}
        if isinstance(value, np.ndarray):
            return {"$array": self.array(value)}
        if _is_estimator(value):
            return self.estimator(value, f"{where}__")
        if isinstance(value, (list, tuple)):
            return [self.state_value(item, f"{where}[{index}]") for index, item in enumerate(value)]
        return _plain(value)

    def array(self, array: np.ndarray) -> dict:
        if array.ndim != 1 or array.dtype.kind not in ARRAY_KINDS:
            raise _Unstorable(f"array of shape {array.shape} and dtype {array.dtype}")
        return {"dtype": array.dtype.str, "values": [_plain(item) for item in array.tolist()]}

    def estimator(self, estimator, where: str = "") -> dict:
        name = _supported(estimator, where)
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
            except _Unstorable as error:
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
        try:
            fitted = self.fitted(estimator, where)
        except _Unstorable as error:
            raise TypeError(
                f"cannot save what {where[:-2] or 'the model'} learned: {error} is not storable."
            ) from None
        if fitted is not None:
            node["fitted"] = fitted
        return node

    def fitted(self, estimator, where: str) -> dict | None:
        """What ``estimator`` learned besides its parameters; None when unfitted."""
        if isinstance(estimator, PLAIN_STATE):
            state = {
                key: self.state_value(value, f"{where}{key}")
                for key, value in vars(estimator).items()
                if key.endswith("_") and not key.startswith("_")
            }
            return state or None
        if isinstance(estimator, MelSpectrogramTransformer):
            return {
                name: self.value(getattr(estimator, name), where, name)
                for name in ("n_features_in_", "feature_names_in_")
                if hasattr(estimator, name)
            }
        if isinstance(estimator, VotingClassifier):
            if not hasattr(estimator, "estimators_"):
                return None
            state = {
                "estimators_": [
                    self.estimator(member, f"{where}estimators_[{index}]__")
                    for index, member in enumerate(estimator.estimators_)
                ],
                "classes_": self.array(np.asarray(estimator.classes_)),
                "multilabel_": bool(estimator.multilabel_),
            }
            if hasattr(estimator, "feature_names_in_"):
                state["feature_names_in_"] = self.array(estimator.feature_names_in_)
            return state
        if isinstance(estimator, AttentionCNNClassifier):
            if not hasattr(estimator, "module_"):
                return None
            prefix = f"net{self.n_networks}/"
            self.n_networks += 1
            module = getattr(estimator.module_, "_orig_mod", estimator.module_)  # compiled
            for key, tensor in module.state_dict().items():
                self.tensors[prefix + key] = tensor.detach().to("cpu").clone().contiguous()
            return {
                "weights": prefix,
                "classes_": self.array(np.asarray(estimator.classes_)),
                "multilabel_": bool(estimator.multilabel_),
                "n_mels_": int(estimator.n_mels_),
                "audio_spec_": _spec_record(estimator.audio_spec_),
                "seed": int(estimator._seed),
                "history": [_storable_record(record) for record in estimator.history_],
            }
        return None  # a Pipeline: its steps hold what it learned


def _supported(estimator, where: str = "") -> str:
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


def _storable_record(record: dict) -> dict:
    """A history entry without the values JSON cannot hold."""
    stored = {}
    for key, value in record.items():
        if key == "batches":
            value = [_storable_record(batch) for batch in value]
        try:
            stored[key] = _plain(value)
        except _Unstorable:
            continue
    return stored


def save_model(model, path: str | os.PathLike) -> Path:
    """Save a fitted model as one safetensors file, without pickle.

    The file holds the networks' weights and buffers as tensors and, in its metadata, a
    JSON description of the model: structure, parameters, classes and training history.
    :func:`load_model` reads it back, giving identical predictions, and never runs code
    from the file, so models can be shared safely (unlike joblib or pickle files).

    Parameters
    ----------
    model : Pipeline, AttentionCNNClassifier or VotingClassifier
        A fitted model made of :class:`~sklearn.pipeline.Pipeline`,
        :class:`~sklearn_birdaudio.MelSpectrogramTransformer`,
        :class:`~sklearn_birdaudio.AttentionCNNClassifier` and
        :class:`~sklearn_birdaudio.VotingClassifier`, nested in any way.
    path : str or path-like
        Where to write (``.safetensors`` is the suggested suffix); an existing file is
        replaced.

    Returns
    -------
    path : Path
        The file written.

    Raises
    ------
    TypeError
        If the model holds another estimator or a parameter value that is neither JSON
        nor a known class (a parameter that only matters for training, such as
        ``callbacks``, is left out with a warning instead). ``memory`` caches are never
        saved (a warning says so).
    sklearn.exceptions.NotFittedError
        If the model is not fitted.

    See Also
    --------
    load_model : Read the file back.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn_birdaudio import (
    ...     AttentionCNNClassifier, MelSpectrogramTransformer, load_model, save_model)
    >>> waveforms = np.random.default_rng(0).normal(size=(8, 8000)).astype(np.float32)
    >>> model = make_pipeline(
    ...     MelSpectrogramTransformer(sample_rate=16000, duration=0.5, n_mels=16, fmax=8000),
    ...     AttentionCNNClassifier(
    ...         module__base_filters=4, module__n_blocks=1, module__n_heads=1, max_epochs=1,
    ...         window_seconds=0.5, overlap_seconds=0, sample_rate=16000, random_state=0,
    ...         verbose=0),
    ... ).fit(waveforms, ["wren", "robin"] * 4)
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = save_model(model, f"{folder.name}/model.safetensors")
    >>> loaded = load_model(path)
    >>> loaded.classes_.tolist()
    ['robin', 'wren']
    >>> bool((loaded.predict_proba(waveforms) == model.predict_proba(waveforms)).all())
    True
    >>> folder.cleanup()
    """
    _supported(model)
    check_is_fitted(model)
    writer = _Writer()
    description = writer.estimator(model)
    for message in writer.warnings:
        warnings.warn(message, UserWarning, stacklevel=2)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "sklearn_birdaudio_version": __version__,
        "model": json.dumps(description),
    }
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    data = save(writer.tensors, metadata=metadata)
    try:
        # Mode 0o666 lets the umask decide the permissions, as open() does and as tables
        # are written (safetensors' save_file creates files readable by their owner only).
        partial.unlink(missing_ok=True)  # a leftover keeps its mode through O_TRUNC
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        with open(os.open(partial, flags, 0o666), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)  # a failed save leaves no half-written model behind
    finally:
        partial.unlink(missing_ok=True)
    return path


# -- reading ----------------------------------------------------------------------------


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise _Invalid(message)


class _Reader:
    """Rebuilds estimators from a description, creating allow-listed classes only.

    Every parameter is checked against its declared domain (:mod:`.restorable`) before an
    estimator is built; those that act on the machine are left at their defaults and
    collected in ``dropped``.
    """

    def __init__(self, handle):
        self.handle = handle
        self.keys = set(handle.keys())
        self.dropped: dict[str, tuple] = {}
        self.legacy_framing: dict = {}  # of the classifier being restored
        self.legacy_nets: set[int] = set()  # classifiers framed by legacy parameters

    def value(self, value, where: str = ""):
        if isinstance(value, list):
            return [self.value(item, where) for item in value]
        if not isinstance(value, dict):
            _expect(
                value is None or isinstance(value, (bool, int, float, str)),
                f"unexpected value {value!r}",
            )
            return value
        tags = [key for key in value if key.startswith("$")]
        if not tags:
            return {key: self.value(item, where) for key, item in value.items()}
        _expect(tags[0] in TAGS, f"unknown tag {tags[0]!r}")
        tag, content = tags[0], value[tags[0]]
        if tag == "$estimator":
            return self.estimator(value, where)
        _expect(len(value) == 1, f"unexpected keys {sorted(value)} next to {tag!r}")
        if tag == "$tuple":
            _expect(isinstance(content, list), f"$tuple of {content!r}")
            if len(content) == 2 and isinstance(content[0], str):  # a (name, estimator) pair
                return (content[0], self.value(content[1], f"{where}{content[0]}__"))
            return tuple(self.value(item, where) for item in content)
        if tag == "$path":
            _expect(isinstance(content, str), f"$path of {content!r}")
            return Path(content)
        if tag == "$array":
            return self.array(content)
        if tag == "$tensor":
            return self.tensor(content, where)
        _expect(
            content in PARAMETER_CLASSES,
            f"names class {content!r}, which is not one of those a model may use "
            f"({', '.join(PARAMETER_CLASSES)})",
        )
        return PARAMETER_CLASSES[content]

    def tensor(self, key, where: str) -> np.ndarray:
        """A fitted attribute's tensor, refused when a real-valued one is not finite."""
        _expect(isinstance(key, str) and key in self.keys, f"$tensor {key!r}")
        array = self.handle.get_tensor(key).numpy()
        _expect(
            array.dtype.kind != "f" or bool(np.isfinite(array).all()),
            f"{where[:-2]} holds NaN or infinite values",
        )
        return array

    def array(self, content) -> np.ndarray:
        _expect(isinstance(content, dict) and set(content) == {"dtype", "values"}, "bad array")
        try:
            dtype = np.dtype(content["dtype"])
        except TypeError as error:
            raise _Invalid(f"array dtype {content['dtype']!r}") from error
        values = content["values"]
        _expect(dtype.kind in ARRAY_KINDS and isinstance(values, list), "bad array")
        _expect(
            len(values) * dtype.itemsize <= MAX_ARRAY_BYTES,
            f"an array of {len(values)} x {dtype} is larger than {MAX_ARRAY_BYTES} bytes",
        )
        _expect(
            all(item is None or isinstance(item, (bool, int, float, str)) for item in values),
            "array of non-scalar values",
        )
        return np.asarray(values, dtype=dtype)

    def estimator(self, node: dict, where: str = ""):
        name = node.get("$estimator")
        _expect(
            name in ESTIMATORS,
            f"names estimator {name!r}, which is not one of those a model may hold "
            f"({', '.join(ESTIMATORS)})",
        )
        _expect(set(node) <= {"$estimator", "params", "fitted"}, f"unexpected keys {list(node)}")
        _expect(isinstance(node.get("params"), dict), f"{name} without params")
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
                _expect(value in LEGACY_NET_FRAMING[key], f"{where}{key}={value!r}")
        try:
            params, dropped = check_params(kind, params, where)
        except ValueError as error:
            raise _Invalid(str(error)) from None
        self.dropped.update(dropped)
        estimator = kind(**params)
        _validate(estimator, where)
        if "fitted" in node:
            _expect(isinstance(node["fitted"], dict), "bad fitted state")
            self.legacy_framing = legacy
            self.restore(estimator, node["fitted"], where)
        else:
            _budget(estimator, where)
        if isinstance(estimator, Pipeline):
            _frame_legacy_net(estimator, self.legacy_nets)
        return estimator

    def restore(self, estimator, state: dict, where: str) -> None:
        """Set what ``estimator`` learned from ``state`` (as written by _Writer.fitted)."""
        if isinstance(estimator, MelSpectrogramTransformer):
            _expect(set(state) <= {"n_features_in_", "feature_names_in_"}, "bad mel state")
            for key, value in state.items():
                setattr(estimator, key, self.value(value))
            _budget(estimator, where)
        elif isinstance(estimator, VotingClassifier):
            members = state["estimators_"]
            _expect(isinstance(members, list), "bad estimators_")
            names = [name for name, _ in estimator.estimators]
            _expect(len(names) == len(members), "estimators_ do not match estimators")
            estimator.estimators_ = [
                self.estimator(member, f"{where}{name}__")
                for name, member in zip(names, members, strict=True)
            ]
            estimator.named_estimators_ = Bunch(
                **dict(zip(names, estimator.estimators_, strict=True))
            )
            estimator.classes_ = self.array(state["classes_"])
            estimator.multilabel_ = bool(state["multilabel_"])
            if "feature_names_in_" in state:
                estimator.feature_names_in_ = self.array(state["feature_names_in_"])
        elif isinstance(estimator, AttentionCNNClassifier):
            self.restore_net(estimator, state, where)
        elif isinstance(estimator, PLAIN_STATE):
            for key, value in state.items():
                _expect(key.endswith("_") and not key.startswith("_"), f"fitted attribute {key!r}")
                restored = self.value(value, f"{where}{key}__")
                dtype = getattr(restored, "dtype", None)
                if key in FLOAT_STATE and dtype is not None and dtype.kind != "f":
                    raise _Invalid(f"{where}{key} is stored as {dtype}; expected real numbers")
                setattr(estimator, key, restored)
        else:
            _expect(not state, f"unexpected fitted state of a {type(estimator).__name__}")

    def restore_net(self, net: AttentionCNNClassifier, state: dict, where: str) -> None:
        keys = {"weights", "classes_", "multilabel_", "n_mels_", "seed", "history"}
        _expect(
            set(state) in (keys, keys | {"audio_spec_"}),
            f"{where}fitted state with keys {sorted(state)}",
        )
        if "audio_spec_" in state:
            net.audio_spec_ = _read_spec(state["audio_spec_"], where)
        else:  # written before the audio spec: the framing was the classifier's parameters
            framing = AudioSpec(**self.legacy_framing, window_seconds=None, clip_seconds=None)
            net.audio_spec_ = framing.replace(window_seconds=float(net.window_seconds))
            self.legacy_nets.add(id(net))
        net.classes_ = self.array(state["classes_"])
        net.multilabel_ = bool(state["multilabel_"])
        n_mels, seed = state["n_mels_"], state["seed"]
        _expect(
            type(n_mels) is int and 1 <= n_mels <= 1024 and type(seed) is int and 0 <= seed < 2**32,
            f"{where}n_mels_={n_mels!r}, seed={seed!r}",
        )
        _expect(1 <= len(net.classes_) <= 100_000, f"{where}classes_ of {len(net.classes_)}")
        net.n_mels_, net._seed = n_mels, seed
        _budget(net, where, n_mels=n_mels)
        prefix = state["weights"]
        _expect(isinstance(prefix, str) and prefix.endswith("/"), "bad weights name")
        self.check_weights(net, prefix, where)
        net._random_windows = RandomWindows(net._window_frames, net._seed)
        # Building the network draws random initial weights: keep the caller's RNG as it was.
        with net._on_resolved_device(), torch.random.fork_rng(devices=[]):
            net.initialize()
        module = getattr(net.module_, "_orig_mod", net.module_)
        weights = {key: self.handle.get_tensor(prefix + key) for key in module.state_dict()}
        for key, tensor in weights.items():
            _expect(
                not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()),
                f"{where}weights {key} hold NaN or infinite values",
            )
        module.load_state_dict(weights)
        history = state["history"]
        _expect(isinstance(history, list) and all(isinstance(r, dict) for r in history), "history")
        net.history_ = History(history)

    def check_weights(self, net: AttentionCNNClassifier, prefix: str, where: str) -> None:
        """The file's tensors have exactly the names, shapes and dtypes of the network.

        The network is built on torch's ``meta`` device, which allocates nothing: a file
        that declares a huge architecture is refused before any memory is spent, and the
        real network is then no larger than the tensors in the file.
        """
        kwargs = {"n_classes": len(net.classes_), "n_mels": net.n_mels_}
        kwargs.update(net.get_params_for("module"))
        try:
            with torch.device("meta"):
                expected = net.module(**kwargs).state_dict()
        except (TypeError, ValueError) as error:  # the network's own argument checks
            raise _Invalid(f"{where}module: {error}") from None
        stored = {key[len(prefix) :] for key in self.keys if key.startswith(prefix)}
        missing, unexpected = sorted(set(expected) - stored), sorted(stored - set(expected))
        _expect(
            not missing and not unexpected,
            f"the tensors {prefix}* do not match the network (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]})",
        )
        for key, tensor in expected.items():
            found = self.handle.get_slice(prefix + key)
            shape, dtype = tuple(found.get_shape()), SAFETENSORS_DTYPES.get(found.get_dtype())
            _expect(
                shape == tuple(tensor.shape) and dtype == tensor.dtype,
                f"the weights do not fit the network: {key} is {dtype} {list(shape)} in the "
                f"file, the network needs {tensor.dtype} {list(tensor.shape)}",
            )


def _spec_record(spec: AudioSpec) -> dict:
    """A classifier's audio spec as plain JSON values."""
    record = {name: getattr(spec, name) for name in AUDIO_SPEC}
    return {**record, "frequency_range": list(spec.frequency_range)}


def _read_spec(record, where: str) -> AudioSpec:
    """The audio spec a file describes, each field checked against its domain."""
    _expect(
        isinstance(record, dict) and set(record) == {*AUDIO_SPEC, "frequency_range"},
        f"{where}audio_spec_ is not an audio spec",
    )
    for name, domain in AUDIO_SPEC.items():
        _expect(record[name] in domain, f"{where}audio_spec_.{name}={record[name]!r}")
    band = record["frequency_range"]
    _expect(
        isinstance(band, list) and len(band) == 2 and all(edge in MAX_FREQUENCY for edge in band),
        f"{where}audio_spec_.frequency_range={band!r}",
    )
    try:
        return AudioSpec(**{**record, "frequency_range": tuple(band)})
    except ValueError as error:
        raise _Invalid(f"{where}{error}") from None


def _frame_legacy_net(pipeline: Pipeline, legacy_nets: set[int]) -> None:
    """Give a classifier restored from a file of before the audio spec its front end's.

    Such files kept the framing in the classifier's parameters; the window and clip were
    the front end's. When the two framings agree, the classifier takes the front end's
    spec, as fitting it today would; when they disagree, it keeps its own, and
    predictions refuse the front end's spectrograms with a message.
    """
    final = pipeline.steps[-1][1]
    front = getattr(pipeline.steps[0][1], "audio_spec", None)
    if id(final) not in legacy_nets or not isinstance(front, AudioSpec):
        return
    if front.frames_match(final.audio_spec_):
        final.audio_spec_ = final.learned_spec(front)


def _validate(estimator, where: str) -> None:
    """The estimator's own checks of its parameters (ours and scikit-learn's)."""
    try:
        if hasattr(estimator, "_check_params"):
            estimator._check_params()
        elif hasattr(estimator, "_parameter_constraints"):
            estimator._validate_params()
    except (TypeError, ValueError) as error:  # scikit-learn raises InvalidParameterError
        raise _Invalid(f"{where}{type(error).__name__}: {error}") from None


def _budget(estimator, where: str, n_mels: int | None = None) -> None:
    try:
        check_work_budget(estimator, where, n_mels=n_mels)
    except ValueError as error:
        raise _Invalid(str(error)) from None


def is_model_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a safetensors file, recognised by parsing its header.

    A safetensors file starts with the length of its JSON header (8 bytes, little-endian),
    then the header itself. Its first byte is that length's low byte, which may be any
    value (``0x80``, a pickle's first byte, included): so the header is parsed, never a
    first byte matched.

    Parameters
    ----------
    path : str or path-like
        An existing file.

    Returns
    -------
    bool
        True when the file holds a well-formed safetensors header (a JSON object that
        fits in the file), whatever its content.
    """
    with open(path, "rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            return False
        length = int.from_bytes(prefix, "little")
        size = os.fstat(file.fileno()).st_size
        if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            return False
        try:
            header = json.loads(file.read(length))
        except (UnicodeDecodeError, ValueError):
            return False
    return isinstance(header, dict)


def _looks_like_pickle(path: Path) -> bool:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    with path.open("rb") as file:
        return file.read(8).startswith(PICKLE_MAGIC)


def load_model(path: str | os.PathLike, *, allow_pickle: bool = False):
    """Load a model saved by :func:`save_model`, without running code from the file.

    The file is treated as untrusted data. Every parameter it sets is checked against its
    estimator's declared domain (types, ranges, allowed values; see
    :mod:`sklearn_birdaudio.restorable`), and the memory they ask for at prediction is
    bounded before anything is allocated. The networks' weights must have exactly the
    shapes and dtypes their architecture implies, and be finite. Parameters that act on
    the machine (paths such as ``checkpoint_dir`` and ``memory``, ``device``, compiler
    options such as ``inference="compiled"`` and ``compile__*``, thread counts) are never
    restored: they keep their defaults, a :class:`DroppedParameterWarning` lists those the
    file set, and you set them after loading.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save_model` (or ``birdaudio train``).
    allow_pickle : bool, default=False
        Also load a joblib or pickle file (``joblib.dump`` of a fitted model), recognised
        by its suffix (``.joblib``, ``.pkl``, ``.pickle``) or first bytes once the file is
        found not to be safetensors. **Loading one runs any code it contains**: only for
        files from a source you trust. A safetensors file is never given to joblib.

    Returns
    -------
    model : estimator
        The fitted model, as saved: its ``predict_proba`` gives the same values. Networks
        run on ``device="auto"`` (CUDA when available, else the CPU). Optimizer state is
        not stored: fitting again starts afresh.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not a model written by :func:`save_model` (not safetensors,
        truncated, without or with an invalid model description, one naming a class
        outside the allow-list or a parameter outside its domain, weights that do not fit
        the network or are not finite), is a pickle and ``allow_pickle`` is False, or was
        written by a newer version of the format. The message names the file.

    Warns
    -----
    DroppedParameterWarning
        When the file sets parameters that act on the machine (not restored).

    See Also
    --------
    save_model : Write the file.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_birdaudio import load_model
    >>> with tempfile.NamedTemporaryFile(suffix=".safetensors") as file:
    ...     _ = file.write(b"not a model"), file.flush()
    ...     load_model(file.name)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...: not a model file (...); expected a sklearn-birdaudio model ...
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found.")
    if not is_model_file(path) and _looks_like_pickle(path):
        if not allow_pickle:
            raise ValueError(
                f"{path}: is a joblib/pickle file, refused: loading one runs any code it "
                "contains. Allow pickles (allow_pickle=True, or --allow-pickle) only for "
                "files from a source you trust; models saved by save_model or 'birdaudio "
                "train --out MODEL.safetensors' need no such trust."
            )
        return _load_pickle(path)
    model, dropped = _load_safetensors(path)
    if dropped:
        listed = "; ".join(
            f"{name}={value!r} ({reason})" for name, (value, reason) in dropped.items()
        )
        warnings.warn(
            DroppedParameterWarning(
                f"{path}: not restored from the file, as they act on this machine: {listed}. "
                "The loaded model uses their defaults; set them after loading if needed.",
                dropped,
            ),
            stacklevel=2,
        )
    return model


def _load_pickle(path: Path):
    """``joblib.load(path)``: runs the code in the file; only with allow_pickle."""
    import joblib

    try:
        return joblib.load(path)
    except Exception as error:  # any unpickling failure means "not a model"
        raise ValueError(
            f"{path}: not a model file ({type(error).__name__}: {error}); expected a model "
            "saved by save_model or 'birdaudio train'."
        ) from error


def _load_safetensors(path: Path):
    expected = "expected a sklearn-birdaudio model written by save_model or 'birdaudio train'."
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except Exception as error:  # safetensors raises SafetensorError, OSError, ...
        raise ValueError(f"{path}: not a model file ({error}); {expected}") from None
    with handle:
        metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise ValueError(
                f"{path}: not a model file: a safetensors file without a sklearn-birdaudio "
                f"model description (metadata keys {sorted(metadata)}); {expected}"
            )
        version = metadata.get("format_version", "")
        if not version.isdigit() or int(version) > FORMAT_VERSION:
            raise ValueError(
                f"{path}: written in model format version {version!r} by sklearn-birdaudio "
                f"{metadata.get('sklearn_birdaudio_version', '?')}; this is sklearn-birdaudio "
                f"{__version__}, which reads format version {FORMAT_VERSION}: upgrade it."
            )
        try:
            description = json.loads(metadata.get("model", ""))
            _expect(isinstance(description, dict), "not an estimator")
            reader = _Reader(handle)
            model = reader.estimator(description)
        except (_Invalid, KeyError, TypeError, ValueError, RecursionError) as error:
            # ValueError includes json's decoding errors and the estimators' own checks
            detail = error if isinstance(error, _Invalid) else f"{type(error).__name__}: {error}"
            raise ValueError(f"{path}: invalid model description ({detail}); {expected}") from None
    return model, reader.dropped
