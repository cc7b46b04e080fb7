"""Training-time augmentation of log-mel spectrogram batches.

Each augmentation is a :class:`torch.nn.Module` whose ``forward(spectrograms, targets,
generator)`` returns a new ``(spectrograms, targets)`` pair; the classifier applies them
to its training batches only, never at prediction. Spectrograms are log-mel dB of shape
``(batch, 1, n_mels, n_frames)`` whose NaN frames are padding: every augmentation leaves
padding as padding and touches audio frames only. Targets are float ``(batch,
n_classes)``: a 0/1 indicator (multi-label), or one-hot rows (multi-class; mixup makes
them soft, which ``CrossEntropyLoss`` accepts).

Randomness comes only from the ``generator`` argument, so a seeded generator reproduces
the same augmented batches.
"""

from __future__ import annotations

import torch

from ._validation import check_real
from .log_mel import silence_floor

__all__ = [
    "BackgroundMix",
    "Compose",
    "FrequencyShift",
    "Mixup",
    "RandomGain",
    "SpecAugment",
    "default_augmentation",
    "make_augmentation",
]


def _check_range(name: str, value, low: float, high: float | None = None) -> float:
    """``value`` as a float, if it is a finite number in ``[low, high]`` (or ``>= low``)."""
    bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
    message = f"{name} must be a number {bound}, got {value!r}."
    return check_real(value, name, min_val=low, max_val=high, message=message)


def _uniform(shape, low: float, high: float, generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, device=device)


def _power(decibels: torch.Tensor) -> torch.Tensor:
    return torch.pow(10.0, decibels / 10.0)


