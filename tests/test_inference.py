"""Tests of the fast inference paths: folded batch norms, channels-last, torch.compile.

Every fast path must give the probabilities of the plain eager network (up to float
rounding), and a cached fast copy must never outlive the weights it was made from.
"""

import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sklearn_birdaudio import AttentionCNNClassifier, AudioSpec, Spectrograms
from sklearn_birdaudio.inference import inference_module
from sklearn_birdaudio.modules import AttentionCNN, band_median, fold_batch_norms

TINY = {"n_mels": 16, "base_filters": 8, "n_blocks": 2, "n_heads": 2, "dropout": 0.0}
TINY_CNN = {
    "module__base_filters": 4,
    "module__n_blocks": 2,
    "module__n_heads": 2,
    "window_seconds": 1.0,
    "overlap_seconds": 0.5,
    "validation_fraction": None,
    "random_state": 0,
    "verbose": 0,
}


def trained_network(seed=0, **params) -> AttentionCNN:
    """A tiny network whose batch norms hold non-trivial statistics and affine weights."""
    torch.manual_seed(seed)
    network = AttentionCNN(n_classes=3, **{**TINY, **params})
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 2.0)
                module.bias.uniform_(-1.0, 1.0)
        network.train()
        for _ in range(3):
            network(torch.randn(8, 1, 16, 64) * 15 - 40)
    return network.eval()


def spectrograms(batch, n_frames, n_padding=0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, 16, n_frames, generator=generator) * 15 - 40
    if n_padding:
        x[0, ..., n_frames - n_padding :] = torch.nan
    return x


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 3),
    n_frames=st.integers(1, 120),
    padding_share=st.floats(0.0, 0.9),
    stem_stride=st.sampled_from([1, 2]),
    subtract_band_median=st.booleans(),
    residual=st.booleans(),
    channels_last=st.booleans(),
)
def test_the_inference_copy_computes_the_networks_logits(
    batch, n_frames, padding_share, stem_stride, subtract_band_median, residual, channels_last
):
    network = trained_network(
        stem_stride=stem_stride, subtract_band_median=subtract_band_median, residual=residual
    )
    fast = network.for_inference(channels_last=channels_last)
    x = spectrograms(batch, n_frames, n_padding=int(padding_share * (n_frames - 1)))
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), network(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fast.frame_logits(x), network.frame_logits(x), equal_nan=True)


def test_the_inference_copy_folds_every_batch_norm_but_the_inputs_and_leaves_the_original():
    network = trained_network()
    before = {name: tensor.clone() for name, tensor in network.state_dict().items()}
    fast = network.for_inference()
    norms = [name for name, m in fast.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms == ["input_norm"]
    convolutions = [m for m in fast.modules() if isinstance(m, nn.Conv2d)]
    assert convolutions and all(
        m.weight.is_contiguous(memory_format=torch.channels_last) for m in convolutions
    )
    assert not fast.training and not any(p.requires_grad for p in fast.parameters())
    # The original keeps its batch norms (input, stem, 3 a block) and weights.
    n_norms = 2 + 3 * TINY["n_blocks"]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in network.modules()) == n_norms
    for name, tensor in network.state_dict().items():
        torch.testing.assert_close(tensor, before[name], rtol=0, atol=0)


def test_folding_without_batch_norms_changes_nothing():
    layers = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3))
    folded = fold_batch_norms(layers)
    assert [type(m) for m in folded] == [nn.Conv2d, nn.ReLU, nn.Conv2d]
    x = torch.randn(2, 1, 9, 9)
    torch.testing.assert_close(folded(x), layers(x), rtol=0, atol=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(16, 1, 16, 70)) * 10 - 40).astype(np.float32)  # longer: windows
    X[3, ..., 50:] = np.nan  # a shorter recording, padded
    y = np.array(["wren", "owl"] * 8)
    X[y == "owl", :, :4] += 20  # something to learn
    return Spectrograms(X, AudioSpec(sample_rate=16000, hop_length=512)), y  # 32-frame windows


@pytest.fixture(scope="module")
def fitted(data):
    return AttentionCNNClassifier(max_epochs=2, **TINY_CNN).fit(*data)


def probabilities(net, X, inference):
    return net.set_params(inference=inference).predict_proba(X)


