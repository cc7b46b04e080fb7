"""Tests of the torch network: shapes, padding, attention pooling, learning, parameters."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sklearn_birdaudio.modules import AttentionCNN, AttentionPooling

TINY = {"n_mels": 16, "base_filters": 8, "n_blocks": 2, "n_heads": 2, "dropout": 0.0}


def tiny_network(n_classes=3, seed=0, **overrides):
    torch.manual_seed(seed)
    return AttentionCNN(n_classes=n_classes, **{**TINY, **overrides}).eval()


def spectrograms(batch, n_frames, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, 16, n_frames, generator=generator) * 15 - 40


@pytest.mark.parametrize("n_frames", [1, 3, 4, 5, 313, 1000])
def test_any_number_of_frames_gives_one_logit_per_class(n_frames):
    network = tiny_network(n_classes=5)
    with torch.inference_mode():
        logits = network(spectrograms(2, n_frames))
        frames = network.frame_logits(spectrograms(2, n_frames))
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    assert frames.shape == (2, -(-n_frames // 4), 5)


@pytest.mark.parametrize(
    "front_end",
    [{}, {"stem_stride": 2}, {"subtract_band_median": True}],
    ids=["plain", "stem_stride=2", "subtract_band_median"],
)
def test_padding_is_ignored_however_long_it_is(front_end):
    network = tiny_network(**front_end)
    clip = spectrograms(1, 37)
    nan = float("nan")
    # Enough padding to cover the receptive field of the last valid step (39 frames with
    # stem_stride=2); beyond it, only the zeros of the convolutions would differ.
    short_pad = torch.cat([clip, torch.full((1, 1, 16, 27), nan)], dim=-1)
    long_pad = torch.cat([clip, torch.full((1, 1, 16, 203), nan)], dim=-1)
    other = spectrograms(1, 248, seed=1)  # a longer clip in the same batch
    with torch.inference_mode():
        alone = network(short_pad)
        batched = network(torch.cat([long_pad, other[..., : long_pad.shape[-1]]]))
    torch.testing.assert_close(batched[0], alone[0], rtol=1e-5, atol=1e-5)


def test_attention_gives_padding_zero_weight():
    network = tiny_network()
    batch = spectrograms(2, 64)
    batch[1, ..., 24:] = float("nan")  # 24 valid frames = 6 steps of 4
    with torch.inference_mode():
        weights = network.attention_weights(batch)
        frames = network.frame_logits(batch)
    assert weights.shape == (2, 16)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))
    assert (weights[1, 6:] == 0).all() and (weights[1, :6] > 0).all()
    assert torch.isnan(frames[1, 6:]).all() and torch.isfinite(frames[1, :6]).all()
    assert torch.isfinite(frames[0]).all()


def test_ablation_switches_remove_what_they_name():
    def count(network, kind):
        return sum(isinstance(layer, kind) for layer in network.blocks.modules())

    plain, no_shortcut, no_norm = (
        tiny_network(**ablation) for ablation in ({}, {"residual": False}, {"batch_norm": False})
    )
    assert all(block.shortcut is not None for block in plain.blocks)
    assert all(block.shortcut is None for block in no_shortcut.blocks)
    assert count(plain, torch.nn.BatchNorm2d) == 6 and count(no_norm, torch.nn.BatchNorm2d) == 0
    assert all(
        conv.bias is not None for conv in no_norm.modules() if isinstance(conv, torch.nn.Conv2d)
    )
    assert isinstance(no_norm.input_norm, torch.nn.BatchNorm2d)  # the input's stays
    # With the same weights everywhere else, only the missing shortcuts tell them apart.
    missing, unexpected = no_shortcut.load_state_dict(plain.state_dict(), strict=False)
    assert not missing and all(".shortcut." in key for key in unexpected)
    batch = spectrograms(2, 40)
    with torch.inference_mode():
        assert not torch.allclose(no_shortcut(batch), plain(batch), atol=1e-3)


def test_stem_stride_divides_the_time_steps_further():
    network = tiny_network(stem_stride=2)
    batch = spectrograms(2, 64)
    batch[1, ..., 20:] = float("nan")  # 20 valid frames: steps of 8 frames, 3 of them valid
    with torch.inference_mode():
        frames = network.frame_logits(batch)
        weights = network.attention_weights(batch)
    assert network.time_reduction == 8 and frames.shape == (2, 8, 3)
    assert torch.isnan(frames[1, 3:]).all() and torch.isfinite(frames[1, :3]).all()
    assert (weights[1, 3:] == 0).all()


@settings(max_examples=25, deadline=None)
@given(
    offsets=arrays(np.float32, 16, elements=st.floats(-30, 30, width=32)),
    n_valid=st.integers(8, 48),
)
def test_band_median_subtraction_ignores_the_recorders_gain_and_response(offsets, n_valid):
    # A per-band offset in dB (the gain and frequency response of another recorder, or a
    # stationary noise floor) changes every frame of a band alike: median subtraction
    # removes it, so the logits are those of the original clip.
    clip = spectrograms(1, 48)
    clip[..., n_valid:] = float("nan")
    shifted = clip + torch.from_numpy(offsets)[None, None, :, None]
    with torch.inference_mode():
        robust = tiny_network(subtract_band_median=True)
        torch.testing.assert_close(robust(shifted), robust(clip), rtol=1e-4, atol=1e-4)


def test_without_band_median_subtraction_a_gain_changes_the_logits():
    clip = spectrograms(1, 48)
    with torch.inference_mode():
        plain = tiny_network()
        assert not torch.allclose(plain(clip + 12.0), plain(clip), atol=1e-3)


def test_attention_pooling_of_identical_steps_returns_their_projection():
    pooling = AttentionPooling(embed_dim=8, n_heads=2).eval()
    step = torch.randn(1, 1, 8)
    with torch.inference_mode():
        pooled, _ = pooling(step.expand(1, 5, 8))
        single, _ = pooling(step)
    # Attention over copies of one value is that value, whatever the weights.
    torch.testing.assert_close(pooled, single)


@pytest.mark.parametrize(
    "ablation",
    [
        {},
        {"residual": False},
        {"batch_norm": False},
        {"stem_stride": 2, "subtract_band_median": True},
    ],
    ids=["default", "no shortcuts", "no batch norm", "recipe front end"],
)
def test_network_fits_a_small_labelled_batch(ablation):
    # Two "species": a tone in a low band or in a high band, at random times.
    rng = np.random.default_rng(0)
    inputs = (-80.0 + rng.normal(0, 3, (16, 1, 16, 40))).astype(np.float32)
    targets = np.zeros((16, 2), dtype=np.float32)
    for index in range(16):
        band = 3 if index % 2 else 12
        start = rng.integers(0, 30)
        inputs[index, 0, band, start : start + 8] = -10.0
        targets[index, index % 2] = 1.0
    network = tiny_network(n_classes=2, **ablation).train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-3)
    loss_function = torch.nn.BCEWithLogitsLoss()
    inputs, targets = torch.from_numpy(inputs), torch.from_numpy(targets)
    first_loss = loss_function(network(inputs), targets).item()
    for _ in range(60):
        optimizer.zero_grad()
        loss = loss_function(network(inputs), targets)
        loss.backward()
        optimizer.step()
    network.eval()
    with torch.inference_mode():
        predictions = torch.sigmoid(network(inputs)) > 0.5
    assert loss.item() < first_loss / 3
    assert (predictions == targets.bool()).float().mean() == 1.0


def test_default_network_is_the_specification():
    network = AttentionCNN(n_classes=23)
    assert network.stem[0].in_channels == 1 and network.stem[0].out_channels == 64
    assert network.pooling.attention.num_heads == 8
    assert network.dropout.p == 0.5
    assert all(
        isinstance(layer, torch.nn.BatchNorm2d)
        for block in network.blocks
        for layer in block.residual
        if not isinstance(layer, (torch.nn.Conv2d, torch.nn.ReLU))
    )
    assert network.head.out_features == 23


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"n_classes": 0}, "module__n_classes"),
        ({"base_filters": 2.5}, "module__base_filters"),
        ({"n_blocks": 0}, "module__n_blocks"),
        ({"dropout": 1.0}, "module__dropout"),
        ({"stem_stride": 0}, "module__stem_stride"),
        ({"base_filters": 6, "n_heads": 5}, "module__n_heads"),
    ],
)
def test_bad_parameters_name_themselves(params, parameter):
    with pytest.raises(ValueError, match=parameter):
        AttentionCNN(**{"n_classes": 3, **TINY, **params})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda_like_on_cpu():
    network = tiny_network()
    batch = spectrograms(2, 50)
    with torch.inference_mode():
        on_cpu = network(batch)
        on_gpu = network.cuda()(batch.cuda()).cpu()
    torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-3, atol=1e-3)
