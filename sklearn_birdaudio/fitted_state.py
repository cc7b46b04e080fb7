"""What each estimator learned, as a model file holds it, and the checks of it on loading.

A model file describes every estimator by its parameters and, once fitted, by a fitted
record (the ``"fitted"`` entry of its description). This module owns those records, one
layout per kind of estimator (:data:`FITTED_STATE`), each writing and reading its own:

- :class:`NetworkState`, an :class:`~sklearn_birdaudio.AttentionCNNClassifier`: its
  weights as tensors, its classes, mel bands, audio spec, seed and training history.
- :class:`EnsembleState`, a :class:`~sklearn_birdaudio.VotingClassifier`: its fitted
  members (each a description of its own), classes and kind of targets.
- :class:`PublicState`, every other estimator: its public attributes ending in ``"_"``
  (scikit-learn's convention), numeric arrays as tensors.

The estimators that keep state of their own give and take it through two methods, so that
no other module sets their private attributes: ``_safe_state()`` returns what a file keeps
(``None`` when unfitted) and ``_restore_safe_state(state)`` rebuilds the estimator from it.
The file is untrusted data, so the checks stay here: a record's keys, types and ranges,
the work its parameters ask for at prediction (:func:`check_budget`), the network's
weights against its architecture before anything is allocated, and finite values. The
estimator is only ever given checked values.

A layout has ``write(writer, estimator, where)``, which returns the record (``None``: the
estimator writes none), and ``read(reader, estimator, state, where)``, which checks a
record and gives it to the estimator; ``writer`` and ``reader`` are
:mod:`~sklearn_birdaudio.model_description`'s, for what the record nests (tensors of the
file, members' descriptions), and ``where`` the estimator's place in the model
(``"cnn__"``), naming what is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import LabelBinarizer, StandardScaler

from .classifier import AttentionCNNClassifier
from .embeddings import BirdNETClassifier, BirdNETEmbedder
from .ensemble import VotingClassifier
from .features import MelSpectrogramTransformer
from .linear import EmbeddingLogisticRegression
from .restorable import AUDIO_SPEC, MAX_FREQUENCY, check_work_budget
from .spec import AudioSpec

__all__ = [
    "FITTED_STATE",
    "Invalid",
    "Unstorable",
    "check_budget",
    "expect",
    "is_estimator",
    "plain",
    "read_array",
    "write_array",
]

NUMERIC_KINDS = "biuf"
ARRAY_KINDS = "biufUO"
MAX_ARRAY_BYTES = 64 * 2**20  # an $array of the JSON description, once decoded
# Fitted attributes that hold real numbers: a file cannot relabel them as integers.
FLOAT_STATE = frozenset({"coef_", "intercept_", "mean_", "var_", "scale_", "weights_"})
SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip
NETWORK_KEYS = frozenset({"weights", "classes_", "multilabel_", "n_mels_", "seed", "history"})


class Unstorable(Exception):
    """A value that JSON and the allow-lists cannot represent."""


class Invalid(Exception):
    """A model description that load_model refuses."""


def expect(condition: bool, message: str) -> None:
    """Refuse the description (:class:`Invalid`, with ``message``) unless ``condition``."""
    if not condition:
        raise Invalid(message)


def plain(value):
    """``value`` as JSON numbers, strings, lists and dicts; :class:`Unstorable` otherwise."""
    if isinstance(value, np.generic) and value.dtype.kind in "biufU":
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: plain(item) for key, item in value.items()}
    raise Unstorable(f"{type(value).__name__} {value!r}")


def is_estimator(value) -> bool:
    """Whether ``value`` is an estimator (skorch callbacks have get_params too, but no fit)."""
    return not isinstance(value, type) and hasattr(value, "get_params") and hasattr(value, "fit")


def write_array(array: np.ndarray) -> dict:
    """A 1-D array of numbers or strings as ``{"dtype", "values"}``."""
    if array.ndim != 1 or array.dtype.kind not in ARRAY_KINDS:
        raise Unstorable(f"array of shape {array.shape} and dtype {array.dtype}")
    return {"dtype": array.dtype.str, "values": [plain(item) for item in array.tolist()]}


def read_array(content) -> np.ndarray:
    """The array :func:`write_array` wrote, its dtype and size checked."""
    expect(isinstance(content, dict) and set(content) == {"dtype", "values"}, "bad array")
    try:
        dtype = np.dtype(content["dtype"])
    except TypeError as error:
        raise Invalid(f"array dtype {content['dtype']!r}") from error
    values = content["values"]
    expect(dtype.kind in ARRAY_KINDS and isinstance(values, list), "bad array")
    expect(
        len(values) * dtype.itemsize <= MAX_ARRAY_BYTES,
        f"an array of {len(values)} x {dtype} is larger than {MAX_ARRAY_BYTES} bytes",
    )
    expect(
        all(item is None or isinstance(item, (bool, int, float, str)) for item in values),
        "array of non-scalar values",
    )
    return np.asarray(values, dtype=dtype)


def check_budget(
    estimator, where: str, *, n_mels: int | None = None, audio_spec: AudioSpec | None = None
) -> None:
    """:func:`~sklearn_birdaudio.restorable.check_work_budget`, refusing the description."""
    try:
        check_work_budget(estimator, where, n_mels=n_mels, audio_spec=audio_spec)
    except ValueError as error:
        raise Invalid(str(error)) from None


def _storable_record(record: dict) -> dict:
    """A history entry without the values JSON cannot hold."""
    stored = {}
    for key, value in record.items():
        if key == "batches":
            value = [_storable_record(batch) for batch in value]
        try:
            stored[key] = plain(value)
        except Unstorable:
            continue
    return stored


def _spec_record(spec: AudioSpec) -> dict:
    """A classifier's audio spec as plain JSON values."""
    record = {name: getattr(spec, name) for name in AUDIO_SPEC}
    return {**record, "frequency_range": list(spec.frequency_range)}


