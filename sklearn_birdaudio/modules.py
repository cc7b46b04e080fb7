"""Torch modules of the classifier: residual blocks, attention pooling, :class:`AttentionCNN`.

The network reads a log-mel spectrogram ``(batch, 1, n_mels, n_frames)`` of any number of
frames, where frames after the end of a shorter recording are NaN (as
:class:`~sklearn_birdaudio.MelSpectrogramTransformer` pads them with ``duration=None``),
and returns one logit per class. A stack of residual blocks with batch norm halves
frequency and time at every block; the frequency axis is then averaged away, leaving one
embedding per time step, and a multi-head attention with a learned query pools those
embeddings into one, ignoring time steps that are padding. The same linear head applied to
each time step gives frame-level scores for detection and plots.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ._deprecation import deprecate_positional
from ._validation import check_integer, check_real
from .log_mel import silence_floor

__all__ = [
    "AttentionCNN",
    "AttentionPooling",
    "ResidualBlock",
    "band_median",
    "fold_batch_norms",
]


def fold_batch_norms(layers: nn.Sequential) -> nn.Sequential:
    """``layers`` with every convolution followed by a batch norm folded into one convolution.

    In eval mode a batch norm is an affine map of each channel, so it can be folded into
    the weights and bias of the convolution before it; the batch norm's place is taken by
    an :class:`~torch.nn.Identity` (indices, and so state-dict keys of other layers, stay).

    Parameters
    ----------
    layers : nn.Sequential
        Layers in eval mode.

    Returns
    -------
    nn.Sequential
        New layers computing the same function (up to float rounding).
    """
    folded = list(layers)
    for index, (layer, following) in enumerate(itertools.pairwise(layers)):
        if isinstance(layer, nn.Conv2d) and isinstance(following, nn.BatchNorm2d):
            folded[index] = fuse_conv_bn_eval(layer, following)
            folded[index + 1] = nn.Identity()
    return nn.Sequential(*folded)


@deprecate_positional
def band_median(spectrograms: torch.Tensor, *, padded: bool = True) -> torch.Tensor:
    """Median of each band over the valid frames, ``(..., 1)``: the lower one of an even count.

    Parameters
    ----------
    spectrograms : Tensor of shape (..., n_frames)
        NaN frames are padding (ignored).
    padded : bool, default=True
        False promises there is no NaN, which allows a faster path: on the CPU, numpy's
        introselect (``np.partition``) is 5x faster than ``torch.median`` for batches of
        5-s windows (ad hoc).

    Returns
    -------
    Tensor of shape (..., 1)
    """
    if padded:
        return spectrograms.nanmedian(dim=-1, keepdim=True).values
    numpy_can = (
        spectrograms.device.type == "cpu"
        and spectrograms.dtype in (torch.float32, torch.float64)
        and not spectrograms.requires_grad
    )
    if not numpy_can or torch.compiler.is_compiling():
        return spectrograms.median(dim=-1, keepdim=True).values
    middle = (spectrograms.shape[-1] - 1) // 2
    values = np.partition(spectrograms.numpy(), middle, axis=-1)[..., middle : middle + 1]
    return torch.from_numpy(np.ascontiguousarray(values))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a shortcut, down-sampling by ``stride``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    stride : int, default=2
        Down-sampling factor of frequency and time (a 1x1 convolution with the same stride
        carries the shortcut when shapes change).
    shortcut : bool, default=True
        False drops the shortcut: a plain two-convolution block (for ablations).
    batch_norm : bool, default=True
        False replaces the batch norms with a bias on each convolution (for ablations).
    """

    @deprecate_positional
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 2,
        shortcut: bool = True,
        batch_norm: bool = True,
    ):
        super().__init__()

        def norm(channels):
            return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()

        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=not batch_norm),
            norm(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=not batch_norm),
            norm(out_channels),
        )
        if not shortcut:
            self.shortcut = None
        elif stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=not batch_norm),
                norm(out_channels),
            )
        self.activation = nn.ReLU(inplace=True)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs = self.residual(inputs)
        if self.shortcut is not None:
            outputs = outputs + self.shortcut(inputs)
        return self.activation(outputs)


