"""The audio spec: one frozen record of what a model takes and how it frames it.

A front end owns its spec (:attr:`MelSpectrogramTransformer.audio_spec
<sklearn_birdaudio.MelSpectrogramTransformer.audio_spec>`), the arrays it returns carry it
(:class:`Spectrograms`), a classifier learns it from the data it is fitted on
(``audio_spec_``) and :func:`~sklearn_birdaudio.detect` asks the fitted model for it
(:func:`get_audio_spec`). No setting is stored twice, so no two copies can disagree.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ._validation import check_integer, check_real, is_real_number
from .composition import deployed_model, estimators_in, final_estimator

__all__ = ["AudioSpec", "Spectrograms", "combine_specs", "get_audio_spec", "spec_of"]


@dataclass(frozen=True, kw_only=True)
class AudioSpec:
    """What a model takes and how it frames it.

    Parameters
    ----------
    sample_rate : int, default=32000
        Rate, in Hz, at which the features are computed.
    hop_length : int or None, default=512
        Samples between successive frames; ``None`` for a front end without frames
        (BirdNET's embeddings: one vector per window).
    window_seconds : float or None, default=5.0
        Seconds of audio one score covers; ``None`` when the front end does not fix it
        (whole recordings: the classifier's window then decides).
    clip_seconds : float or None, default=5.0
        Seconds each input is cropped or padded to; ``None`` keeps whole recordings.
    input_sample_rate : int or None, default=None
        Rate of the waveforms the model is given; ``None`` means ``sample_rate``.
    frequency_range : tuple of float, default=(20.0, 16000.0)
        The band the features cover, in Hz (a Raven selection's low and high frequency).

    Examples
    --------
    >>> from sklearn_birdaudio import AudioSpec
    >>> spec = AudioSpec(hop_length=256)
    >>> spec.frames(5.0), spec.frames_per_second
    (626, 125.0)
    >>> spec.waveform_rate
    32000
    """

    sample_rate: int = 32000
    hop_length: int | None = 512
    window_seconds: float | None = 5.0
    clip_seconds: float | None = 5.0
    input_sample_rate: int | None = None
    frequency_range: tuple[float, float] = (20.0, 16000.0)

    def __post_init__(self) -> None:
        for name in ("sample_rate", "hop_length", "input_sample_rate"):
            value = getattr(self, name)
            value = check_integer(
                value,
                name,
                min_val=1,
                allow_none=name != "sample_rate",
                message=f"AudioSpec: {name} must be a positive integer, got {value!r}.",
            )
            object.__setattr__(self, name, value)
        for name in ("window_seconds", "clip_seconds"):
            value = getattr(self, name)
            value = check_real(
                value,
                name,
                min_val=0,
                include_boundaries="neither",
                allow_none=True,
                message=f"AudioSpec: {name} must be a positive number of seconds or None, got "
                f"{value!r}.",
            )
            object.__setattr__(self, name, value)
        try:
            low, high = self.frequency_range
        except (TypeError, ValueError):
            low = high = None
        if not (is_real_number(low) and is_real_number(high) and 0 <= low < high):
            raise ValueError(
                f"AudioSpec: frequency_range must be (low, high) Hz with 0 <= low < high, got "
                f"{self.frequency_range!r}."
            )
        object.__setattr__(self, "frequency_range", (float(low), float(high)))

    @property
    def waveform_rate(self) -> int:
        """Rate, in Hz, of the waveforms the model takes (``input_sample_rate`` if set)."""
        return int(self.input_sample_rate or self.sample_rate)

    @property
    def frames_per_second(self) -> float:
        """Frames per second of audio; ``ValueError`` for a spec without frames."""
        return self.sample_rate / self._hop()

    def frames(self, seconds: float) -> int:
        """Frames of a spectrogram of ``seconds`` of audio (centred frames, as librosa's)."""
        return 1 + int(round(seconds * self.sample_rate)) // self._hop()

    def hop_frames(self, seconds: float) -> int:
        """Frames between windows that start ``seconds`` apart (at least 1)."""
        return max(1, int(round(seconds * self.sample_rate / self._hop())))

    def replace(self, **changes) -> AudioSpec:
        """A copy with ``changes`` (the spec itself is frozen)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line for messages: rate, hop, window and clip."""
        hop = "no frames" if self.hop_length is None else f"hop_length={self.hop_length}"
        return (
            f"sample_rate={self.sample_rate}, {hop}, window_seconds={self.window_seconds}, "
            f"clip_seconds={self.clip_seconds}"
        )

    def _hop(self) -> int:
        if self.hop_length is None:
            raise ValueError(f"The audio spec ({self.describe()}) has no frames.")
        return self.hop_length

    def frames_match(self, other: AudioSpec) -> bool:
        """Whether features of ``other`` are framed as this spec's (rate and hop)."""
        return (self.sample_rate, self.hop_length) == (other.sample_rate, other.hop_length)


class Spectrograms(np.ndarray):
    """An array of features that carries the :class:`AudioSpec` they were made with.

    Returned by the front ends' ``transform``; it is a plain ``ndarray`` in every other
    respect. Slices and row selections (cross-validation folds) keep the spec, and so do
    pickles and joblib's caches.
    """

    audio_spec: AudioSpec | None

    def __new__(cls, array, audio_spec: AudioSpec):
        carried = np.asarray(array).view(cls)
        carried.audio_spec = audio_spec
        return carried

    def __array_finalize__(self, source) -> None:
        self.audio_spec = getattr(source, "audio_spec", None)

    def __reduce__(self):
        constructor, arguments, state = super().__reduce__()
        return constructor, arguments, (state, self.audio_spec)

    def __setstate__(self, state) -> None:
        array_state, self.audio_spec = state
        super().__setstate__(array_state)


def spec_of(X) -> AudioSpec | None:
    """The spec ``X`` carries (a :class:`Spectrograms`), else ``None``."""
    spec = getattr(X, "audio_spec", None)
    return spec if isinstance(spec, AudioSpec) else None


def get_audio_spec(model) -> AudioSpec | None:
    """The audio spec of a fitted model: what waveforms it takes and the window it scores.

    The model is asked, not inspected: its front end (the first estimator in it with an
    ``audio_spec``, nested pipelines included) owns the rate, the clip and the band, as
    its parameters are now; its classifier adds the window it scores (its own
    ``window_seconds`` when the front end keeps whole recordings). A classifier fitted
    on spectrograms of another framing than its front end's now (a front end changed
    after the fit, a tampered model file) is an error. A classifier without a front end
    gives what it learned (``audio_spec_``); an ensemble gives its members' agreement
    (:func:`combine_specs`).

    Parameters
    ----------
    model : estimator
        A fitted classifier, pipeline or ensemble.

    Returns
    -------
    spec : AudioSpec or None
        ``None`` when nothing in the model says.

    Raises
    ------
    ValueError
        If an ensemble's members take waveforms at different sample rates, or a
        classifier was fitted on another framing than its front end's.
    """
    model = deployed_model(model)
    members = getattr(model, "estimators_", None)
    if members is not None and not hasattr(model, "steps"):  # an ensemble
        specs = [spec for spec in map(get_audio_spec, members) if spec is not None]
        return combine_specs(specs) if specs else None
    front = next((part for part in estimators_in(model) if _is_front_end(part)), None)
    classifier = final_estimator(model)
    learned = getattr(classifier, "audio_spec_", None)
    learned = learned if isinstance(learned, AudioSpec) else None
    if front is None:
        return learned
    spec = front.audio_spec
    if learned is None:
        return spec
    if not spec.frames_match(learned):
        raise ValueError(
            f"{type(classifier).__name__} was fitted on spectrograms at "
            f"sample_rate={learned.sample_rate}, hop_length={learned.hop_length}, but its "
            f"front end now makes them at sample_rate={spec.sample_rate}, "
            f"hop_length={spec.hop_length}: refit the model, or set the front end back."
        )
    learned_spec = getattr(classifier, "learned_spec", None)
    return learned_spec(spec) if callable(learned_spec) else spec


def _is_front_end(estimator) -> bool:
    """Whether ``estimator`` owns an audio spec: a property of its parameters."""
    return isinstance(getattr(type(estimator), "audio_spec", None), property)


def combine_specs(specs: list[AudioSpec]) -> AudioSpec:
    """The spec of an ensemble whose members have ``specs``.

    The members must take waveforms at one rate. The window is theirs when they agree
    (else ``None``: the caller must choose), the clip the shortest (a longer window would
    be cropped by one of them) and the band their union.

    Raises
    ------
    ValueError
        If the members take waveforms at different sample rates.
    """
    rates = {spec.waveform_rate for spec in specs}
    if len(rates) > 1:
        raise ValueError(
            f"The model's pipelines take waveforms at different sample rates {sorted(rates)}; "
            "detect needs one rate for all of them."
        )
    windows = {spec.window_seconds for spec in specs if spec.window_seconds is not None}
    clips = [spec.clip_seconds for spec in specs if spec.clip_seconds is not None]
    hops = {(spec.sample_rate, spec.hop_length) for spec in specs}
    sample_rate, hop_length = hops.pop() if len(hops) == 1 else (rates.copy().pop(), None)
    lows, highs = zip(*(spec.frequency_range for spec in specs), strict=True)
    return AudioSpec(
        sample_rate=sample_rate,
        hop_length=hop_length,
        window_seconds=windows.pop() if len(windows) == 1 else None,
        clip_seconds=min(clips) if clips else None,
        input_sample_rate=rates.pop(),
        frequency_range=(min(lows), max(highs)),
    )
