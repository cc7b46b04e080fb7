"""Tests of the spectrogram augmentations: what they change, what they keep, reproducibility."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_birdaudio.augment import (
    BackgroundMix,
    Compose,
    FrequencyShift,
    Mixup,
    RandomGain,
    SpecAugment,
)

AUGMENTATIONS = {
    "gain": lambda: RandomGain(max_db=6.0),
    "specaugment": lambda: SpecAugment(time_masks=2, max_time_fraction=0.2, freq_masks=2),
    "mixup": lambda: Mixup(alpha=0.4, probability=1.0),
    "background": lambda: BackgroundMix(probability=1.0),
    "frequency shift": lambda: FrequencyShift(max_bands=3, probability=1.0),
}


def batch(n=8, n_mels=16, n_frames=40, n_classes=5, seed=0, padded=True):
    """Log-mel-like dB values with NaN padding at the end of some rows, and 0/1 targets."""
    rng = np.random.default_rng(seed)
    spectrograms = rng.uniform(-80, 0, size=(n, 1, n_mels, n_frames)).astype(np.float32)
    if padded:
        for row in range(0, n, 2):
            spectrograms[row, ..., n_frames - 5 * (row // 2 + 1) :] = np.nan
    targets = (rng.random((n, n_classes)) < 0.3).astype(np.float32)
    return torch.from_numpy(spectrograms), torch.from_numpy(targets)


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_augmentations_change_audio_and_keep_padding(name):
    spectrograms, targets = batch()
    augmented, new_targets = AUGMENTATIONS[name]()(spectrograms, targets, generator())
    padding = torch.isnan(spectrograms)
    assert torch.equal(torch.isnan(augmented), padding)  # padding stays padding, only it
    assert not torch.equal(augmented[~padding], spectrograms[~padding])  # audio changed
    assert new_targets.shape == targets.shape


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_same_generator_seed_same_batch(name):
    spectrograms, targets = batch()
    first = AUGMENTATIONS[name]()(spectrograms, targets, generator(3))
    second = AUGMENTATIONS[name]()(spectrograms, targets, generator(3))
    other = AUGMENTATIONS[name]()(spectrograms, targets, generator(4))
    for a, b in zip(first, second, strict=True):
        assert torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
    assert not torch.equal(torch.nan_to_num(first[0]), torch.nan_to_num(other[0]))


def test_gain_is_a_constant_offset_per_recording_within_bounds():
    spectrograms, targets = batch(padded=False)
    augmented, same_targets = RandomGain(max_db=3.0)(spectrograms, targets, generator())
    offsets = (augmented - spectrograms).flatten(1)
    assert torch.allclose(offsets, offsets[:, :1].expand_as(offsets), atol=1e-5)
    assert offsets.abs().max() <= 3.0 + 1e-5 and offsets[:, 0].std() > 0
    assert torch.equal(same_targets, targets)


def test_specaugment_masks_whole_bands_and_frames_at_the_floor():
    spectrograms, targets = batch(n=16, padded=False)
    augmented, _ = SpecAugment(time_masks=1, max_time_fraction=0.25, freq_masks=1)(
        spectrograms, targets, generator()
    )
    changed = augmented != spectrograms
    floors = spectrograms.amin(dim=(1, 2, 3))
    for row in range(16):
        values = augmented[row][changed[row]]
        assert torch.all(values == floors[row])  # masked values are the silence floor
        at_floor = augmented[row, 0] == floors[row]
        full_frames, full_bands = at_floor.all(dim=0), at_floor.all(dim=1)
        # Every changed cell lies in a wholly masked frame or a wholly masked band.
        cells = changed[row, 0]
        assert torch.all(~cells | full_frames[None, :] | full_bands[:, None])
        frames = full_frames & cells.any(dim=0)
        assert frames.sum() <= 0.25 * 40 + 1e-9


def test_mixup_union_targets_and_power_domain_mix():
    spectrograms, targets = batch(padded=False)
    mixed, mixed_targets = Mixup(alpha=0.4, probability=1.0)(spectrograms, targets, generator())
    # Union: every original label survives and labels only come from a partner.
    assert torch.all(mixed_targets >= targets)
    assert set(mixed_targets.unique().tolist()) <= {0.0, 1.0}
    # The mix is louder than the dominant recording alone scaled by w >= 0.5: in power,
    # mixed >= 0.5 * original, i.e. at most 3.02 dB below it.
    assert torch.all(mixed >= spectrograms - 10 * np.log10(2) - 1e-4)


def test_mixup_weighted_targets_are_convex_combinations():
    spectrograms, _ = batch(padded=False)
    one_hot = torch.nn.functional.one_hot(torch.arange(8) % 5, 5).float()
    _, soft = Mixup(alpha=0.4, probability=1.0, targets="weighted")(
        spectrograms, one_hot, generator()
    )
    assert torch.allclose(soft.sum(dim=1), torch.ones(8))
    assert torch.all(soft.max(dim=1).values >= 0.5 - 1e-6)  # the first recording dominates
    with pytest.raises(ValueError, match="one-hot encode"):
        Mixup()(spectrograms, torch.arange(8), generator())


def test_background_mix_keeps_the_foreground_targets_and_raises_the_level():
    spectrograms, targets = batch(padded=False)
    mixed, same = BackgroundMix(probability=1.0, min_db=6, max_db=6)(
        spectrograms, targets, generator()
    )
    assert torch.equal(same, targets)
    gain = mixed - spectrograms
    # Adding power never lowers a bin; an equal-level partner 6 dB down adds 0.97 dB.
    assert torch.all(gain >= -1e-4)
    assert gain.mean() > 0


@settings(max_examples=25, deadline=None)
@given(max_bands=st.integers(0, 20), seed=st.integers(0, 2**16))
def test_frequency_shift_moves_whole_recordings_by_at_most_max_bands(max_bands, seed):
    spectrograms, targets = batch(n_mels=16, seed=seed % 7)
    shifted, same = FrequencyShift(max_bands, probability=1.0)(
        spectrograms, targets, generator(seed)
    )
    assert torch.equal(same, targets)
    padding = torch.isnan(spectrograms)
    assert torch.equal(torch.isnan(shifted), padding)
    for row, (before, after) in enumerate(zip(spectrograms, shifted, strict=True)):
        audio = ~padding[row, 0, 0]  # the recording's audio frames
        before, after = before[0][:, audio], after[0][:, audio]
        floor = before.min()
        matches = []
        for shift in range(-min(max_bands, 16), min(max_bands, 16) + 1):
            expected = torch.full_like(before, floor.item())
            if shift >= 0:
                expected[shift:] = before[: 16 - shift]
            else:
                expected[:shift] = before[-shift:]
            matches.append(torch.equal(after, expected))
        assert any(matches)  # a shift within the bound explains the row


def test_probability_zero_changes_nothing():
    spectrograms, targets = batch()
    for module in (Mixup(probability=0.0), BackgroundMix(probability=0.0), FrequencyShift(4, 0.0)):
        out, out_targets = module(spectrograms, targets, generator())
        assert torch.equal(torch.nan_to_num(out), torch.nan_to_num(spectrograms))
        assert torch.equal(out_targets, targets)


def test_compose_applies_in_order():
    spectrograms, targets = batch()
    composed = Compose([RandomGain(2.0), SpecAugment()])
    out, _ = composed(spectrograms, targets, generator(5))
    g = generator(5)
    step, _ = RandomGain(2.0)(spectrograms, targets, g)
    step, _ = SpecAugment()(step, targets, g)
    assert torch.equal(torch.nan_to_num(out), torch.nan_to_num(step))


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: RandomGain(-1), "max_db"),
        (lambda: SpecAugment(max_time_fraction=1.5), "max_time_fraction"),
        (lambda: Mixup(alpha=0), "alpha"),
        (lambda: Mixup(targets="max"), "targets"),
        (lambda: BackgroundMix(min_db=10, max_db=5), "max_db"),
        (lambda: BackgroundMix(probability=2), "probability"),
        (lambda: FrequencyShift(max_bands=-1), "max_bands"),
        (lambda: FrequencyShift(probability=1.5), "probability"),
    ],
)
def test_bad_parameters_are_named(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 6),
    n_frames=st.integers(1, 30),
    seed=st.integers(0, 1000),
    name=st.sampled_from(sorted(AUGMENTATIONS)),
)
def test_any_batch_stays_finite_where_it_was_audio(n, n_frames, seed, name):
    spectrograms, targets = batch(n=n, n_frames=n_frames, seed=seed, padded=False)
    out, out_targets = AUGMENTATIONS[name]()(spectrograms, targets, generator(seed))
    assert out.shape == spectrograms.shape and torch.isfinite(out).all()
    assert torch.all((out_targets >= 0) & (out_targets <= 1))


# -- inside the classifier --------------------------------------------------------------

CLASSIFIER = {
    "module__base_filters": 4, "module__n_blocks": 2, "module__n_heads": 2, "max_epochs": 3,
    "batch_size": 8, "validation_fraction": None, "window_seconds": 1.0,
    "overlap_seconds": 0.5, "random_state": 0, "verbose": 0,
}  # fmt: skip


class Recorder(torch.nn.Module):
    """Adds 1 dB to every batch it sees and keeps a copy of what went in."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, spectrograms, targets, generator=None):
        self.seen.append((spectrograms.clone(), targets.clone()))
        return spectrograms + 1.0, targets


