"""The inference paths of a fitted network: fused and compiled copies, their cache, windows.

:func:`inference_module` makes the copy a fitted
:class:`~sklearn_birdaudio.AttentionCNNClassifier` predicts with (``inference=``);
:func:`cached_inference_module` keeps one per trained module and rebuilds it whenever the
weights change (:func:`weights_fingerprint`). :func:`windowed_logits` scores recordings
longer than the network's window window by window and aggregates their logits.
"""

from __future__ import annotations

import itertools
import threading
import weakref

import torch

from .training import window_starts

__all__ = [
    "AGGREGATIONS",
    "INFERENCE_PATHS",
    "cached_inference_module",
    "inference_module",
    "weights_fingerprint",
    "windowed_logits",
]

INFERENCE_PATHS = ("fused", "eager", "compiled")
AGGREGATIONS = ("max", "mean")
# The fast copy of each trained module, with the fingerprint of the weights it was made
# from. Kept outside the estimator: predicting must not change its ``__dict__``
# (scikit-learn's rule), and the copy is never pickled. An entry goes with its module.
_FAST_MODULES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FAST_MODULES_LOCK = threading.Lock()


def _check_inference(inference) -> None:
    if inference not in INFERENCE_PATHS:
        raise ValueError(f"inference must be one of {INFERENCE_PATHS}, got {inference!r}.")


def inference_module(module: torch.nn.Module, inference: str = "fused", **compile_kwargs):
    """The module as ``AttentionCNNClassifier(inference=...)`` runs it to predict.

    Parameters
    ----------
    module : torch.nn.Module
        A trained network; it is not changed.
    inference : {"fused", "eager", "compiled"}, default="fused"
        ``"eager"``: ``module`` itself. ``"fused"``: ``module.for_inference()`` (batch
        norms folded, channels-last weights on the CPU) when it has that method, else
        ``module``. ``"compiled"``: the fused copy through ``torch.compile`` with
        inductor's ``freezing`` (weights folded into the compiled graph, and oneDNN's
        fused convolutions on the CPU): 1.1x the fused copy for the default network at
        batch 1 on 2 cores, slower for the thin recipe network (``benchmarks/speed.py``).
    **compile_kwargs
        Arguments of ``torch.compile``, replacing those above (``options`` included).

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ValueError
        If ``inference`` is not one of the three paths.
    """
    _check_inference(inference)
    if inference == "eager":
        return module
    fast = module
    if hasattr(module, "for_inference"):
        on_cpu = all(t.device.type == "cpu" for t in module.parameters())
        fast = module.for_inference(channels_last=on_cpu)  # measured on the CPU only
    if inference == "compiled":
        fast = torch.compile(fast, **{"options": {"freezing": True}, **compile_kwargs})
    return fast


def weights_fingerprint(module: torch.nn.Module) -> tuple:
    """A value that changes whenever any parameter or buffer of ``module`` changes.

    Each tensor's storage address and version counter: torch increments a tensor's
    counter on every in-place update (an optimizer step, ``load_state_dict``, batch
    norms' running statistics), and replacing a tensor changes its address. The counter
    is torch's private ``Tensor._version``, read here and nowhere else: if a torch
    release drops it, this function is the one to change.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    tuple of (int, int)
        ``(data_ptr, version)`` of every parameter, then every buffer.
    """
    tensors = itertools.chain(module.parameters(), module.buffers())
    return tuple((tensor.data_ptr(), tensor._version) for tensor in tensors)