def _read_spec(record, where: str) -> AudioSpec:
    """The audio spec a file describes, each field checked against its domain."""
    expect(
        isinstance(record, dict) and set(record) == {*AUDIO_SPEC, "frequency_range"},
        f"{where}audio_spec_ is not an audio spec",
    )
    for name, domain in AUDIO_SPEC.items():
        expect(record[name] in domain, f"{where}audio_spec_.{name}={record[name]!r}")
    band = record["frequency_range"]
    expect(
        isinstance(band, list) and len(band) == 2 and all(edge in MAX_FREQUENCY for edge in band),
        f"{where}audio_spec_.frequency_range={band!r}",
    )
    try:
        return AudioSpec(**{**record, "frequency_range": tuple(band)})
    except ValueError as error:
        raise Invalid(f"{where}{error}") from None


class NetworkState:
    """An :class:`~sklearn_birdaudio.AttentionCNNClassifier`'s record.

    ``weights`` names the prefix of its tensors in the file (``"net0/"``); files written
    before the audio spec have no ``audio_spec_``, their framing being the classifier's
    parameters (the reader's ``legacy_framing``).
    """

    def write(self, writer, net: AttentionCNNClassifier, where: str) -> dict | None:
        state = net._safe_state()
        if state is None:
            return None
        prefix = f"net{writer.n_networks}/"
        writer.n_networks += 1
        for key, tensor in state["weights"].items():
            writer.tensors[prefix + key] = tensor
        return {
            "weights": prefix,
            "classes_": write_array(np.asarray(state["classes_"])),
            "multilabel_": bool(state["multilabel_"]),
            "n_mels_": int(state["n_mels_"]),
            "audio_spec_": _spec_record(state["audio_spec_"]),
            "seed": int(state["seed"]),
            "history": [_storable_record(record) for record in state["history"]],
        }

    def read(self, reader, net: AttentionCNNClassifier, state: dict, where: str) -> None:
        expect(
            set(state) in (NETWORK_KEYS, NETWORK_KEYS | {"audio_spec_"}),
            f"{where}fitted state with keys {sorted(state)}",
        )
        if "audio_spec_" in state:
            spec = _read_spec(state["audio_spec_"], where)
        else:  # written before the audio spec: the framing was the classifier's parameters
            spec = net.legacy_spec(reader.legacy_framing)
        classes = read_array(state["classes_"])
        multilabel = bool(state["multilabel_"])
        n_mels, seed = state["n_mels_"], state["seed"]
        expect(
            type(n_mels) is int and 1 <= n_mels <= 1024 and type(seed) is int and 0 <= seed < 2**32,
            f"{where}n_mels_={n_mels!r}, seed={seed!r}",
        )
        expect(1 <= len(classes) <= 100_000, f"{where}classes_ of {len(classes)}")
        check_budget(net, where, n_mels=n_mels, audio_spec=spec)
        prefix = state["weights"]
        expect(isinstance(prefix, str) and prefix.endswith("/"), "bad weights name")
        weights = self.read_weights(reader, net, prefix, where, len(classes), n_mels)
        history = state["history"]
        expect(isinstance(history, list) and all(isinstance(r, dict) for r in history), "history")
        net._restore_safe_state(
            {
                "classes_": classes,
                "multilabel_": multilabel,
                "n_mels_": n_mels,
                "audio_spec_": spec,
                "seed": seed,
                "history": history,
                "weights": weights,
            }
        )

    def read_weights(
        self,
        reader,
        net: AttentionCNNClassifier,
        prefix: str,
        where: str,
        n_classes: int,
        n_mels: int,
    ) -> dict[str, torch.Tensor]:
        """The network's tensors, with exactly the names, shapes and dtypes it has, finite.

        The network is built on torch's ``meta`` device, which allocates nothing: a file
        that declares a huge architecture is refused before any memory is spent, and what
        is then read is no larger than the tensors in the file.
        """
        kwargs = {"n_classes": n_classes, "n_mels": n_mels, **net.get_params_for("module")}
        try:
            with torch.device("meta"):
                expected = net.module(**kwargs).state_dict()
        except (TypeError, ValueError) as error:  # the network's own argument checks
            raise Invalid(f"{where}module: {error}") from None
        stored = {key[len(prefix) :] for key in reader.keys if key.startswith(prefix)}
        missing, unexpected = sorted(set(expected) - stored), sorted(stored - set(expected))
        expect(
            not missing and not unexpected,
            f"the tensors {prefix}* do not match the network (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]})",
        )
        for key, tensor in expected.items():
            found = reader.handle.get_slice(prefix + key)
            shape, dtype = tuple(found.get_shape()), SAFETENSORS_DTYPES.get(found.get_dtype())
            expect(
                shape == tuple(tensor.shape) and dtype == tensor.dtype,
                f"the weights do not fit the network: {key} is {dtype} {list(shape)} in the "
                f"file, the network needs {tensor.dtype} {list(tensor.shape)}",
            )
        weights = {key: reader.handle.get_tensor(prefix + key) for key in expected}
        for key, tensor in weights.items():
            expect(
                not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()),
                f"{where}weights {key} hold NaN or infinite values",
            )
        return weights


