"""Tests of MaskedBCEWithLogitsLoss, and of the classifier training on unknown (NaN) targets."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays
from hypothesis.strategies import floats
from sklearn.metrics import average_precision_score
from skorch.callbacks import Callback
from test_classifier import QUICK, assert_same_weights, one_thread, spectrograms  # noqa: F401

from sklearn_birdaudio import (
    AttentionCNNClassifier,
    MaskedBCEWithLogitsLoss,
    SoftenedBCEWithLogitsLoss,
)
from sklearn_birdaudio.training import _masked_macro_average_precision

NAN = float("nan")


class HeadRow(Callback):
    """Records the output layer's weights and bias of class 3 when training begins."""

    @staticmethod
    def of(net) -> torch.Tensor:
        head = net.module_.head
        return torch.cat([head.weight[3], head.bias[3:4]]).detach().clone()

    def on_train_begin(self, net, **kwargs):
        self.row = self.of(net)


def logits_and_targets(seed=0, shape=(6, 4), unknown_share=0.4):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator, dtype=torch.float64) * 3
    targets = (torch.rand(shape, generator=generator) < 0.5).double()
    unknown = torch.rand(shape, generator=generator) < unknown_share
    return logits.requires_grad_(), targets.masked_fill(unknown, NAN), unknown


def test_unknown_targets_get_exactly_zero_gradient_and_known_ones_the_bce_of_the_known():
    logits, targets, unknown = logits_and_targets()
    assert unknown.any() and (~unknown).any()
    loss = MaskedBCEWithLogitsLoss()(logits, targets)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert (logits.grad[unknown] == 0).all()  # exactly zero, not just small
    # The known targets: the loss and gradients of a plain BCE over them alone.
    reference_logits = logits.detach().clone().requires_grad_()
    known = ~unknown
    reference = torch.nn.functional.binary_cross_entropy_with_logits(
        reference_logits[known], targets[known]
    )
    reference.backward()
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(logits.grad[known], reference_logits.grad[known])
    assert (logits.grad[known] != 0).all()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_without_nan_the_loss_is_bce_bit_for_bit(reduction, weighted):
    logits, targets, unknown = logits_and_targets(unknown_share=0.0)
    assert not unknown.any()
    kwargs = {"reduction": reduction}
    if weighted:
        kwargs |= {
            "weight": torch.rand(4, dtype=torch.float64),
            "pos_weight": torch.full((4,), 3.0),
        }
    plain_logits = logits.detach().clone().requires_grad_()
    masked = MaskedBCEWithLogitsLoss(**kwargs)(logits, targets)
    plain = torch.nn.BCEWithLogitsLoss(**kwargs)(plain_logits, targets)
    assert torch.equal(masked, plain)
    masked.sum().backward()
    plain.sum().backward()
    assert torch.equal(logits.grad, plain_logits.grad)


def test_sum_and_none_reductions_leave_unknown_targets_out():
    logits, targets, unknown = logits_and_targets(seed=1)
    elementwise = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, targets.nan_to_num(0.0), reduction="none"
    )
    none = MaskedBCEWithLogitsLoss(reduction="none")(logits, targets)
    assert (none[unknown] == 0).all()
    torch.testing.assert_close(none[~unknown], elementwise[~unknown])
    total = MaskedBCEWithLogitsLoss(reduction="sum")(logits, targets)
    torch.testing.assert_close(total, elementwise[~unknown].sum())


def test_a_batch_without_known_targets_has_zero_loss_and_gradient():
    logits = torch.randn(3, 2, requires_grad=True)
    loss = MaskedBCEWithLogitsLoss()(logits, torch.full((3, 2), NAN))
    loss.backward()
    assert loss.item() == 0.0
    assert (logits.grad == 0).all()


def test_masked_validation_map_averages_each_class_over_its_known_targets():
    targets = np.array([[1, 0], [0, NAN], [NAN, 1], [1, 0], [0, 1]], dtype=float)
    scores = np.array([[0.9, 0.2], [0.8, 0.9], [0.1, 0.3], [0.4, 0.1], [0.3, 0.7]])
    first = average_precision_score([1, 0, 1, 0], [0.9, 0.8, 0.4, 0.3])
    second = average_precision_score([0, 1, 0, 1], [0.2, 0.3, 0.1, 0.7])
    value = _masked_macro_average_precision(targets, scores)
    assert value == pytest.approx((first + second) / 2)
    # Unknown targets must not count as negatives: with them as 0, the value differs.
    assert value != pytest.approx(average_precision_score(np.nan_to_num(targets), scores))


# -- the classifier on unknown targets ------------------------------------------------------


@pytest.mark.usefixtures("one_thread")
def test_default_criterion_trains_bit_identically_to_plain_bce_without_nan():
    X, Y, _ = spectrograms(16, 0, n_mels=16)
    params = {**QUICK, "max_epochs": 2, "validation_fraction": 0.25}
    default = AttentionCNNClassifier(**params).fit(X, Y)
    plain = AttentionCNNClassifier(**params, criterion=torch.nn.BCEWithLogitsLoss).fit(X, Y)
    assert type(default.criterion_) is MaskedBCEWithLogitsLoss
    assert type(plain.criterion_) is torch.nn.BCEWithLogitsLoss
    assert_same_weights(default, plain)
    for key in ("train_loss", "valid_loss", "valid_mAP"):
        assert default.history_[:, key] == plain.history_[:, key], key


