"""Losses of the classifier: binary cross-entropy that leaves unknown targets out.

A multi-label target matrix need not be complete: a reviewed detection says whether *one*
species sings in a window, nothing about the others (see
:func:`~sklearn_birdaudio.reviewed.reviewed_training_data`). Such targets are NaN, and
:class:`MaskedBCEWithLogitsLoss` computes the binary cross-entropy over the known ones
only: an unknown target adds nothing to the loss and nothing to any gradient, instead of
teaching the network that the species is absent.
"""

from __future__ import annotations

import torch
from torch.nn import functional

__all__ = ["MaskedBCEWithLogitsLoss", "SoftenedBCEWithLogitsLoss"]

#: Targets are clipped to [EPSILON, 1 - EPSILON] before their logit is taken.
_EPSILON = 1e-6


class MaskedBCEWithLogitsLoss(torch.nn.BCEWithLogitsLoss):
    """:class:`torch.nn.BCEWithLogitsLoss` that ignores NaN (unknown) targets.

    :class:`~sklearn_birdaudio.AttentionCNNClassifier` uses it for multi-label targets
    when ``criterion=None``. Targets without NaN give exactly
    ``BCEWithLogitsLoss``'s loss and gradients (the same function is called), so training
    on complete targets is bit-for-bit what it was before NaN targets were allowed. With
    NaN targets, the element-wise losses of the known targets are reduced (``"mean"``:
    their mean; ``"sum"``: their sum) and the unknown ones get a gradient of exactly zero.
    A batch without any known target has a loss of 0.

    Parameters
    ----------
    weight, size_average, reduce, reduction, pos_weight
        As for :class:`torch.nn.BCEWithLogitsLoss`. With ``reduction="none"`` the loss of
        an unknown target is 0.

    Examples
    --------
    >>> import torch
    >>> logits = torch.zeros(2, 2, requires_grad=True)
    >>> targets = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    >>> loss = MaskedBCEWithLogitsLoss()(logits, targets)
    >>> round(loss.item(), 4)  # log(2): the mean over the three known targets
    0.6931
    >>> loss.backward()
    >>> logits.grad[0, 1].item()
    0.0
    """

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``input`` logits against ``target`` (0, 1 or NaN for unknown)."""
        known = ~torch.isnan(target)
        if bool(known.all()):
            return super().forward(input, target)
        # The unknown targets are replaced by 0 (any finite value would do) so that their
        # element-wise losses are finite; torch.where then passes them no gradient at all.
        losses = functional.binary_cross_entropy_with_logits(
            input,
            torch.where(known, target, torch.zeros_like(target)),
            self.weight,
            pos_weight=self.pos_weight,
            reduction="none",
        )
        losses = torch.where(known, losses, torch.zeros_like(losses))
        if self.reduction == "none":
            return losses
        total = losses.sum()
        if self.reduction == "sum":
            return total
        return total / known.sum().clamp(min=1)


class SoftenedBCEWithLogitsLoss(MaskedBCEWithLogitsLoss):
    """Binary cross-entropy at a temperature: each class's target and output softened.

    Distillation's temperature for independent (sigmoid) outputs: the logits ``z`` and the
    targets' logits ``logit(p)`` are divided by ``temperature`` before the cross-entropy,
    which is multiplied by ``temperature ** 2`` (so its gradients keep their scale, as in
    Hinton et al., 2015). Above 1, a teacher's small scores (0.001 against 0.02, say)
    differ more after softening, and a student learns how unlikely each absent class is,
    not only that it is absent. A temperature of 1 is :class:`MaskedBCEWithLogitsLoss`
    (up to the clipping of targets to [1e-6, 1 - 1e-6]); NaN targets stay unknown.

    Parameters
    ----------
    temperature : float, default=2.0
        Greater than 0.
    weight, size_average, reduce, reduction, pos_weight
        As for :class:`torch.nn.BCEWithLogitsLoss`.

    Examples
    --------
    >>> import torch
    >>> logits, targets = torch.tensor([[-4.0, 2.0]]), torch.tensor([[0.01, 0.9]])
    >>> plain = MaskedBCEWithLogitsLoss()(logits, targets)
    >>> softened = SoftenedBCEWithLogitsLoss(temperature=1.0)(logits, targets)
    >>> round(abs(plain.item() - softened.item()), 5)
    0.0
    """

    def __init__(self, temperature: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        temperature = float(temperature)
        if not temperature > 0 or temperature == float("inf"):
            raise ValueError(f"temperature must be a positive number, got {temperature!r}.")
        self.temperature = temperature

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The softened loss of ``input`` logits against ``target`` (in [0, 1], or NaN)."""
        t = self.temperature
        softened = torch.sigmoid(torch.logit(target.clamp(_EPSILON, 1 - _EPSILON)) / t)
        return t * t * super().forward(input / t, softened)  # NaN stays NaN: unknown