class EnsembleState:
    """A :class:`~sklearn_birdaudio.VotingClassifier`'s record: its fitted members."""

    def write(self, writer, ensemble: VotingClassifier, where: str) -> dict | None:
        state = ensemble._safe_state()
        if state is None:
            return None
        record = {
            "estimators_": [
                writer.estimator(member, f"{where}estimators_[{index}]__")
                for index, member in enumerate(state["estimators_"])
            ],
            "classes_": write_array(np.asarray(state["classes_"])),
            "multilabel_": bool(state["multilabel_"]),
        }
        if "feature_names_in_" in state:
            record["feature_names_in_"] = write_array(state["feature_names_in_"])
        return record

    def read(self, reader, ensemble: VotingClassifier, state: dict, where: str) -> None:
        members = state["estimators_"]
        expect(isinstance(members, list), "bad estimators_")
        names = [name for name, _ in ensemble.estimators]
        expect(len(names) == len(members), "estimators_ do not match estimators")
        restored = {
            "estimators_": [
                reader.estimator(member, f"{where}{name}__")
                for name, member in zip(names, members, strict=True)
            ],
            "classes_": read_array(state["classes_"]),
            "multilabel_": bool(state["multilabel_"]),
        }
        if "feature_names_in_" in state:
            restored["feature_names_in_"] = read_array(state["feature_names_in_"])
        ensemble._restore_safe_state(restored)