@pytest.mark.usefixtures("one_thread")
def test_a_class_unknown_everywhere_is_never_trained():
    """Its row of the output layer gets zero gradients; as a 0 target it would move."""
    X, Y, _ = spectrograms(16, 0, n_mels=16)
    Y = Y.astype(float)
    params = {**QUICK, "max_epochs": 2, "optimizer__weight_decay": 0.0}

    def head_row_moves(targets) -> bool:
        start = HeadRow()
        cnn = AttentionCNNClassifier(**params, callbacks=[("head_row", start)]).fit(X, targets)
        return not torch.equal(start.row, HeadRow.of(cnn))

    unknown = Y.copy()
    unknown[:, 3] = NAN
    unknown[:4, 0] = NAN  # and a few unknowns elsewhere
    assert not head_row_moves(unknown)
    absent = Y.copy()
    absent[:, 3] = 0.0
    assert head_row_moves(absent)


@pytest.mark.usefixtures("one_thread")
def test_nan_targets_train_with_finite_losses_and_validation_map():
    X, Y, _ = spectrograms(16, 0, n_mels=16)
    Y = Y.astype(float)
    Y[::2, 1:] = NAN
    cnn = AttentionCNNClassifier(**{**QUICK, "max_epochs": 2, "validation_fraction": 0.25})
    cnn.fit(X, Y)
    assert type(cnn.criterion_) is MaskedBCEWithLogitsLoss
    for key in ("train_loss", "valid_loss", "valid_mAP"):
        assert np.isfinite(cnn.history_[:, key]).all(), key
    assert cnn.predict_proba(X).shape == (16, 4)


@pytest.mark.usefixtures("one_thread")
def test_nan_targets_are_refused_where_they_cannot_mean_unknown():
    X, Y, _ = spectrograms(4, 0, n_mels=16)
    Y = Y.astype(float)
    Y[0, 0] = NAN
    plain = AttentionCNNClassifier(**QUICK, criterion=torch.nn.BCEWithLogitsLoss)
    with pytest.raises(ValueError, match=r"^y contains 1 NaN value\(s\)"):
        plain.fit(X, Y)
    with pytest.raises(ValueError, match=r"^y contains 1 NaN value\(s\)"):  # 1-D labels
        AttentionCNNClassifier(**QUICK).fit(X, np.array([0.0, 1.0, NAN, 1.0]))
    with pytest.raises(ValueError, match="NaN \\(unknown\\) everywhere"):
        AttentionCNNClassifier(**QUICK).fit(X, np.full((4, 4), NAN))
    with pytest.raises(ValueError, match=r"values \[0\.0, 2\.0\]"):  # the known ones: 0/1
        AttentionCNNClassifier(**QUICK).fit(X, np.where(np.isnan(Y), Y, 2 * np.nan_to_num(Y)))


# -- the softened loss of distillation ---------------------------------------------------


@given(
    probabilities=arrays(
        np.float32, (3, 4), elements=floats(0.0010000000474974513, 0.9990000128746033, width=32)
    ),
    temperature=floats(0.5, 8.0),
)
@settings(max_examples=40, deadline=None)
def test_the_softened_loss_is_least_where_the_logits_are_the_targets_logits(
    probabilities, temperature
):
    targets = torch.from_numpy(probabilities)
    logits = torch.logit(targets.double()).float().requires_grad_(True)
    SoftenedBCEWithLogitsLoss(temperature=temperature)(logits, targets).backward()
    assert torch.allclose(logits.grad, torch.zeros_like(logits.grad), atol=1e-5)


def test_a_temperature_makes_small_scores_of_absent_classes_count():
    """Two small targets (0.001 and 0.02) pull a logit of -2 down with gradients 1.19x
    apart in plain BCE, and 1.99x apart at temperature 3."""
    logits = torch.full((1, 2), -2.0, requires_grad=True)
    targets = torch.tensor([[0.001, 0.02]])

    def gradient_ratio(loss):
        logits.grad = None
        loss(logits, targets).backward()
        return (logits.grad[0, 0] / logits.grad[0, 1]).item()

    plain = gradient_ratio(MaskedBCEWithLogitsLoss())
    softened = gradient_ratio(SoftenedBCEWithLogitsLoss(temperature=3.0))
    assert plain == pytest.approx(1.19, abs=0.01) and softened == pytest.approx(1.99, abs=0.01)


def test_the_softened_loss_leaves_unknown_targets_out_and_refuses_bad_temperatures():
    logits = torch.zeros(2, 2, requires_grad=True)
    targets = torch.tensor([[0.2, float("nan")], [0.0, 1.0]])
    loss = SoftenedBCEWithLogitsLoss(temperature=2.0)(logits, targets)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad[0, 1].item() == 0.0
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="temperature must be a positive number"):
            SoftenedBCEWithLogitsLoss(temperature=bad)