def test_fused_predictions_equal_the_eager_ones(fitted, data):
    X, _ = data
    eager = probabilities(fitted, X, "eager")
    fused = probabilities(fitted, X, "fused")
    np.testing.assert_allclose(fused, eager, rtol=1e-5, atol=1e-6)
    assert np.abs(eager - 0.5).max() > 1e-3  # not a constant network


def test_the_fused_copy_is_kept_while_the_weights_stay(fitted, data):
    X, _ = data
    fitted.set_params(inference="fused")
    fitted.predict_proba(X[:2])
    first = fitted._inference_module()
    fitted.predict_proba(X[2:4])
    assert fitted._inference_module() is first
    assert first is not fitted.module_


@pytest.mark.parametrize("change", ["partial_fit", "load_state_dict", "new module"])
def test_changed_weights_are_never_scored_with_a_stale_fused_copy(data, change):
    X, y = data
    net = AttentionCNNClassifier(max_epochs=1, **TINY_CNN).fit(X, y)
    before = probabilities(net, X, "fused")
    if change == "partial_fit":
        net.partial_fit(X, y)
    elif change == "load_state_dict":
        other = AttentionCNNClassifier(max_epochs=1, **{**TINY_CNN, "random_state": 1}).fit(X, y)
        net.module_.load_state_dict(other.module_.state_dict())
    else:
        net.initialize_module()  # fresh weights from the same seed stream
    after = probabilities(net, X, "fused")
    np.testing.assert_allclose(after, probabilities(net, X, "eager"), rtol=1e-5, atol=1e-6)
    assert np.abs(after - before).max() > 1e-4


def test_predicting_leaves_the_estimator_unchanged_and_it_pickles(fitted, data):
    X, _ = data
    fitted.set_params(inference="fused")
    before = dict(fitted.__dict__)
    expected = fitted.predict_proba(X)
    assert fitted.__dict__.keys() == before.keys()  # the fused copy is kept elsewhere
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(restored.predict_proba(X), expected, rtol=1e-6, atol=1e-7)


def test_prediction_runs_in_inference_mode(fitted, data):
    X, _ = data
    fitted.set_params(inference="fused")
    with fitted._on_resolved_device():  # infer needs a concrete device, not "auto"
        logits = fitted.evaluation_step((torch.as_tensor(X), None), training=False)
        trained = fitted.evaluation_step((torch.as_tensor(X), None), training=True)
    assert logits.is_inference() and not trained.is_inference()
    fitted.module_.eval()


def test_training_uses_the_trained_module_not_the_copy(fitted):
    fitted.module_.train()
    try:
        assert fitted._inference_module() is fitted.module_
    finally:
        fitted.module_.eval()


def test_an_unknown_inference_path_is_named(fitted, data):
    with pytest.raises(ValueError, match="inference must be one of"):
        probabilities(fitted, data[0], "onnx")


@pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "g++")) is None,
    reason="torch.compile on the CPU needs a C++ compiler",
)
def test_compiled_predictions_equal_the_eager_ones(fitted, data):
    X, _ = data
    eager = probabilities(fitted, X, "eager")
    compiled = probabilities(fitted, X, "compiled")
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)
    compiled_module = fitted._inference_module().module  # called by one thread at a time
    assert isinstance(compiled_module, torch._dynamo.eval_frame.OptimizedModule)


@settings(max_examples=40, deadline=None)
@given(
    n_frames=st.integers(1, 60),
    levels=st.integers(1, 1000),  # few levels: many ties
    seed=st.integers(0, 2**16),
)
def test_the_fast_band_median_is_torchs_median(n_frames, levels, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, levels, (3, 1, 5, n_frames), generator=generator).float() - 40
    expected = x.median(dim=-1, keepdim=True).values
    torch.testing.assert_close(band_median(x, padded=False), expected, rtol=0, atol=0)
    torch.testing.assert_close(band_median(x, padded=True), expected, rtol=0, atol=0)


def test_inference_module_leaves_other_modules_as_they_are():
    layers = nn.Sequential(nn.Linear(3, 2))
    assert inference_module(layers, "fused") is layers
    assert inference_module(layers, "eager") is layers
    with pytest.raises(ValueError, match="inference must be one of"):
        inference_module(layers, "onnx")
