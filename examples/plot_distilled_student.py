"""
The demo: a fast network of our own, taught by BirdNET
======================================================

What ``make demo`` runs. It trains the package's best model that fits in minutes on a
2-core laptop: a ``DistilledClassifier``, whose student (log-mel + the small-data
recipe's ``AttentionCNNClassifier``) learns from BirdNET's scores of every 3-s window of
the training recordings, mixed with their labels. It then scores the held-out test
recordings with ``sklearn.metrics``, prints them beside the figures measured by the
benchmarks, saves the student (which runs without BirdNET), and draws its detections on
the longest test recording.

It uses the xeno-canto recordings of 23 Puerto Rican species in
``../shared/data/xc-puerto-rico`` (fixed train/test split; targets are the primary species
plus the background species) when they are there (``BIRDAUDIO_DATA`` points elsewhere),
and synthetic songs named after three real species otherwise. It needs the ``birdnet``
extra (part of ``make install``). BirdNET is CC BY-NC-SA 4.0, and so is the student.

The demo trains the student for ``BIRDAUDIO_EPOCHS`` epochs, 12 by default, on windows
every ``BIRDAUDIO_HOP`` = 1.5 s; ``BIRDAUDIO_EPOCHS=40`` is the benchmark's full schedule
(``benchmarks/distill.py``; fewer crops per recording cost more accuracy than fewer
epochs, docs/benchmarks.md).
``BIRDAUDIO_EXAMPLE_SMALL=1`` runs a tiny network on a few clips (the test suite).
"""

# %%
# The data
# --------
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd

from sklearn_birdaudio import (
    DistilledClassifier,
    audio_info,
    detect,
    load_manifest,
    make_birdsong,
    plot_detections,
    plot_precision_recall,
    plot_training_curves,
    save_model,
    window_scores,
)
from sklearn_birdaudio.distillation import make_student
from sklearn_birdaudio.metrics import mean_average_precision, top1_accuracy

