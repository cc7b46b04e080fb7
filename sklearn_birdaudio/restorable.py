"""What a model file may set: the declared domain of every parameter ``load_model`` restores.

A model file is untrusted data. Its JSON description names estimators and their parameters,
and any of those could be chosen by whoever wrote the file. This module decides, for every
parameter of every estimator the safe format can hold, one of three things:

- **restored**, when its value lies in a declared domain (a type, a range, an allow-list
  of values). A value outside it makes :func:`~sklearn_birdaudio.load_model` refuse the
  file, naming the parameter.
- **never restored** (:data:`LOCAL`), when it acts on the machine rather than describing
  the model: paths (``checkpoint_dir``, ``memory``, ``model_path``), devices, compiler
  options (``compile``, ``compile__*``, ``inference="compiled"``), thread and worker
  counts (``n_jobs``, ``n_threads``, ``iterator_*__num_workers``), and what ``torch.load``
  is given. The parameter keeps the estimator's default; the loaded model reports what it
  left out, and the user sets it after loading.
- **refused**, for any parameter name the domain does not list (a file from a tampered
  or unknown writer).

Sizes are bounded too: every range has an upper end, and :func:`check_work_budget` bounds
the memory that the restored parameters ask for at prediction, before anything is
allocated. The networks' weights are bounded by the file itself:
:mod:`~sklearn_birdaudio.fitted_state` builds each network on torch's ``meta`` device (no
memory) and refuses a file whose tensors do not have exactly the shapes and dtypes that the
declared architecture implies.

Writing side: :func:`is_local` tells ``save_model`` which parameters to leave out, since
they describe the machine that trained the model, not the model.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from skorch.dataset import Dataset

from ._validation import is_integer, is_real_number
from .classifier import AttentionCNNClassifier
from .embeddings import POOLINGS, WINDOW_SECONDS, BirdNETClassifier, BirdNETEmbedder
from .ensemble import VOTING, VotingClassifier
from .features import CROP_POSITIONS, MelSpectrogramTransformer
from .inference import AGGREGATIONS
from .linear import EmbeddingLogisticRegression
from .modules import AttentionCNN
from .spec import AudioSpec

__all__ = ["check_params", "check_work_budget", "is_local"]

# Upper ends of what a file may ask for: far above any model this package trains.
MAX_SAMPLE_RATE = 384_000
MIN_SAMPLE_RATE = 1_000  # the floor of audio.py: no bird model works below it
MAX_CLIP_SECONDS = 3_600.0
MAX_BATCH = 4_096
# Memory the restored parameters may ask for in one step of prediction: a batch of clips
# and their spectrograms, or the activations of a batch of windows in the network.
WORK_BUDGET_BYTES = 4 * 2**30
MAX_CHANNELS = 16_384  # the default network has 512; the weights grow as its square
FLOAT_BYTES = 4


class Domain:
    """A set of values a parameter may take from a file."""

    description = "a value"

    def __contains__(self, value) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Integer(Domain):
    low: int
    high: int

    @property
    def description(self) -> str:
        return f"an integer in [{self.low}, {self.high}]"

    def __contains__(self, value) -> bool:
        return is_integer(value) and self.low <= value <= self.high


@dataclass(frozen=True)
class Real(Domain):
    low: float
    high: float
    low_open: bool = False

    @property
    def description(self) -> str:
        return f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"

    def __contains__(self, value) -> bool:
        if not is_real_number(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high


@dataclass(frozen=True)
class OneOf(Domain):
    values: tuple

    @property
    def description(self) -> str:
        return f"one of {self.values!r}"

    def __contains__(self, value) -> bool:
        # bool is an int: True must not pass for 1, nor 1 for True
        return any(value is v or (type(value) is type(v) and value == v) for v in self.values)


@dataclass(frozen=True)
class Optional(Domain):
    domain: Domain

    @property
    def description(self) -> str:
        return f"None or {self.domain.description}"

    def __contains__(self, value) -> bool:
        return value is None or value in self.domain


@dataclass(frozen=True)
class Classes(Domain):
    classes: tuple

    @property
    def description(self) -> str:
        return f"one of the classes {[c.__qualname__ for c in self.classes]}"

    def __contains__(self, value) -> bool:
        return any(value is known for known in self.classes)


@dataclass(frozen=True)
class ListOf(Domain):
    item: Domain
    max_length: int

    @property
    def description(self) -> str:
        return f"a list of at most {self.max_length} items, each {self.item.description}"

    def __contains__(self, value) -> bool:
        return (
            isinstance(value, (list, tuple))
            and len(value) <= self.max_length
            and all(item in self.item for item in value)
        )


@dataclass(frozen=True)
class Local:
    """Never restored from a file: the parameter acts on this machine.

    ``keep`` lists values that may be restored all the same (``inference="fused"``).
    """

    reason: str
    keep: tuple = ()


@dataclass(frozen=True)
class Structure(Domain):
    """Checked by the reader as it builds it: pipeline steps, ensemble members."""

    description = "estimators (checked one by one)"

    def __contains__(self, value) -> bool:
        return True


FLAG = OneOf((True, False))
VERBOSE = Integer(0, 100)
SAMPLE_RATE = Integer(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
# The framing files written before the audio spec kept in the classifier's parameters.
LEGACY_NET_FRAMING = {"sample_rate": SAMPLE_RATE, "hop_length": Integer(1, 65_536)}
# A fitted classifier's audio_spec_, field by field.
AUDIO_SPEC = {
    "sample_rate": SAMPLE_RATE,
    "hop_length": Optional(Integer(1, 65_536)),
    # a front end's clip (up to its duration's limit) is the window of each input
    "window_seconds": Optional(Real(0.0, MAX_CLIP_SECONDS, low_open=True)),
    "clip_seconds": Optional(Real(0.0, MAX_CLIP_SECONDS, low_open=True)),
    "input_sample_rate": Optional(SAMPLE_RATE),
}
MAX_FREQUENCY = Real(0.0, MAX_SAMPLE_RATE / 2)
PROBABILITY = Real(0.0, 1.0)
PATH = Local("a path")
DEVICE = Local("a device")
THREADS = Local("a thread count")

MEL = {
    "sample_rate": SAMPLE_RATE,
    "duration": Optional(Real(0.0, MAX_CLIP_SECONDS, low_open=True)),
    "n_fft": Integer(16, 65_536),
    "hop_length": Integer(1, 65_536),
    "n_mels": Integer(1, 1_024),
    "fmin": Real(0.0, MAX_SAMPLE_RATE / 2),
    "fmax": Optional(Real(0.0, MAX_SAMPLE_RATE / 2, low_open=True)),
    "top_db": Optional(Real(0.0, 1_000.0, low_open=True)),
    "crop": OneOf(CROP_POSITIONS),
    "input_sample_rate": Optional(SAMPLE_RATE),
    "fft_precision": OneOf(("float32", "float64")),
    "batch_size": Integer(1, MAX_BATCH),
    "device": DEVICE,
    "verbose": VERBOSE,
    "memory": Local("a cache folder (of pickles)"),
}
NETWORK = {  # AttentionCNN's arguments; n_classes and n_mels come from the fitted state
    "in_channels": Integer(1, 8),
    "base_filters": Integer(1, 1_024),
    "n_blocks": Integer(1, 32),
    "n_heads": Integer(1, 64),
    "dropout": Real(0.0, 1.0),
    "stem_stride": Integer(1, 16),
    "subtract_band_median": FLAG,
    "residual": FLAG,
    "batch_norm": FLAG,
}
OPTIMIZER = {  # only used to train further; numbers only
    "weight_decay": Real(0.0, 1e3),
    "momentum": Real(0.0, 1.0),
    "nesterov": FLAG,
    "eps": Real(0.0, 1.0),
    "betas": ListOf(Real(0.0, 1.0), 2),
    "amsgrad": FLAG,
    "dampening": Real(0.0, 1.0),
}
LOADER = {"batch_size": Integer(1, 65_536), "shuffle": FLAG}
CNN = {
    "module": Classes((AttentionCNN,)),
    "criterion": Optional(Classes((torch.nn.BCEWithLogitsLoss, torch.nn.CrossEntropyLoss))),
    "optimizer": Classes((torch.optim.AdamW, torch.optim.Adam, torch.optim.SGD)),
    "lr": Real(0.0, 10.0),
    "max_epochs": Integer(0, 100_000),
    "batch_size": Integer(1, 65_536),
    "patience": Optional(Integer(1, 100_000)),
    "validation_fraction": Optional(Real(0.0, 1.0, low_open=True)),
    "window_seconds": Real(0.0, 600.0, low_open=True),
    "overlap_seconds": Real(0.0, 600.0),
    "crops_per_recording": Integer(1, 1_000),
    "augment": OneOf((None, "default")),
    "aggregation": OneOf(AGGREGATIONS),
    "threshold": PROBABILITY,
    "soft_targets": FLAG,
    "predict_batch_size": Optional(Integer(1, MAX_BATCH)),
    "inference": Local("a compiler (torch.compile)", keep=("fused", "eager")),
    "random_state": Optional(Integer(0, 2**32 - 1)),
    "checkpoint_dir": PATH,
    "device": DEVICE,
    "verbose": VERBOSE,
    "compile": Local("a compiler (torch.compile)"),
    "torch_load_kwargs": Local("arguments of torch.load"),
    "use_caching": OneOf(("auto", True, False)),
    "warm_start": FLAG,
    "predict_nonlinearity": OneOf(("auto", None)),
    "dataset": Classes((Dataset,)),
    "iterator_train": Classes((torch.utils.data.DataLoader,)),
    "iterator_valid": Classes((torch.utils.data.DataLoader,)),
    "train_split": OneOf((None,)),
    "callbacks": OneOf((None,)),
}
# skorch's routed parameters: prefix -> domain of what follows it (None: never restored)
CNN_PREFIXES = {
    "module__": NETWORK,
    "optimizer__": OPTIMIZER,
    "criterion__": {"label_smoothing": Real(0.0, 1.0)},
    "iterator_train__": LOADER,
    "iterator_valid__": LOADER,
    "compile__": Local("compiler options"),
    "callbacks__": Local("a training callback's setting"),
}
BIRDNET = {
    "overlap_seconds": Real(0.0, WINDOW_SECONDS),
    "model_path": PATH,
    "n_threads": THREADS,
    "batch_size": Integer(1, 1_024),
    "input_sample_rate": Optional(SAMPLE_RATE),
    "memory": Local("a cache folder (of pickles)"),
    "verbose": VERBOSE,
}
DOMAINS: dict[type, dict] = {
    MelSpectrogramTransformer: MEL,
    AttentionCNNClassifier: CNN,
    BirdNETEmbedder: {**BIRDNET, "pooling": OneOf((*POOLINGS, None))},
    BirdNETClassifier: {
        **BIRDNET,
        "sensitivity": Real(0.0, 100.0, low_open=True),
        "aggregation": OneOf(("max", "mean")),
        "missing_score": PROBABILITY,
        "threshold": PROBABILITY,
    },
    VotingClassifier: {
        "estimators": Structure(),
        "voting": OneOf(VOTING),
        "weights": Optional(ListOf(Real(0.0, 1e6), 1_000)),
        "threshold": PROBABILITY,
        "n_jobs": THREADS,
    },
    EmbeddingLogisticRegression: {
        "C": Real(0.0, 1e12, low_open=True),
        "class_weight": OneOf((None, "balanced")),
        "max_iter": Integer(1, 10**7),
        "threshold": PROBABILITY,
    },
}
# scikit-learn's own estimators declare their domains (``_parameter_constraints``, checked
# by ``_validate_params``); these of their parameters act on the machine.
SKLEARN_LOCAL = {"n_jobs": THREADS, "memory": Local("a cache folder (of pickles)")}


def _rule(estimator_class: type, name: str):
    """The domain (or Local) of parameter ``name``; None when the name is not known."""
    domains = DOMAINS.get(estimator_class)
    if domains is None:  # a scikit-learn estimator: its own constraints
        if name in SKLEARN_LOCAL:
            return SKLEARN_LOCAL[name]
        constraints = getattr(estimator_class, "_parameter_constraints", {})
        return Structure() if name in constraints else None
    if name in domains:
        return domains[name]
    if domains is CNN:
        for prefix, routed in CNN_PREFIXES.items():
            if name.startswith(prefix):
                return routed if isinstance(routed, Local) else routed.get(name[len(prefix) :])
    return None


def _same(value, other) -> bool:
    """Equal and of the same type (True is not 1, 1.0 is not 1)."""
    return value is other or (type(value) is type(other) and value == other)


def _kept(rule: Local, value) -> bool:
    return any(_same(value, kept) for kept in rule.keep)


def _default(estimator_class: type, name: str):
    parameter = inspect.signature(estimator_class).parameters.get(name)
    return _NO_DEFAULT if parameter is None else parameter.default


_NO_DEFAULT = object()


def is_local(estimator_class: type, name: str, value) -> bool:
    """Whether parameter ``name`` set to ``value`` acts on the machine: no file sets it."""
    rule = _rule(estimator_class, name)
    return isinstance(rule, Local) and not _kept(rule, value)


def check_params(estimator_class: type, params: dict, where: str) -> tuple[dict, dict]:
    """Split a file's parameters into those to restore and those left out.

    Parameters
    ----------
    estimator_class : type
        An allow-listed estimator class.
    params : dict
        The parameters the file gives it, already decoded.
    where : str
        The estimator's place in the model (``"cnn__"``), to name parameters.

    Returns
    -------
    restored : dict
        Parameters in their declared domain.
    dropped : dict
        ``{where + name: (value, reason)}`` of the parameters that act on the machine and
        are not restored (their values as the file gives them), where the value differs
        from the estimator's default (which the loaded model takes).

    Raises
    ------
    ValueError
        Naming the first parameter that is unknown or outside its domain.
    """
    restored, dropped = {}, {}
    for name, value in params.items():
        rule = _rule(estimator_class, name)
        if rule is None:
            raise ValueError(
                f"{where}{name} is not a parameter a model file may set for "
                f"{estimator_class.__name__}"
            )
        if isinstance(rule, Local):
            if _kept(rule, value):
                restored[name] = value
            elif not _same(value, _default(estimator_class, name)):
                dropped[f"{where}{name}"] = (value, rule.reason)
            continue
        if value not in rule:
            raise ValueError(f"{where}{name}={value!r} is outside its domain: {rule.description}")
        restored[name] = value
    return restored, dropped


def _clip_samples(mel: MelSpectrogramTransformer) -> int:
    return 0 if mel.duration is None else math.ceil(mel.duration * mel.sample_rate)


def _mel_bytes(mel: MelSpectrogramTransformer) -> int:
    """A batch of clips, their spectra and spectrograms, and the mel filter bank."""
    samples = _clip_samples(mel)
    frames = 1 + samples // mel.hop_length
    bins = mel.n_fft // 2 + 1
    per_clip = samples + frames * (2 * bins + mel.n_mels)
    return FLOAT_BYTES * (mel.batch_size * per_clip + 2 * bins * mel.n_mels)


def _network_bytes(net: AttentionCNNClassifier, n_mels: int, spec: AudioSpec) -> int:
    """The stem's output for a batch of windows: the widest activation (blocks halve it)."""
    module = net.get_params_for("module")
    frames = spec.frames(net.window_seconds)
    batch = net.predict_batch_size or net.batch_size
    stride = module.get("stem_stride", 1)
    return FLOAT_BYTES * batch * module.get("base_filters", 64) * n_mels * frames // stride**2


