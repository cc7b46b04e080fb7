"""Calibrating detection scores from reviewed detections, and choosing thresholds from them.

A detection's score (its ``confidence``) ranks detections but is not the probability that
the detection is correct: a score of 0.8 may be right 95 % of the time for one species and
40 % for another. The accepted practice (Wood & Kahl 2024, "Guidelines for appropriate use
of BirdNET scores and other detector outputs", *Journal of Ornithology*) is to review a
sample of each species' detections, stratified over the score range, fit a logistic
regression of "correct" on the score's logit per species, and read off the threshold that
reaches a target probability or precision. :class:`ScoreCalibrator` does that;
:meth:`ScoreCalibrator.thresholds` returns per-species thresholds with bootstrap intervals,
in the table ``birdaudio predict --thresholds`` reads.

The model is, for species :math:`k` and score :math:`s` clipped to
:math:`[10^{-6}, 1 - 10^{-6}]`,

.. math:: P(\\text{correct} \\mid s) = \\sigma(a_k + b_k \\operatorname{logit}(s)).
"""

from .calibrator import ScoreCalibrator
from .reviews import decided_reviews

__all__ = ["ScoreCalibrator", "decided_reviews"]
