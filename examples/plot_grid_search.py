"""
Grid-search the pipeline
========================

The pipeline is a scikit-learn estimator, so ``GridSearchCV`` tunes the front end and
the network together with the package's multi-label scorers (``"mAP_macro"`` and
friends in ``sklearn_birdaudio.metrics.SCORERS``). ``memory=`` caches each file's
spectrogram on disk, so the folds and candidates that share front-end settings do not
decode and transform the recordings again.
"""

# %%
# Data on disk
# ------------
import os
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import soundfile
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from sklearn_birdaudio import AttentionCNNClassifier, MelSpectrogramTransformer, make_birdsong
from sklearn_birdaudio.metrics import SCORERS

SMALL = os.environ.get("BIRDAUDIO_EXAMPLE_SMALL") == "1"
OUTPUT = Path(os.environ.get("BIRDAUDIO_OUTPUT", Path(__file__).resolve().parents[1] / "outputs"))
OUTPUT.mkdir(parents=True, exist_ok=True)
work = Path(tempfile.mkdtemp(prefix="birdaudio_grid_"))

n_recordings, seconds = (36, 1.0) if SMALL else (150, 5.0)
X, Y, species = make_birdsong(n_recordings, n_classes=4, duration=seconds, random_state=0)
paths = []
for index, waveform in enumerate(X):
    paths.append(str(work / f"recording_{index:03d}.wav"))
    soundfile.write(paths[-1], waveform, 32000)
print(f"Data: {len(paths)} synthetic recordings of {len(species)} species in {work}")

# %%
# The search
# ----------
# Two front-end sizes times two learning rates, 3-fold cross-validation, scored by macro
# mAP (and micro F1 reported alongside); the best candidate is refitted on everything.
network = {"module__base_filters": 8, "module__n_blocks": 2, "module__n_heads": 2}
pipeline = Pipeline(
    [
        ("mel", MelSpectrogramTransformer(duration=seconds, memory=work / "cache")),
        (
            "cnn",
            AttentionCNNClassifier(
                max_epochs=3 if SMALL else 15,
                window_seconds=seconds,
                overlap_seconds=0.0,
                random_state=0,
                verbose=0,
                **network,
            ),
        ),
    ]
)
grid = {"mel__n_mels": [32, 64], "cnn__lr": [1e-3, 3e-3]}
search = GridSearchCV(
    pipeline,
    grid,
    scoring={"mAP_macro": SCORERS["mAP_macro"], "f1_micro": SCORERS["f1_micro"]},
    refit="mAP_macro",
    cv=KFold(3, shuffle=True, random_state=0),
)
start = time.perf_counter()
search.fit(paths, Y)
seconds_taken = time.perf_counter() - start
print(f"Searched {len(search.cv_results_['params'])} candidates in {seconds_taken:.0f} s")
results = pd.DataFrame(search.cv_results_)[
    ["param_mel__n_mels", "param_cnn__lr", "mean_test_mAP_macro", "mean_test_f1_micro"]
]
print(results.to_string(index=False))
print(f"Best: {search.best_params_} (macro mAP {search.best_score_:.3f})")

# %%
# The scores over the grid
# ------------------------
table = results.pivot(
    index="param_mel__n_mels", columns="param_cnn__lr", values="mean_test_mAP_macro"
)
fig, ax = plt.subplots(figsize=(4.5, 3.5), layout="constrained")
image = ax.imshow(table.to_numpy(dtype=float), cmap="viridis")
ax.set(
    xticks=range(table.shape[1]),
    xticklabels=[f"{lr:g}" for lr in table.columns],
    yticks=range(table.shape[0]),
    yticklabels=table.index,
    xlabel="learning rate",
    ylabel="mel bands",
    title="Cross-validated macro mAP",
)
for (row, column), value in np.ndenumerate(table.to_numpy(dtype=float)):
    ax.text(column, row, f"{value:.2f}", ha="center", va="center", color="white")
fig.colorbar(image, ax=ax)
fig.savefig(OUTPUT / "grid_search.png", dpi=100)
print(f"Figure: {OUTPUT / 'grid_search.png'}")