class AttentionPooling(nn.Module):
    """Pool a sequence of embeddings into one with multi-head attention and a learned query.

    Parameters
    ----------
    embed_dim : int
        Size of each embedding; must be divisible by ``n_heads``.
    n_heads : int, default=8
        Attention heads.
    """

    @deprecate_positional
    def __init__(self, embed_dim: int, *, n_heads: int = 8):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, embed_dim) * embed_dim**-0.5)
        self.attention = nn.MultiheadAttention(embed_dim, n_heads, batch_first=True)

    def forward(self, embeddings: torch.Tensor, padding: torch.Tensor | None = None):
        """Pool ``(batch, steps, embed_dim)`` into ``(batch, embed_dim)``.

        Parameters
        ----------
        embeddings : Tensor of shape (batch, steps, embed_dim)
        padding : Tensor of bool, shape (batch, steps), optional
            True where a step is padding; those steps get zero attention weight.

        Returns
        -------
        pooled : Tensor of shape (batch, embed_dim)
        weights : Tensor of shape (batch, steps)
            Attention weights, averaged over heads (rows sum to 1).
        """
        query = self.query.expand(embeddings.shape[0], -1, -1)
        pooled, weights = self.attention(
            query, embeddings, embeddings, key_padding_mask=padding, need_weights=True
        )
        return pooled[:, 0], weights[:, 0]