WORK: dict[type, Callable] = {MelSpectrogramTransformer: _mel_bytes}


def check_work_budget(
    estimator, where: str, *, n_mels: int | None = None, audio_spec: AudioSpec | None = None
) -> None:
    """Refuse parameters whose prediction would need more than ``WORK_BUDGET_BYTES``.

    Parameters
    ----------
    estimator : estimator
        Built from a file's parameters, nothing allocated yet.
    where : str
        Its place in the model, for the message.
    n_mels : int, optional
        Mel bands of a network's fitted state.
    audio_spec : AudioSpec, optional
        The audio spec of a network's fitted state, which frames its windows (``None``:
        the default spec).

    Raises
    ------
    ValueError
        With the estimate and the budget.
    """
    if isinstance(estimator, AttentionCNNClassifier):
        module = estimator.get_params_for("module")
        channels = module.get("base_filters", 64) * 2 ** (module.get("n_blocks", 4) - 1)
        if channels > MAX_CHANNELS:
            raise ValueError(
                f"the network of {where[:-2] or 'the model'} would have {channels} channels in "
                f"its last block (base_filters x 2^(n_blocks - 1)); a model file may ask for "
                f"at most {MAX_CHANNELS}"
            )
        needed = _network_bytes(estimator, n_mels or 128, audio_spec or AudioSpec())
    elif type(estimator) in WORK:
        needed = WORK[type(estimator)](estimator)
    else:
        return
    if needed > WORK_BUDGET_BYTES:
        raise ValueError(
            f"the parameters of {where[:-2] or 'the model'} ask for about "
            f"{needed / 2**30:.1f} GiB per batch at prediction, above the "
            f"{WORK_BUDGET_BYTES / 2**30:.0f} GiB a model file may ask for"
        )
