"""
Train a bird classifier on real recordings
==========================================

The package's main job: fit a ``MelSpectrogramTransformer`` + ``AttentionCNNClassifier``
pipeline on labelled recordings, evaluate it with ``sklearn.metrics`` on held-out ones,
and save it. This is what ``make demo`` runs.

It uses the xeno-canto recordings of 23 Puerto Rican species in
``../shared/data/xc-puerto-rico`` (fixed train/test split; targets are the primary species
plus the background species the recordist noted) when they are there (set
``BIRDAUDIO_DATA`` to point elsewhere), and the built-in synthetic songs otherwise.

The demo trains the default network for a short schedule, so that it ends in minutes on
a 2-core laptop; the numbers it prints are those of a barely trained model. Set
``BIRDAUDIO_EPOCHS=50`` for the full schedule (early stopping ends it sooner).
``BIRDAUDIO_EXAMPLE_SMALL=1`` runs a tiny network on a few recordings (the test suite).
"""

# %%
# The data
# --------
# Recordings are 60 s long and labelled as a whole. ``duration=None`` keeps them whole:
# the classifier trains on a random 5-s window of each recording per epoch and scores a
# recording window by window, taking each species' highest window score.
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
from sklearn.metrics import average_precision_score, f1_score
from sklearn.pipeline import Pipeline

from sklearn_birdaudio import (
    AttentionCNNClassifier,
    MelSpectrogramTransformer,
    load_manifest,
    make_birdsong,
    plot_precision_recall,
    plot_training_curves,
    save_model,
)

SMALL = os.environ.get("BIRDAUDIO_EXAMPLE_SMALL") == "1"
EPOCHS = int(os.environ.get("BIRDAUDIO_EPOCHS", 2 if SMALL else 4))
DATA = Path(
    os.environ.get("BIRDAUDIO_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
OUTPUT = Path(os.environ.get("BIRDAUDIO_OUTPUT", Path(__file__).resolve().parents[1] / "outputs"))
OUTPUT.mkdir(parents=True, exist_ok=True)

manifest = DATA / "xc-puerto-rico" / "labels.csv"
if manifest.is_file():
    X_train, Y_train, species = load_manifest(manifest, split="train", as_frame=True)
    X_test, Y_test, _ = load_manifest(manifest, split="test", classes=species)
    # The primary species alone, for top-1 accuracy.
    _, primary, _ = load_manifest(
        manifest, label_columns="primary_label", split="test", classes=species
    )
    if SMALL:
        X_train, Y_train = X_train[:32], Y_train.iloc[:32]
        X_test, Y_test, primary = X_test[:12], Y_test[:12], primary[:12]
    print(
        f"Data: {len(X_train)} training and {len(X_test)} test recordings of "
        f"{len(species)} species (xeno-canto, {manifest.parent})"
    )
else:
    n_train, n_test = (40, 16) if SMALL else (300, 100)
    X_all, Y_all, species = make_birdsong(
        n_train + n_test, n_classes=8, duration=10.0, random_state=0, as_frame=True
    )
    X_train, Y_train = list(X_all[:n_train]), Y_all.iloc[:n_train]
    X_test, Y_test = list(X_all[n_train:]), Y_all.to_numpy()[n_train:]
    primary = Y_test  # synthetic clips have no primary species: any label counts
    print(
        f"Data: {n_train} training and {n_test} test synthetic bird-song clips ({DATA} not found)"
    )

# %%
# The pipeline
# ------------
# The specification's defaults: 32 kHz, 128 mel bands, a residual CNN with 64 initial
# filters, batch norm and 8-head attention pooling, AdamW (lr 1e-3, weight decay 1e-5),
# batch 32, a cosine schedule and early stopping on the validation loss.
network = {"module__base_filters": 8, "module__n_blocks": 2, "module__n_heads": 2} if SMALL else {}
pipeline = Pipeline(
    [
        ("mel", MelSpectrogramTransformer(duration=None, verbose=1)),
        (
            "cnn",
            AttentionCNNClassifier(
                max_epochs=EPOCHS, overlap_seconds=0.0, random_state=0, verbose=1, **network
            ),
        ),
    ]
)
print(f"Training for {EPOCHS} epochs (a short schedule; BIRDAUDIO_EPOCHS=50 for the full one)")
start = time.perf_counter()
pipeline.fit(X_train, Y_train)
train_seconds = time.perf_counter() - start
history = pipeline.named_steps["cnn"].history_
epoch_seconds = float(np.mean(history[:, "dur"]))

# %%
# Evaluation with scikit-learn's metrics
# --------------------------------------
start = time.perf_counter()
probabilities = pipeline.predict_proba(X_test)
predict_seconds = time.perf_counter() - start
Y_test = np.asarray(Y_test)
present = Y_test.sum(axis=0) > 0  # AP is undefined for a class with no positive
macro_map = average_precision_score(Y_test[:, present], probabilities[:, present], average="macro")
threshold = pipeline.named_steps["cnn"].threshold  # what pipeline.predict applies
micro_f1 = f1_score(Y_test, probabilities >= threshold, average="micro", zero_division=0)
top1 = float(np.mean(primary[np.arange(len(primary)), probabilities.argmax(axis=1)] == 1))
prior_map = average_precision_score(
    Y_test[:, present],
    np.tile(np.asarray(Y_train).mean(axis=0)[present], (len(Y_test), 1)),
    average="macro",
)
print(
    f"Test macro mAP {macro_map:.3f} (class-prior baseline {prior_map:.3f}), "
    f"micro F1 {micro_f1:.3f}, top-1 {top1:.3f}"
)
print(
    f"Wall time: training {train_seconds:.0f} s ({epoch_seconds:.0f} s per epoch), "
    f"prediction {predict_seconds:.0f} s for {len(X_test)} recordings"
)

# %%
# Training curves and the saved model
# -----------------------------------
plot_training_curves(pipeline).savefig(OUTPUT / "training_curves.png", dpi=100)
plot_precision_recall(Y_test, probabilities, classes=species).savefig(
    OUTPUT / "precision_recall.png", dpi=100
)
model_path = OUTPUT / "birdaudio_model.safetensors"
save_model(pipeline, model_path)  # weights + JSON: loading it never runs code
print(
    f"Model saved to {model_path}; figures {OUTPUT / 'training_curves.png'} and "
    f"{OUTPUT / 'precision_recall.png'}"
)