class AttentionCNN(nn.Module):
    """Residual CNN with batch norm and multi-head attention pooling over time.

    Parameters
    ----------
    n_classes : int
        Number of output logits.
    n_mels : int, default=128
        Mel bands of the input (the input batch norm normalises each band).
    in_channels : int, default=1
        Input channels.
    base_filters : int, default=64
        Channels of the stem; each residual block doubles them (64, 128, 256, 512).
    n_blocks : int, default=4
        Residual blocks; each halves frequency and time.
    n_heads : int, default=8
        Heads of the attention pooling; ``base_filters * 2 ** (n_blocks - 1)`` must be
        divisible by it.
    dropout : float, default=0.5
        Dropout before the classification head.
    stem_stride : int, default=1
        Down-sampling of frequency and time by the first convolution. 2 makes the network
        about 2.5x cheaper to train on the CPU (the full-resolution layers are most of the
        work) and shortens ``time_reduction`` steps accordingly.
    subtract_band_median : bool, default=False
        Subtract each mel band's median over the window's valid frames before the input
        batch norm: the stationary noise floor and the recorder's gain and frequency
        response go, the calls stay (median clipping, as in BirdCLEF 2016's winners).
    residual, batch_norm : bool, default=True
        Shortcuts and batch norms of the residual blocks (and batch norm of the stem);
        False removes them, for ablations. The input batch norm stays.

    Examples
    --------
    >>> import torch
    >>> network = AttentionCNN(n_classes=3, n_mels=32, base_filters=8, n_blocks=2)
    >>> network(torch.randn(2, 1, 32, 100)).shape
    torch.Size([2, 3])
    """

    @deprecate_positional
    def __init__(
        self,
        n_classes: int,
        n_mels: int = 128,
        *,
        in_channels: int = 1,
        base_filters: int = 64,
        n_blocks: int = 4,
        n_heads: int = 8,
        dropout: float = 0.5,
        stem_stride: int = 1,
        subtract_band_median: bool = False,
        residual: bool = True,
        batch_norm: bool = True,
    ):
        super().__init__()
        # NumPy integers (from a GridSearchCV grid) become the ints torch layers expect.
        n_classes, n_mels, in_channels, base_filters, n_blocks, n_heads, stem_stride = (
            check_integer(value, f"module__{name}", min_val=1)
            for name, value in [
                ("n_classes", n_classes), ("n_mels", n_mels), ("in_channels", in_channels),
                ("base_filters", base_filters), ("n_blocks", n_blocks), ("n_heads", n_heads),
                ("stem_stride", stem_stride),
            ]
        )  # fmt: skip
        dropout = check_real(
            dropout,
            "module__dropout",
            min_val=0.0,
            max_val=1.0,
            include_boundaries="left",
            message=f"module__dropout must be in [0, 1), got {dropout!r}.",
        )
        channels = [base_filters * 2**index for index in range(n_blocks)]
        if channels[-1] % n_heads:
            raise ValueError(
                f"module__n_heads={n_heads} must divide the embedding size "
                f"base_filters * 2 ** (n_blocks - 1) = {channels[-1]}."
            )
        self.time_reduction = stem_stride * 2**n_blocks
        self.subtract_band_median = bool(subtract_band_median)
        # One scale and offset per mel band. Input statistics do not drift during training,
        # so a cumulative average (momentum=None) estimates them exactly after a few
        # batches; the default momentum of 0.1 left eval-mode inputs shifted by several dB
        # after short trainings (validation loss rose while training loss fell).
        self.input_norm = nn.BatchNorm2d(n_mels, momentum=None)
        self.stem = nn.Sequential(
            nn.Conv2d(
                in_channels, base_filters, 3, stride=stem_stride, padding=1, bias=not batch_norm
            ),
            nn.BatchNorm2d(base_filters) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(
                    in_channels, out_channels, stride=2, shortcut=residual, batch_norm=batch_norm
                )
                for in_channels, out_channels in zip(
                    [base_filters, *channels[:-1]], channels, strict=True
                )
            )
        )
        self.pooling = AttentionPooling(channels[-1], n_heads=n_heads)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels[-1], n_classes)

    def embed(self, spectrograms: torch.Tensor):
        """Per-step embeddings and padding mask of a batch of spectrograms.

        Parameters
        ----------
        spectrograms : Tensor of shape (batch, in_channels, n_mels, n_frames)
            Log-mel dB; NaN frames are padding.

        Returns
        -------
        embeddings : Tensor of shape (batch, steps, embed_dim)
            One embedding per ``time_reduction`` input frames.
        padding : Tensor of bool, shape (batch, steps)
            True where a step covers padding only.
        """
        valid = ~torch.isnan(spectrograms[:, 0, 0, :])
        n_valid = valid.sum(dim=1)
        # Without padding the NaN handling can be skipped (the same result, faster); a
        # compiled graph takes the general path rather than break on the test.
        padded = torch.compiler.is_compiling() or bool((n_valid < valid.shape[1]).any())
        if self.subtract_band_median:
            spectrograms = spectrograms - band_median(spectrograms, padded=padded)
        inputs = spectrograms
        if padded:
            # Padding becomes each clip's quietest value (silence), so convolutions near
            # the end of a recording see what zero-padded audio would give.
            inputs = torch.where(
                torch.isnan(spectrograms), silence_floor(spectrograms), spectrograms
            )
        inputs = self.input_norm(inputs.transpose(1, 2)).transpose(1, 2)
        features = self.blocks(self.stem(inputs))
        # Average frequency away; contiguous, so that attention projects all steps in one
        # matrix product (a transposed view made it a batched product per step: 3 % of the
        # default network at batch 1, ad hoc).
        embeddings = features.mean(dim=2).transpose(1, 2).contiguous()
        steps = torch.arange(embeddings.shape[1], device=embeddings.device)
        n_valid_steps = torch.clamp(-(-n_valid // self.time_reduction), min=1)  # ceil
        return embeddings, steps[None, :] >= n_valid_steps[:, None]

    def for_inference(self, *, channels_last: bool = True) -> AttentionCNN:
        """A copy for fast inference: batch norms folded into convolutions, eval mode.

        The copy computes the same logits as this network in eval mode (up to float
        rounding) with fewer passes over memory; with ``channels_last`` its weights are
        stored channels-last, the layout oneDNN's CPU convolutions run fastest in
        (``benchmarks/speed.py`` measures the copy against the network). The input batch
        norm is kept: it comes before the zero padding of the stem and cannot be folded
        exactly.

        Parameters
        ----------
        channels_last : bool, default=True
            Store the convolution weights in ``torch.channels_last`` memory format.

        Returns
        -------
        AttentionCNN
            A new module in eval mode; this one is unchanged.
        """
        network = copy.deepcopy(self).eval()
        # Every convolution + batch norm pair sits in a Sequential (stem, residual paths,
        # shortcuts): fold them all, wherever they are.
        for parent in list(network.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Sequential):
                    setattr(parent, name, fold_batch_norms(child))
        if channels_last:
            network = network.to(memory_format=torch.channels_last)
        return network.requires_grad_(False)

    def forward(self, spectrograms: torch.Tensor) -> torch.Tensor:
        """Clip logits ``(batch, n_classes)`` of spectrograms of any number of frames."""
        embeddings, padding = self.embed(spectrograms)
        pooled, _ = self.pooling(embeddings, padding)
        return self.head(self.dropout(pooled))

    def frame_logits(self, spectrograms: torch.Tensor) -> torch.Tensor:
        """Logits of each time step, ``(batch, steps, n_classes)``; NaN on padding.

        Step ``j`` covers input frames ``j * time_reduction`` to
        ``(j + 1) * time_reduction - 1``.
        """
        embeddings, padding = self.embed(spectrograms)
        logits = self.head(embeddings)
        return logits.masked_fill(padding[..., None], torch.nan)

    def attention_weights(self, spectrograms: torch.Tensor) -> torch.Tensor:
        """Attention weight of each time step in the pooled embedding, ``(batch, steps)``."""
        embeddings, padding = self.embed(spectrograms)
        return self.pooling(embeddings, padding)[1]
