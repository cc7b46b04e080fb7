"""The penalised logistic regressions of "correct" on the score's logit, per species.

Every species' curve and the pooled one, of the fit and of each bootstrap replicate, are
fitted together by one vectorised Newton iteration.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

EPSILON = 1e-6  # scores are clipped to [EPSILON, 1 - EPSILON] before their logit
IDENTITY = (0.0, 1.0)  # intercept and slope of "the score is the probability"
MAX_NEWTON_STEPS = 100
MAX_HALVINGS = 40


def _logit_score(confidence) -> np.ndarray:
    return logit(np.clip(confidence, EPSILON, 1 - EPSILON))


def _fit_logistic(x, y, weight, group, prior, penalty):
    """Penalised logistic regressions ``y ~ a + b x``, one per group, fitted together.

    Minimises, per group, the weighted negative log-likelihood plus
    ``penalty / 2 * |(a, b) - prior|²`` by Newton's method with step halving, vectorised
    over groups (``group`` indexes the rows of ``prior``, shape ``(n_groups, 2)``).
    """
    n_groups = len(prior)
    theta = prior.copy()

    def objective(theta):
        eta = theta[group, 0] + theta[group, 1] * x
        loss = weight * (np.logaddexp(0.0, eta) - y * eta)
        return np.bincount(group, loss, n_groups) + 0.5 * penalty * ((theta - prior) ** 2).sum(1)

    current = objective(theta)
    for _ in range(MAX_NEWTON_STEPS):
        p = expit(theta[group, 0] + theta[group, 1] * x)
        residual, curvature = weight * (p - y), weight * p * (1.0 - p)
        grad_a = np.bincount(group, residual, n_groups) + penalty * (theta[:, 0] - prior[:, 0])
        grad_b = np.bincount(group, residual * x, n_groups) + penalty * (theta[:, 1] - prior[:, 1])
        h_aa = np.bincount(group, curvature, n_groups) + penalty
        h_ab = np.bincount(group, curvature * x, n_groups)
        h_bb = np.bincount(group, curvature * x * x, n_groups) + penalty
        determinant = h_aa * h_bb - h_ab**2  # > 0: the penalty makes the problem strictly convex
        step = (
            np.column_stack([(h_bb * grad_a - h_ab * grad_b), (h_aa * grad_b - h_ab * grad_a)])
            / determinant[:, np.newaxis]
        )
        scale = np.ones(n_groups)
        for _ in range(MAX_HALVINGS):
            candidate = theta - scale[:, np.newaxis] * step
            value = objective(candidate)
            worse = value > current + 1e-12 * np.abs(current)
            if not worse.any():
                break
            scale[worse] /= 2
        else:
            candidate, value = np.where(worse[:, np.newaxis], theta, candidate), current
        theta, current = candidate, np.minimum(value, current)
        if np.abs(scale[:, np.newaxis] * step).max() < 1e-9:
            break
    return theta


def _fit_species(x, y, weight, species, n_species, replicate, n_replicates, min_reviews, C):
    """Pooled and per-species coefficients of each replicate.

    Returns ``(coefficients (R, K, 2), pooled (R, K) bool, pooled coefficients (R, 2))``.
    """
    penalty = 1.0 / C
    identity = np.tile(IDENTITY, (n_replicates, 1))
    pooled_theta = _fit_logistic(x, y, weight, replicate, identity, penalty)
    group = replicate * n_species + species
    n_groups = n_replicates * n_species
    n_reviews = np.bincount(group, minlength=n_groups)
    n_correct = np.bincount(group, y, n_groups)
    pooled = (n_reviews < min_reviews) | (n_correct == 0) | (n_correct == n_reviews)
    prior = np.repeat(pooled_theta, n_species, axis=0)
    theta = _fit_logistic(x, y, weight, group, prior, penalty)
    theta[pooled] = prior[pooled]
    return (
        theta.reshape(n_replicates, n_species, 2),
        pooled.reshape(n_replicates, n_species),
        pooled_theta,
    )