SMALL = os.environ.get("BIRDAUDIO_EXAMPLE_SMALL") == "1"
HOP = float(os.environ.get("BIRDAUDIO_HOP", 1.0 if SMALL else 1.5))
EPOCHS = int(os.environ.get("BIRDAUDIO_EPOCHS", 2 if SMALL else 12))
DATA = Path(
    os.environ.get("BIRDAUDIO_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
OUTPUT = Path(os.environ.get("BIRDAUDIO_OUTPUT", Path(__file__).resolve().parents[1] / "outputs"))
OUTPUT.mkdir(parents=True, exist_ok=True)
started = time.perf_counter()

manifest = DATA / "xc-puerto-rico" / "labels.csv"
REAL = manifest.is_file() and not SMALL
if REAL:
    X_train, Y_train, species = load_manifest(manifest, split="train", as_frame=True)
    X_test, Y_test, _ = load_manifest(manifest, split="test", classes=species)
    _, primary, _ = load_manifest(
        manifest, label_columns="primary_label", split="test", classes=species
    )
    X_train, X_test = list(X_train), list(X_test)
    source = f"xeno-canto, {manifest.parent}"
else:  # BirdNET matches classes by name: synthetic songs under real species' names
    n_train, n_test = (8, 4) if SMALL else (60, 20)
    X_all, Y_all, _ = make_birdsong(n_train + n_test, n_classes=3, duration=6.0,
                                    n_labels=1.0, random_state=0, as_frame=True)  # fmt: skip
    species = ["Turdus migratorius", "Cardinalis cardinalis", "Cyanocitta cristata"]
    Y_all.columns = species
    X_train, Y_train = list(X_all[:n_train]), Y_all.iloc[:n_train]
    X_test, Y_test = list(X_all[n_train:]), Y_all.to_numpy()[n_train:]
    primary = Y_test
    source = "synthetic songs" + ("" if SMALL else f" ({manifest} not found)")
print(f"Data: {len(X_train)} training and {len(X_test)} test recordings of "
      f"{len(species)} species ({source})")  # fmt: skip

# %%
# The teacher, the student and the fit
# ------------------------------------
# The default teacher is BirdNET v2.4's embeddings + logistic regression, ensembled with
# BirdNET's own zero-shot scores. Each training recording's windows are scored by a
# teacher fitted without that recording (5 folds), so the soft labels are no memory of
# its own labels. ``memory=`` caches BirdNET's embeddings and the teacher's scores: a
# second run only trains the student.
small = {"module__base_filters": 4, "module__n_blocks": 2, "module__n_heads": 2} if SMALL else {}
student = make_student(max_epochs=EPOCHS, random_state=0, verbose=1, **small)
model = DistilledClassifier(
    student=student, hop_seconds=HOP, teacher_cv=2 if SMALL else 5,
    memory=OUTPUT / "cache" / "birdnet", random_state=0, verbose=1,
)  # fmt: skip
start = time.perf_counter()
model.fit(X_train, Y_train)
fit_seconds = time.perf_counter() - start
print(f"Fitted in {fit_seconds:.0f} s: the teacher scored {model.n_windows_} windows, "
      f"the student trained {EPOCHS} epochs on them")  # fmt: skip

# %%
# Evaluation with scikit-learn's metrics
# --------------------------------------
# Only the student predicts. Macro mAP averages each species' average precision; top-1 is
# the share of recordings whose best-scored species is their primary one.
start = time.perf_counter()
probabilities = model.predict_proba(X_test)
predict_seconds = time.perf_counter() - start
Y_test = np.asarray(Y_test)
durations = [
    audio_info(path).duration_seconds if REAL else len(path) / 32000 for path in X_test
]  # synthetic songs are 32-kHz waveforms
measured = pd.DataFrame(
    {
        "macro mAP": [mean_average_precision(Y_test, probabilities)],
        "top-1": [top1_accuracy(primary, probabilities)],
    },
    index=["this run: distilled student"],
)
references = pd.DataFrame(  # docs/benchmarks.md, on the same 71 test recordings
    {"macro mAP": [0.623, 0.796, 0.898], "top-1": [0.507, 0.845, 0.817]},
    index=[
        "README: recipe network, trained from scratch",
        "README: BirdNET v2.4 zero-shot",
        "README: BirdNET ensemble (the teacher)",
    ],
)
print((pd.concat([measured, references]) if REAL else measured).round(3).to_string())
print(f"Prediction: {predict_seconds:.1f} s for {len(X_test)} recordings, "
      f"{sum(durations) / predict_seconds:.0f}x real time (decoding included)")  # fmt: skip

# %%
# The saved student, and where it comes from
# ------------------------------------------
model_path = OUTPUT / "birdaudio_model.safetensors"
save_model(model, model_path)  # the student alone; loading it never runs code
print(f"Student saved to {model_path} (it runs without BirdNET); distilled from "
      f"{model.lineage_['teacher']}; licence {model.lineage_['licence']}")  # fmt: skip

# %%
# Figures: training, precision-recall, and detections on a held-out recording
# ---------------------------------------------------------------------------
plot_training_curves(model.student_).savefig(OUTPUT / "training_curves.png", dpi=100)
plot_precision_recall(Y_test, probabilities, classes=species).savefig(
    OUTPUT / "precision_recall.png", dpi=100
)
longest = int(np.argmax(durations))
recording = X_test[longest]
detections = detect(model, [recording], min_confidence=0.3, overlap_seconds=1.5, verbose=0)
scores = window_scores(model, recording, overlap_seconds=1.5)
labelled = [species[k] for k in np.flatnonzero(Y_test[longest])]
figure = plot_detections(
    recording, detections, scores, duration_s=60.0,
    title=f"Held-out test recording: labelled {', '.join(labelled)}",
)  # fmt: skip
figure.savefig(OUTPUT / "detections.png", dpi=100)
print(f"{len(detections)} detections at confidence >= 0.3 on the longest test recording "
      f"(labelled {', '.join(labelled)}):")  # fmt: skip
print(detections.groupby("label")["confidence"].agg(["count", "max"]).round(3).to_string())
print(f"Figures: {OUTPUT / 'training_curves.png'}, {OUTPUT / 'precision_recall.png'}, "
      f"{OUTPUT / 'detections.png'}. Total {time.perf_counter() - started:.0f} s.")  # fmt: skip