def recordings(n=12, n_mels=16, n_frames=90, seed=0):
    """Spectrograms longer than the 1-s window (32 frames), some padded, and 3 classes."""
    spectrograms, _ = batch(n=n, n_mels=n_mels, n_frames=n_frames, seed=seed)
    targets = np.zeros((n, 3), dtype=np.float32)
    targets[np.arange(n), np.arange(n) % 3] = 1
    return spectrograms.numpy(), targets


def make_classifier(**params):
    from sklearn_birdaudio import AttentionCNNClassifier

    return AttentionCNNClassifier(**{**CLASSIFIER, **params})


def test_classifier_augments_cropped_training_batches_only():
    X, y = recordings()
    recorder = Recorder()
    model = make_classifier(augment=recorder).fit(X, y)
    window = model._window_frames
    assert sum(len(spectrograms) for spectrograms, _ in recorder.seen) == 3 * len(X)
    for spectrograms, targets in recorder.seen:  # cropped windows, 0/1 multi-label rows
        assert spectrograms.shape[1:] == (1, 16, window)
        assert targets.dtype == torch.float32 and set(targets.unique().tolist()) <= {0.0, 1.0}
    calls = len(recorder.seen)
    probabilities = model.predict_proba(X)
    assert len(recorder.seen) == calls  # prediction never augments
    np.testing.assert_array_equal(model.set_params(augment=None).predict_proba(X), probabilities)
    plain = make_classifier().fit(X, y)  # the augmentation changed what training learned
    assert not np.allclose(plain.predict_proba(X), probabilities)


