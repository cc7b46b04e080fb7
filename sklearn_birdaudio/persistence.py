"""Safe persistence of fitted models: safetensors weights and a JSON description, no pickle.

:func:`save_model` writes a single `safetensors <https://huggingface.co/docs/safetensors>`_
file. Its tensors are the weights and buffers (batch-norm statistics included) of every
network in the model; its metadata header holds a JSON description of the model: the
structure (pipeline steps, ensemble members), each estimator's parameters and what it
learned besides weights (``classes_``, ``multilabel_``, ``n_mels_``, ``audio_spec_``, the
training history).
:func:`load_model` rebuilds the estimators from that description and loads the weights.

Reading a file never runs code from it: classes are looked up by name in a fixed
allow-list (never imported from a name found in the file), and safetensors holds tensors
only. ``joblib.load`` and ``pickle.load``, by contrast, run whatever code the file asks
for: load those only from sources you trust.

This module owns the file: its metadata (format and version, :func:`model_saved_at`,
:func:`model_lineage`), how it is written and recognised (a safetensors header, or a
pickle refused unless allowed), and the public functions. The description in it is
:mod:`~sklearn_birdaudio.model_description`'s (the allow-list :data:`ESTIMATORS`); what
each estimator learned, :mod:`~sklearn_birdaudio.fitted_state`'s; the domain of every
parameter a file may set, :mod:`~sklearn_birdaudio.restorable`'s.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from datetime import datetime, timezone
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save
from sklearn.utils.validation import check_is_fitted

from . import __version__
from .composition import deployed_model
from .fitted_state import Invalid, expect
from .model_description import Reader, Writer, supported

# The allow-list of classes a file may name, kept with the description it is part of.
from .model_description import ESTIMATORS  # noqa: F401  # isort: skip

__all__ = ["DroppedParameterWarning", "is_model_file", "load_model", "model_lineage",
           "model_saved_at", "save_model"]  # fmt: skip

FORMAT = "sklearn-birdaudio-model"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit on the JSON header
# First bytes of a pickle (protocol 2 or later) and of joblib's compressed pickles (zlib,
# gzip, bz2, xz, lzma, lz4): how a joblib model without its usual suffix is recognised,
# once the file has been found not to be safetensors.
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
PICKLE_MAGIC = (
    b"\x80", b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda", b"\x1f\x8b", b"BZh",
    b"\xfd7zXZ", b"\x5d\x00\x00", b"\x04\x22\x4d\x18",
)  # fmt: skip


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


def save_model(model, path: str | os.PathLike) -> Path:
    """Save a fitted model as one safetensors file, without pickle.

    The file holds the networks' weights and buffers as tensors and, in its metadata, a
    JSON description of the model: structure, parameters, classes and training history.
    :func:`load_model` reads it back, giving identical predictions, and never runs code
    from the file, so models can be shared safely (unlike joblib or pickle files).

    Parameters
    ----------
    model : Pipeline, AttentionCNNClassifier, VotingClassifier or DistilledClassifier
        A fitted model made of :class:`~sklearn.pipeline.Pipeline`,
        :class:`~sklearn_birdaudio.MelSpectrogramTransformer`,
        :class:`~sklearn_birdaudio.AttentionCNNClassifier` and
        :class:`~sklearn_birdaudio.VotingClassifier`, nested in any way. A
        :class:`~sklearn_birdaudio.DistilledClassifier` is saved as its student, with its
        ``lineage_`` (the teacher and its licence) in the header: :func:`model_lineage`
        reads it, ``birdaudio info`` prints it, and a loaded model keeps it as
        ``lineage_`` (so it is saved again with the model).
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
    ...         window_seconds=0.5, overlap_seconds=0, random_state=0, verbose=0),
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
    lineage = getattr(model, "lineage_", None)  # a distilled model's, or a loaded one's
    model = deployed_model(model)  # a distilled model saves its student alone
    supported(model)
    check_is_fitted(model)
    writer = Writer()
    description = writer.estimator(model)
    for message in writer.warnings:
        warnings.warn(message, UserWarning, stacklevel=2)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "sklearn_birdaudio_version": __version__,
        "saved_at": datetime.now(timezone.utc).strftime(SAVED_AT_FORMAT),
        "model": json.dumps(description),
    }
    if lineage is not None:
        metadata["lineage"] = json.dumps(check_lineage(lineage))
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
    ValueError: ...: not a model file: not in the safetensors format ... writes (...); expected ...
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
    model, dropped, lineage = _load_safetensors(path)
    if lineage is not None:
        model.lineage_ = lineage
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
        raise ValueError(
            f"{path}: not a model file: not in the safetensors format sklearn-birdaudio writes "
            f"({error}); {expected}"
        ) from None
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
            expect(isinstance(description, dict), "not an estimator")
            reader = Reader(handle)
            model = reader.estimator(description)
        except (Invalid, KeyError, TypeError, ValueError, RecursionError) as error:
            # ValueError includes json's decoding errors and the estimators' own checks
            detail = error if isinstance(error, Invalid) else f"{type(error).__name__}: {error}"
            raise ValueError(f"{path}: invalid model description ({detail}); {expected}") from None
        lineage = _read_lineage(path, metadata)
    return model, reader.dropped, lineage