def _decibels(power: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(power.clamp_min(1e-10))


class RandomGain(torch.nn.Module):
    """Shift each recording's level by a random gain, uniform in ``[-max_db, max_db]``.

    A gain on the waveform is a constant offset of its log-mel dB.

    Parameters
    ----------
    max_db : float, default=6.0
        Largest gain in dB, up or down.
    """

    def __init__(self, max_db: float = 6.0):
        super().__init__()
        self.max_db = _check_range("max_db", max_db, 0.0)

    def forward(self, spectrograms, targets, generator=None):
        gains = _uniform(
            (spectrograms.shape[0], 1, 1, 1), -self.max_db, self.max_db, generator,
            spectrograms.device,
        )  # fmt: skip
        return spectrograms + gains, targets  # NaN + gain stays NaN


class SpecAugment(torch.nn.Module):
    """Mask random bands of time frames and mel bands (Park et al., 2019).

    Masked values are set to the recording's lowest dB value (its silence floor), not to
    NaN, which would mark padding.

    Parameters
    ----------
    time_masks : int, default=2
        Time masks per recording.
    max_time_fraction : float, default=0.1
        Widest time mask, as a share of the frames.
    freq_masks : int, default=2
        Mel-band masks per recording.
    max_freq_bands : int, default=12
        Widest mel-band mask, in bands.
    """

    def __init__(
        self,
        time_masks: int = 2,
        max_time_fraction: float = 0.1,
        freq_masks: int = 2,
        max_freq_bands: int = 12,
    ):
        super().__init__()
        self.time_masks = int(_check_range("time_masks", time_masks, 0))
        self.max_time_fraction = _check_range("max_time_fraction", max_time_fraction, 0.0, 1.0)
        self.freq_masks = int(_check_range("freq_masks", freq_masks, 0))
        self.max_freq_bands = int(_check_range("max_freq_bands", max_freq_bands, 0))

    @staticmethod
    def _masks(n_masks, max_width, length, batch, generator, device) -> torch.Tensor:
        """Boolean ``(batch, length)``: the union of ``n_masks`` random spans per row."""
        positions = torch.arange(length, device=device)
        masked = torch.zeros(batch, length, dtype=torch.bool, device=device)
        for _ in range(n_masks):
            widths = torch.rand(batch, generator=generator, device=device) * (max_width + 1)
            widths = widths.long().clamp_max(length)
            starts = torch.rand(batch, generator=generator, device=device) * (length - widths + 1)
            starts = starts.long()
            masked |= (positions >= starts[:, None]) & (positions < (starts + widths)[:, None])
        return masked

    def forward(self, spectrograms, targets, generator=None):
        batch, _, n_mels, n_frames = spectrograms.shape
        device = spectrograms.device
        floor = silence_floor(spectrograms)
        max_frames = int(self.max_time_fraction * n_frames)
        time = self._masks(self.time_masks, max_frames, n_frames, batch, generator, device)
        freq = self._masks(
            self.freq_masks, min(self.max_freq_bands, n_mels), n_mels, batch, generator, device
        )
        masked = time[:, None, None, :] | freq[:, None, :, None]
        masked &= ~torch.isnan(spectrograms)
        return torch.where(masked, floor.expand_as(spectrograms), spectrograms), targets


class FrequencyShift(torch.nn.Module):
    """Shift recordings up or down by a random whole number of mel bands.

    Above about 1 kHz mel bands are nearly log-spaced, so a shift of ``k`` bands is
    close to a pitch shift by a constant ratio (at the package's 128 bands up to 16 kHz,
    one band is about 3 % of the frequency at 4 kHz): individuals and populations of a
    species sing a little higher or lower than the recordings at hand. Bands shifted out
    are dropped; the bands shifted in hold the recording's lowest dB value (its silence
    floor); padding frames stay padding.

    Parameters
    ----------
    max_bands : int, default=4
        Largest shift, in mel bands, up or down (uniform over ``[-max_bands,
        max_bands]``).
    probability : float, default=0.5
        Share of the batch that is shifted.
    """

    def __init__(self, max_bands: int = 4, probability: float = 0.5):
        super().__init__()
        self.max_bands = int(_check_range("max_bands", max_bands, 0))
        self.probability = _check_range("probability", probability, 0.0, 1.0)

    def forward(self, spectrograms, targets, generator=None):
        batch, _, n_mels, n_frames = spectrograms.shape
        device = spectrograms.device
        shifts = torch.randint(
            -self.max_bands, self.max_bands + 1, (batch,), generator=generator, device=device
        )
        chosen = torch.rand(batch, generator=generator, device=device) < self.probability
        shifts = torch.where(chosen, shifts, torch.zeros_like(shifts))
        sources = torch.arange(n_mels, device=device)[None, :] - shifts[:, None]  # band b <- b - k
        inside = (sources >= 0) & (sources < n_mels)
        index = sources.clamp(0, n_mels - 1)[:, None, :, None].expand(-1, 1, -1, n_frames)
        shifted = torch.gather(spectrograms, 2, index)
        floor = silence_floor(spectrograms)
        shifted = torch.where(inside[:, None, :, None], shifted, floor.expand_as(shifted))
        padding = torch.isnan(spectrograms)
        return torch.where(padding, spectrograms, shifted), targets


class Mixup(torch.nn.Module):
    """Mix each recording with another of the batch, in the power domain (Zhang et al.).

    The mixed spectrogram is ``dB(w · P_a + (1 - w) · P_b)`` with ``w ~ Beta(alpha,
    alpha)`` folded to ``w >= 0.5`` (the first recording dominates); frames where the
    partner is padding keep the first recording's values.

    Parameters
    ----------
    alpha : float, default=0.4
        Beta distribution parameter.
    probability : float, default=0.5
        Share of the batch that is mixed.
    targets : {"union", "weighted"}, default="union"
        ``"union"``: both recordings' species are present (the element-wise max), what a
        multi-label bird classifier should learn from an overlay; ``"weighted"``:
        ``w · y_a + (1 - w) · y_b``, the original mixup (the one for multi-class targets,
        whose one-hot rows become soft).
    """

    TARGET_MODES = ("union", "weighted")

    def __init__(self, alpha: float = 0.4, probability: float = 0.5, targets: str = "union"):
        super().__init__()
        self.alpha = _check_range("alpha", alpha, 1e-6)
        self.probability = _check_range("probability", probability, 0.0, 1.0)
        if targets not in self.TARGET_MODES:
            raise ValueError(f"targets must be one of {self.TARGET_MODES}, got {targets!r}.")
        self.targets = targets

    def forward(self, spectrograms, targets, generator=None):
        batch = spectrograms.shape[0]
        device = spectrograms.device
        if targets.ndim != 2:
            raise ValueError(
                f"Mixup needs (batch, n_classes) float targets, got shape {tuple(targets.shape)}; "
                "one-hot encode class indices."
            )
        partners = torch.randperm(batch, generator=generator, device=device)
        # torch.distributions ignores generators: draw Beta weights from uniforms instead.
        weights = _beta(self.alpha, batch, generator, device)
        weights = torch.maximum(weights, 1 - weights)
        chosen = torch.rand(batch, generator=generator, device=device) < self.probability
        weights = torch.where(chosen, weights, torch.ones_like(weights))
        w = weights[:, None, None, None]
        partner = spectrograms[partners]
        mixed = _decibels(w * _power(spectrograms) + (1 - w) * _power(partner))
        keep = torch.isnan(partner) | torch.isnan(spectrograms) | ~chosen[:, None, None, None]
        mixed = torch.where(keep, spectrograms, mixed)
        indicator = targets.float()
        if self.targets == "union":
            mixed_targets = torch.where(
                chosen[:, None], torch.maximum(indicator, indicator[partners]), indicator
            )
        else:
            v = weights[:, None]
            mixed_targets = v * indicator + (1 - v) * indicator[partners]
        return mixed, mixed_targets


def _beta(alpha: float, size: int, generator, device) -> torch.Tensor:
    """Beta(alpha, alpha) samples drawn only from ``generator`` (reproducible).

    Uses Jöhnk's method: accept uniforms ``u, v`` with ``u^(1/a) + v^(1/a) <= 1``.
    """
    samples = torch.empty(0, device=device)
    while samples.numel() < size:
        u = torch.rand(4 * size, generator=generator, device=device)
        v = torch.rand(4 * size, generator=generator, device=device)
        x, y = u.pow(1 / alpha), v.pow(1 / alpha)
        accepted = (x + y <= 1) & (x + y > 0)
        samples = torch.cat([samples, (x / (x + y))[accepted]])
    return samples[:size]


class BackgroundMix(torch.nn.Module):
    """Add another recording of the batch as background noise, unlabelled, at a lower level.

    The partner is attenuated by a random ``[min_db, max_db]`` dB and added in the power
    domain; the targets stay those of the foreground recording (the background is noise
    the network must learn to ignore).

    Parameters
    ----------
    probability : float, default=0.5
        Share of the batch that gets a background.
    min_db, max_db : float, default=6.0, 20.0
        Range of the background's attenuation in dB.
    """

    def __init__(self, probability: float = 0.5, min_db: float = 6.0, max_db: float = 20.0):
        super().__init__()
        self.probability = _check_range("probability", probability, 0.0, 1.0)
        self.min_db = _check_range("min_db", min_db, 0.0)
        self.max_db = _check_range("max_db", max_db, min_db)

    def forward(self, spectrograms, targets, generator=None):
        batch = spectrograms.shape[0]
        device = spectrograms.device
        partners = torch.randperm(batch, generator=generator, device=device)
        attenuation = _uniform((batch, 1, 1, 1), self.min_db, self.max_db, generator, device)
        chosen = torch.rand(batch, generator=generator, device=device) < self.probability
        partner = spectrograms[partners] - attenuation
        mixed = _decibels(_power(spectrograms) + _power(partner))
        keep = torch.isnan(partner) | torch.isnan(spectrograms) | ~chosen[:, None, None, None]
        return torch.where(keep, spectrograms, mixed), targets


class Compose(torch.nn.Module):
    """Apply augmentations one after the other.

    Parameters
    ----------
    augmentations : list of modules
        Each takes and returns ``(spectrograms, targets)``.
    """

    def __init__(self, augmentations):
        super().__init__()
        self.augmentations = torch.nn.ModuleList(augmentations)

    def forward(self, spectrograms, targets, generator=None):
        for augmentation in self.augmentations:
            spectrograms, targets = augmentation(spectrograms, targets, generator)
        return spectrograms, targets


def default_augmentation() -> Compose:
    """The augmentations of the package's training recipe (``augment="default"``).

    Random gain of up to ±6 dB, SpecAugment (two time and two mel-band masks) and mixup
    of half of each batch with union targets: the combination that scored best on the
    xeno-canto benchmark (``benchmarks/accuracy.py``, ablation in ``docs/benchmarks.md``).
    """
    return Compose([RandomGain(), SpecAugment(), Mixup()])


def make_augmentation(augment) -> torch.nn.Module | None:
    """The augmentation module an ``augment`` parameter describes.

    Parameters
    ----------
    augment : None, "default", torch module or list of torch modules
        ``None``: no augmentation; ``"default"``: :func:`default_augmentation`; a module
        taking and returning ``(spectrograms, targets)``; a list of them, applied in order.

    Returns
    -------
    module : torch module or None
    """
    if augment is None:
        return None
    if isinstance(augment, str):
        if augment != "default":
            raise ValueError(
                f'augment must be None, "default", a module or a list of modules, '
                f"got the string {augment!r}."
            )
        return default_augmentation()
    if isinstance(augment, torch.nn.Module):
        return augment
    if isinstance(augment, (list, tuple)) and all(
        isinstance(item, torch.nn.Module) for item in augment
    ):
        return Compose(list(augment))
    raise ValueError(
        'augment must be None, "default", a torch module or a list of torch modules, got '
        f"{augment!r}."
    )