@dataclass(frozen=True)
class PublicState:
    """The record of an estimator whose fitted state is its public attributes ending in "_".

    Numbers, strings, arrays (numeric ones as tensors) and allow-listed estimators, nested
    in lists. ``names`` restricts them (``None``: all); ``kind`` names the estimator in
    the message refusing others. With ``always``, an estimator without any writes an
    empty record rather than none.
    """

    names: tuple[str, ...] | None = None
    kind: str = ""
    always: bool = False

    def write(self, writer, estimator, where: str) -> dict | None:
        if self.names is None:
            names = [
                key for key in vars(estimator) if key.endswith("_") and not key.startswith("_")
            ]
        else:
            names = [name for name in self.names if hasattr(estimator, name)]
        state = {
            name: self.value(writer, getattr(estimator, name), f"{where}{name}") for name in names
        }
        return state if state or self.always else None

    def value(self, writer, value, where: str):
        """A fitted attribute: numeric arrays become tensors, estimators descriptions."""
        if isinstance(value, np.ndarray) and value.dtype.kind in NUMERIC_KINDS:
            key = f"state/{where}"
            writer.tensors[key] = torch.from_numpy(np.ascontiguousarray(value).copy())
            return {"$tensor": key}
        if isinstance(value, np.ndarray):
            return {"$array": write_array(value)}
        if is_estimator(value):
            return writer.estimator(value, f"{where}__")
        if isinstance(value, (list, tuple)):
            return [
                self.value(writer, item, f"{where}[{index}]") for index, item in enumerate(value)
            ]
        return plain(value)

    def read(self, reader, estimator, state: dict, where: str) -> None:
        if self.names is not None:
            expect(set(state) <= set(self.names), f"bad {self.kind} state")
        for key, value in state.items():
            expect(key.endswith("_") and not key.startswith("_"), f"fitted attribute {key!r}")
            restored = reader.value(value, f"{where}{key}__")
            dtype = getattr(restored, "dtype", None)
            if key in FLOAT_STATE and dtype is not None and dtype.kind != "f":
                raise Invalid(f"{where}{key} is stored as {dtype}; expected real numbers")
            setattr(estimator, key, restored)
        check_budget(estimator, where)


# The fitted record of each allow-listed estimator; a Pipeline's steps hold what it learned.
PLAIN_STATE = (
    BirdNETEmbedder,
    BirdNETClassifier,
    EmbeddingLogisticRegression,
    StandardScaler,
    LogisticRegression,
    OneVsRestClassifier,
    LabelBinarizer,
)
FITTED_STATE = {
    AttentionCNNClassifier: NetworkState(),
    VotingClassifier: EnsembleState(),
    # the front end learns its input's width only, and writes a record even unfitted
    MelSpectrogramTransformer: PublicState(
        ("n_features_in_", "feature_names_in_"), kind="mel", always=True
    ),
    **dict.fromkeys(PLAIN_STATE, PublicState()),
}