SAVED_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # the header's save date (UTC)
_SAVED_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def model_saved_at(path: str | os.PathLike) -> str | None:
    """When :func:`save_model` wrote ``path`` (UTC, ``2026-12-05T06:30:00Z``).

    Returns
    -------
    str or None
        ``None`` for a file that records no date in that form (a joblib file, an older
        model file, or an edited header).
    """
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            text = (handle.metadata() or {}).get("saved_at")
    except Exception:  # not a safetensors file: nothing recorded
        return None
    return text if isinstance(text, str) and _SAVED_AT.fullmatch(text) else None


#: Longest text of one lineage entry, and most entries, that a file may hold.
LINEAGE_LIMITS = (2_000, 16)


def check_lineage(lineage) -> dict:
    """A model's lineage as the file holds it: up to 16 short text (or number) entries.

    Parameters
    ----------
    lineage : dict
        ``{name: text, number or None}``: where the model comes from
        (:func:`~sklearn_birdaudio.distillation.lineage_of`).

    Returns
    -------
    dict
        ``lineage``, checked.

    Raises
    ------
    ValueError
        If it is not such a dict.
    """
    longest, most = LINEAGE_LIMITS
    valid = (
        isinstance(lineage, dict)
        and len(lineage) <= most
        and all(isinstance(key, str) and len(key) <= 64 for key in lineage)
        and all(
            value is None
            or (isinstance(value, str) and len(value) <= longest)
            or (isinstance(value, (int, float)) and not isinstance(value, bool))
            for value in lineage.values()
        )
    )
    if not valid:
        raise ValueError(
            f"lineage must be a dict of at most {most} entries named by short strings, each "
            f"a string of at most {longest} characters, a number or None."
        )
    return dict(lineage)


def _read_lineage(path: Path, metadata: dict) -> dict | None:
    text = metadata.get("lineage")
    if text is None:
        return None
    try:
        return check_lineage(json.loads(text))
    except ValueError as error:  # json's errors are ValueErrors too
        raise ValueError(f"{path}: invalid lineage in the model file ({error}).") from None


def model_lineage(path: str | os.PathLike) -> dict | None:
    """Where a saved model comes from: the teacher it was distilled from, and its licence.

    Parameters
    ----------
    path : str or path-like
        A model file written by :func:`save_model`.

    Returns
    -------
    dict or None
        The lineage the file records (``teacher``, ``licence``, ``note``, ``date``, ...),
        or ``None`` for a model that records none (one not distilled).

    Raises
    ------
    ValueError
        If the file is not a model file, or its lineage is not valid.
    """
    return load_model(path).__dict__.get("lineage_")