def cached_inference_module(
    module: torch.nn.Module, inference: str, compile_kwargs: dict
) -> torch.nn.Module:
    """The module that scores batches: ``module`` in training mode, else per ``inference``.

    The fused (or compiled) copy of :func:`inference_module` is cached per module (one
    copy of each trained network, built once by threads sharing it) with the
    :func:`weights_fingerprint` of the weights it was made from: any change of weights
    rebuilds it. The cache holds its modules weakly: an entry goes with its module.

    Parameters
    ----------
    module : torch.nn.Module
        The trained network, or skorch's ``torch.compile`` wrapper of it
        (``compile=True``), whose plain module is then the one copied.
    inference : {"fused", "eager", "compiled"}
        As in :func:`inference_module`.
    compile_kwargs : dict
        Arguments of ``torch.compile`` for ``"compiled"``.

    Returns
    -------
    torch.nn.Module
    """
    if module.training or inference == "eager":
        return module
    plain = getattr(module, "_orig_mod", module)
    fingerprint = (inference, *weights_fingerprint(plain))
    with _FAST_MODULES_LOCK:  # threads sharing a model build its copy once
        cached = _FAST_MODULES.get(plain)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        fast = inference_module(plain, inference, **compile_kwargs)
        if inference == "compiled":
            fast = OneCallAtATime(fast)
        _FAST_MODULES[plain] = (fingerprint, fast)
        return fast


class OneCallAtATime(torch.nn.Module):
    """A module that threads call one at a time.

    ``detect``'s threads share one fitted model. A ``torch.compile`` module compiles on
    its first calls and on new input shapes, and dynamo's compilation is not safe to run
    from several threads at once; the compiled path is therefore serialised, and the
    threads still overlap their decoding and features.

    Parameters
    ----------
    module : torch.nn.Module
        The module to call (``.module``).
    """

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module
        self._lock = threading.Lock()

    def forward(self, *args, **kwargs):
        with self._lock:
            return self.module(*args, **kwargs)


def windowed_logits(
    network: torch.nn.Module,
    spectrograms: torch.Tensor,
    *,
    window_frames: int,
    hop_frames: int,
    batch_size: int,
    aggregation: str,
) -> torch.Tensor:
    """Logits of a batch of spectrograms; those longer than the window, window by window.

    Each recording is cut on the grid of its own length
    (:func:`~sklearn_birdaudio.training.window_starts`), so its NaN padding never shifts
    the windows, and its windows' logits are aggregated.

    Parameters
    ----------
    network : torch.nn.Module
        Takes ``(n, 1, n_mels, n_frames)`` spectrograms and returns ``(n, n_classes)``
        logits.
    spectrograms : torch.Tensor of shape (n_samples, 1, n_mels, n_frames)
        NaN frames at the end are padding.
    window_frames : int
        Frames the network sees; a batch no longer than that is scored in one pass.
    hop_frames : int
        Frames from one window's start to the next.
    batch_size : int
        Windows per forward pass (only a pass's windows are copied out at a time); 0 or
        less: every window in one pass.
    aggregation : {"max", "mean"}
        How a recording's window logits become its logit.

    Returns
    -------
    torch.Tensor of shape (n_samples, n_classes)

    Examples
    --------
    >>> spectrograms = torch.arange(10.0).reshape(1, 1, 2, 5)  # 2 mel bands, 5 frames
    >>> def first_frame(windows):  # a "network": one logit per mel band
    ...     return windows[:, 0, :, 0]
    >>> windowed_logits(  # windows at frames 0, 2 and 3
    ...     first_frame, spectrograms, window_frames=2, hop_frames=2, batch_size=1,
    ...     aggregation="max",
    ... )
    tensor([[3., 8.]])
    """
    if spectrograms.shape[-1] <= window_frames:
        return network(spectrograms)
    n_valid = (~torch.isnan(spectrograms[:, 0, 0, :])).sum(dim=1).tolist()
    grid = [
        (row, start)
        for row, n_frames in enumerate(n_valid)
        for start in window_starts(n_frames, window_frames, hop_frames)
    ]
    size = batch_size if batch_size > 0 else len(grid)
    # Views of the windows; only a forward pass's worth at a time is copied out (stacked).
    windows = [spectrograms[row, ..., start : start + window_frames] for row, start in grid]
    logits = torch.cat(
        [network(torch.stack(windows[first : first + size])) for first in range(0, len(grid), size)]
    )
    owners = torch.tensor([row for row, _ in grid], device=logits.device)
    owners = owners[:, None].expand_as(logits)
    reduce = "amax" if aggregation == "max" else "mean"
    aggregated = logits.new_zeros(spectrograms.shape[0], logits.shape[-1])
    return aggregated.scatter_reduce(0, owners, logits, reduce=reduce, include_self=False)
