"""
Ensemble a few networks with voting
===================================

Networks trained from different random seeds make different mistakes; averaging their
probabilities (soft voting) is the cheapest way to a better model. scikit-learn's
``VotingClassifier`` refuses multi-label targets, which bird recordings have;
``sklearn_birdaudio.VotingClassifier`` takes the same parameters and handles them.
"""

# %%
# Three seeds and their vote
# --------------------------
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn.pipeline import Pipeline

from sklearn_birdaudio import (
    AttentionCNNClassifier,
    MelSpectrogramTransformer,
    VotingClassifier,
    make_birdsong,
)
from sklearn_birdaudio.metrics import mean_average_precision

SMALL = os.environ.get("BIRDAUDIO_EXAMPLE_SMALL") == "1"
OUTPUT = Path(os.environ.get("BIRDAUDIO_OUTPUT", Path(__file__).resolve().parents[1] / "outputs"))
OUTPUT.mkdir(parents=True, exist_ok=True)

seconds = 1.0 if SMALL else 5.0
n_train, n_test = (60, 40) if SMALL else (300, 150)
X_train, Y_train, species = make_birdsong(
    n_train, n_classes=5, duration=seconds, noise=0.3, random_state=0, as_frame=True
)
X_test, Y_test, _ = make_birdsong(n_test, n_classes=5, duration=seconds, noise=0.3, random_state=1)
print(f"Data: {n_train} training and {n_test} test synthetic clips of {len(species)} species")


def member(seed: int) -> Pipeline:
    network = {"module__base_filters": 8, "module__n_blocks": 2, "module__n_heads": 2}
    return Pipeline(
        [
            ("mel", MelSpectrogramTransformer(duration=seconds)),
            (
                "cnn",
                AttentionCNNClassifier(
                    max_epochs=4 if SMALL else 15,
                    window_seconds=seconds,
                    overlap_seconds=0.0,
                    random_state=seed,
                    verbose=0,
                    **network,
                ),
            ),
        ]
    )


vote = VotingClassifier([(f"seed{seed}", member(seed)) for seed in range(3)], voting="soft")
vote.fit(X_train, Y_train)
scores = {
    name: mean_average_precision(Y_test, estimator.predict_proba(X_test))
    for name, estimator in vote.named_estimators_.items()
}
scores["soft vote"] = mean_average_precision(Y_test, vote.predict_proba(X_test))
for name, value in scores.items():
    print(f"{name:>10}: test macro mAP {value:.3f}")

# %%
# The members against the ensemble
# ---------------------------------
fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
colors = ["tab:gray"] * (len(scores) - 1) + ["tab:green"]
ax.bar(list(scores), list(scores.values()), color=colors)
ax.set(ylabel="test macro mAP", ylim=(0, 1), title="Soft voting over three seeds")
fig.savefig(OUTPUT / "voting_ensemble.png", dpi=100)
print(f"Figure: {OUTPUT / 'voting_ensemble.png'}")