def test_crops_per_recording_draws_fresh_windows_of_every_recording():
    X, y = recordings()
    recorder = Recorder()
    make_classifier(augment=recorder, crops_per_recording=3, max_epochs=1).fit(X, y)
    crops = torch.cat([spectrograms for spectrograms, _ in recorder.seen])
    assert len(crops) == 3 * len(X)  # one epoch, three windows of each recording
    assert len(torch.unique(torch.nan_to_num(crops[:, 0, 0, 0]))) > len(X)  # not repeats


def test_default_augmentation_is_reproducible_with_random_state():
    X, y = recordings()
    first = make_classifier(augment="default").fit(X, y).predict_proba(X)
    second = make_classifier(augment="default").fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    other = make_classifier(augment="default", random_state=1).fit(X, y).predict_proba(X)
    assert not np.allclose(first, other)


def test_multiclass_targets_are_one_hot_and_mixup_makes_them_soft():
    X, y = recordings()
    labels = np.array(["owl", "wren", "tody"])[y.argmax(axis=1)]
    recorder = Recorder()
    augment = [Mixup(alpha=0.4, probability=1.0, targets="weighted"), recorder]
    model = make_classifier(augment=augment).fit(X, labels)
    targets = torch.cat([targets for _, targets in recorder.seen])
    assert targets.shape == (3 * len(X), 3)
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(len(targets)))  # still rows of 1
    assert ((targets > 0) & (targets < 1)).any()  # soft after mixup
    assert model.predict_proba(X).shape == (len(X), 3)


@pytest.mark.parametrize("augment", ["mixup", 3, [SpecAugment(), "gain"]])
def test_classifier_rejects_what_it_cannot_use_as_augmentation(augment):
    X, y = recordings()
    with pytest.raises(ValueError, match="augment must be"):
        make_classifier(augment=augment).fit(X, y)


def test_crops_per_recording_must_be_a_positive_integer():
    X, y = recordings()
    with pytest.raises(ValueError, match="crops_per_recording must be a positive integer"):
        make_classifier(crops_per_recording=0).fit(X, y)
