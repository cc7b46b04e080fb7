"""From detections to trusted results: calibrated per-species thresholds on real soundscapes.

Usage (from the repository root, after ``make install``)::

    .venv/bin/python benchmarks/calibration.py [--docs docs/benchmarks.md]

What it does, on the seven labelled soundscapes of ``../shared/data/soundscapes`` (62 min,
5-second labels as eBird codes, mapped to scientific names by :data:`SPECIES`):

1. **Detect** with BirdNET v2.4 zero-shot (:class:`~sklearn_birdaudio.BirdNETClassifier`
   for the 26 species the labels name) on every 3-s window, reporting scores >= 0.01.
2. **Review by oracle.** A detection is correct when its species is labelled in a 5-s
   window that overlaps the detection's 3-s window by at least 1 s. Reviews are drawn as an
   ecologist would with ``birdaudio review``: per species, ``n`` detections stratified over
   the score range (:func:`~sklearn_birdaudio.review.sample_for_review`), each with its
   inverse inclusion probability as weight.
3. **Calibrate** (:class:`~sklearn_birdaudio.ScoreCalibrator`: a logistic regression of
   "correct" on the score's logit per species, pooled where a species has too few reviews)
   on the reviews of half the soundscapes, and read off each species' threshold for a
   0.9 precision target.
4. **Apply** the thresholds to the other half, and swap the halves (two folds over
   soundscapes). Held-out precision and recall are counted over detections: recall is the
   share of the correct detections at score >= 0.01 that a threshold keeps.

Compared with the per-species thresholds: one global threshold calibrated on the same
reviews for the same target (every species pooled), BirdNET's customary 0.5, and the best
any single global threshold can do on the held-out half at the precision the per-species
thresholds reached (an oracle bound, chosen on the held-out data itself).

It also reports how many reviews per species calibration needs (10, 25, 50, 100; mean over
seeds), and BirdNET's soundscape scores per 5-s window (padded cmAP, macro mAP, micro F1 at
0.5), to show how far soundscape scores are from focal-recording ones.

The detections are cached in ``outputs/`` (BirdNET takes minutes on 2 cores); ``--fresh``
recomputes them. The soundscapes are for research use only (see their README).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _measure import publish

from sklearn_birdaudio import BirdNETClassifier, ScoreCalibrator, detect
from sklearn_birdaudio.metrics import f1_at_threshold, mean_average_precision, padded_cmap
from sklearn_birdaudio.review import sample_for_review

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "soundscapes"
CACHE = Path(__file__).resolve().parents[1] / "outputs" / "zero_shot_soundscapes.csv"
# The eBird codes of the soundscape labels, and the scientific names BirdNET knows them by.
SPECIES = {
    "amegfi": "Spinus tristis", "bkcchi": "Poecile atricapillus",
    "blujay": "Cyanocitta cristata", "brncre": "Certhia americana",
    "cangoo": "Branta canadensis", "cedwax": "Bombycilla cedrorum",
    "comgra": "Quiscalus quiscula", "daejun": "Junco hyemalis",
    "dowwoo": "Dryobates pubescens", "eawpew": "Contopus virens",
    "gockin": "Regulus satrapa", "grycat": "Dumetella carolinensis",
    "haiwoo": "Dryobates villosus", "mouchi": "Poecile gambeli",
    "norcar": "Cardinalis cardinalis", "purfin": "Haemorhous purpureus",
    "rebnut": "Sitta canadensis", "rebsap": "Sphyrapicus ruber",
    "rebwoo": "Melanerpes carolinus", "rewbla": "Agelaius phoeniceus",
    "sposan": "Actitis macularius", "stejay": "Cyanocitta stelleri",
    "swaspa": "Melospiza georgiana", "veery": "Catharus fuscescens",
    "westan": "Piranga ludoviciana", "yerwar": "Setophaga coronata",
}  # fmt: skip
MIN_CONFIDENCE = 0.01
MIN_OVERLAP_S = 1.0
LABEL_WINDOW_S = 5.0
TARGET_PRECISION = 0.9
REVIEWS = (10, 25, 50, 100)
# Two halves of the soundscapes, each holding New York and Californian recordings.
HALVES = (
    ("SSW49.mp3", "SSW51.mp3", "SSW54.mp3", "BLKFR-10-CPL_20190611_093000.mp3"),
    ("SSW50.mp3", "SSW52.mp3", "ORANGE-7-CAP_20190606_093000.mp3"),
)


def labels() -> pd.DataFrame:
    """The labelled 5-s windows with a bird: name (file name), species, start, end."""
    table = pd.read_csv(DATA / "labels.csv")
    table["name"] = table["path"].map(lambda path: Path(path).name)
    known = table["label"].isin(SPECIES)
    unknown = sorted(set(table["label"][~known]) - {"nocall"})
    if unknown:
        raise SystemExit(f"labels.csv has eBird codes without a scientific name: {unknown}")
    table = table[known].assign(species=lambda t: t["label"].map(SPECIES))
    return table[["name", "species", "start", "end"]].reset_index(drop=True)


def zero_shot_detections(fresh: bool) -> pd.DataFrame:
    """BirdNET zero-shot detections of the 26 species on every soundscape (cached)."""
    if CACHE.is_file() and not fresh:
        detections = pd.read_csv(CACHE)
        detections.attrs["seconds"] = None
    else:
        names = pd.DataFrame([[0] * len(SPECIES)], columns=sorted(set(SPECIES.values())))
        model = BirdNETClassifier().fit([np.zeros(48_000, np.float32)], names)
        files = sorted(str(path) for path in (DATA / "audio").glob("*.mp3"))
        start = time.perf_counter()
        detections = detect(model, files, min_confidence=MIN_CONFIDENCE, n_jobs=-1, verbose=1)
        seconds = time.perf_counter() - start
        print(f"BirdNET zero-shot on {len(files)} soundscapes: {seconds:.0f} s")
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        detections.to_csv(CACHE, index=False)
        detections.attrs["seconds"] = seconds
    detections["name"] = detections["file"].map(lambda path: Path(path).name)
    return detections


def oracle_verdicts(detections: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    """1 where the detection's species is labelled in a 5-s window overlapping it >= 1 s."""
    merged = detections.reset_index().merge(
        truth, left_on=["name", "label"], right_on=["name", "species"], how="left"
    )
    overlap = np.minimum(merged["end"], merged["end_s"]) - np.maximum(
        merged["start"], merged["start_s"]
    )
    hit = (overlap >= MIN_OVERLAP_S).groupby(merged["index"]).any()
    return hit.reindex(detections.index, fill_value=False).to_numpy(dtype=int)


def calibrate(reviewed: pd.DataFrame, one_for_all: bool = False) -> pd.DataFrame:
    """Per-species thresholds for the precision target from the reviews.

    The curves are fitted without weights (the reviews were sampled on the score, which
    the curve conditions on); the weights enter the precision estimate. ``one_for_all``:
    every species as one, for a single global threshold (the row ``"all"``).
    """
    if one_for_all:
        reviewed = reviewed.assign(label="all")
    calibrator = ScoreCalibrator(min_reviews=20).fit(reviewed, reviewed["verdict"])
    return calibrator.thresholds(
        precision=TARGET_PRECISION, sample_weight=reviewed["weight"], n_bootstrap=0
    ).set_index("species")


def review(detections: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    sample = sample_for_review(detections, n_per_species=n, n_bins=5, random_state=seed)
    # the oracle's verdicts: the labels of the sampled windows
    keys = ["file", "start_s", "label"]
    verdicts = sample[keys].merge(detections[[*keys, "correct"]], on=keys, how="left")
    return sample.assign(verdict=verdicts["correct"].to_numpy())


def kept_by(detections: pd.DataFrame, thresholds) -> np.ndarray:
    """Whether each detection reaches its species' threshold (a float: one for all)."""
    if isinstance(thresholds, float):
        return detections["confidence"].to_numpy() >= thresholds
    per_row = detections["label"].map(thresholds).fillna(np.inf).to_numpy()
    return detections["confidence"].to_numpy() >= per_row


def precision_recall(detections: pd.DataFrame, kept: np.ndarray) -> tuple[float, float, int]:
    correct = detections["correct"].to_numpy().astype(bool)
    n_kept = int(kept.sum())
    precision = float((correct & kept).sum() / n_kept) if n_kept else float("nan")
    recall = float((correct & kept).sum() / correct.sum()) if correct.any() else float("nan")
    return precision, recall, n_kept


def best_global_recall(detections: pd.DataFrame, precision: float) -> tuple[float, float]:
    """The highest recall of any one threshold reaching ``precision`` on these detections."""
    best = (float("nan"), 0.0)
    for threshold in np.unique(detections["confidence"]):
        p, r, _ = precision_recall(detections, kept_by(detections, float(threshold)))
        if p >= precision and r > best[1]:
            best = (float(threshold), r)
    return best


def fold_results(detections: pd.DataFrame, n: int, seed: int) -> list[dict]:
    """Calibrate on one half, evaluate on the other, both ways."""
    rows = []
    for fold, calibration_half in enumerate(HALVES):
        on_calibration = detections["name"].isin(calibration_half)
        held_out = detections[~on_calibration]
        reviewed = review(detections[on_calibration], n, seed)
        per_species = calibrate(reviewed)
        pooled = calibrate(reviewed, one_for_all=True).loc["all", "threshold"]
        kept = kept_by(held_out, per_species["threshold"])
        precision, recall, n_kept = precision_recall(held_out, kept)
        rows.append(
            {
                "fold": fold,
                "n": n,
                "seed": seed,
                "reviews": len(reviewed),
                "per_species": (precision, recall, n_kept),
                "global_threshold": float(pooled),
                "global": precision_recall(held_out, kept_by(held_out, float(pooled))),
                "birdnet_0.5": precision_recall(held_out, kept_by(held_out, 0.5)),
                "best_global": best_global_recall(held_out, precision),
                "thresholds": per_species,
                "held_out": held_out.assign(kept=kept),
            }
        )
    return rows


def window_metrics(detections: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """BirdNET's soundscape scores per labelled 5-s window (max over overlapping windows)."""
    all_windows = pd.read_csv(DATA / "labels.csv")
    all_windows["name"] = all_windows["path"].map(lambda path: Path(path).name)
    windows = all_windows[["name", "start", "end"]].drop_duplicates().reset_index(drop=True)
    species = sorted(set(SPECIES.values()))
    column = {name: index for index, name in enumerate(species)}
    targets = np.zeros((len(windows), len(species)))
    scores = np.zeros_like(targets)
    index = {
        key: row for row, key in enumerate(zip(windows["name"], windows["start"], strict=True))
    }
    for name, name_species, start in truth[["name", "species", "start"]].itertuples(index=False):
        targets[index[name, start], column[name_species]] = 1
    for row, (name, start, end) in enumerate(windows.itertuples(index=False)):
        overlapping = detections[
            (detections["name"] == name)
            & (np.minimum(detections["end_s"], end) - np.maximum(detections["start_s"], start)
               >= MIN_OVERLAP_S)
        ]  # fmt: skip
        for label, confidence in zip(overlapping["label"], overlapping["confidence"], strict=True):
            scores[row, column[label]] = max(scores[row, column[label]], confidence)
    present = targets.sum(axis=0) > 0
    return {
        "windows": len(windows),
        "padded_cmap": padded_cmap(targets, scores),
        "macro_map": mean_average_precision(targets[:, present], scores[:, present]),
        "micro_f1": f1_at_threshold(targets, scores, threshold=0.5),
    }


def _pr(values) -> str:
    precision, recall = values[0], values[1]
    return f"{precision:.3f} / {recall:.3f}"


def render(results: list[dict], curve: pd.DataFrame, windows: dict, detections, seconds) -> str:
    main = [row for row in results if row["n"] == 50 and row["seed"] == 0]
    lines = [
        f"Hardware: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"BirdNET v2.4 zero-shot, 26 species, {len(detections)} detections at score >= "
        f"{MIN_CONFIDENCE} on the 7 soundscapes (62 min), "
        f"{detections['correct'].mean():.1%} of them correct; target precision "
        f"{TARGET_PRECISION}; oracle reviews (a detection is correct when its species is "
        f"labelled in a 5-s window overlapping it by >= {MIN_OVERLAP_S:g} s). "
        f"Run time {seconds:.0f} s"
        + (
            " (detections read from outputs/, written by an earlier --fresh run)."
            if detections.attrs.get("seconds") is None
            else f", BirdNET's detection {detections.attrs['seconds']:.0f} s of it."
        ),
        "",
        "**Held-out precision / recall (50 reviews per species, review seed 0, two folds over "
        "soundscapes)**",
        "",
        "| threshold | fold 1 | fold 2 | pooled over both folds |",
        "|---|---|---|---|",
    ]

    def pooled_pr(key):
        frames = []
        for row in main:
            held_out = row["held_out"]
            if key == "per_species":
                kept = held_out["kept"].to_numpy()
            elif key == "global":
                kept = kept_by(held_out, float(row["global_threshold"]))
            else:
                kept = kept_by(held_out, 0.5)
            frames.append((held_out, kept))
        correct = np.concatenate([f[0]["correct"].to_numpy().astype(bool) for f in frames])
        kept = np.concatenate([f[1] for f in frames])
        return precision_recall(pd.DataFrame({"correct": correct}), kept)

    for key, name in [
        ("per_species", "per-species, calibrated for 0.9"),
        ("global", "one global, calibrated for 0.9"),
        ("birdnet_0.5", "BirdNET's customary 0.5"),
    ]:
        cells = [_pr(row[key]) for row in main]
        lines.append(f"| {name} | {' | '.join(cells)} | {_pr(pooled_pr(key))} |")
    cells = [f"recall {row['best_global'][1]:.3f} at {row['best_global'][0]:.3f}" for row in main]
    lines.append(
        "| best single global threshold reaching the per-species precision (oracle, chosen "
        f"on the held-out half) | {' | '.join(cells)} | |"
    )
    lines += [
        "",
        "Recall is the share of the correct detections at score >= 0.01 that a threshold keeps.",
        "",
        "**Per species (50 reviews; thresholds from the other fold, evaluated on this one)**",
        "",
        "| species | fold | reviews | pooled model | threshold | held-out precision | "
        "held-out recall | correct held-out detections |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in main:
        held_out = row["held_out"]
        for species, threshold in row["thresholds"].iterrows():
            rows = held_out[held_out["label"] == species]
            if not rows["correct"].any():
                continue
            p, r, _ = precision_recall(rows, rows["kept"].to_numpy())
            lines.append(
                f"| *{species}* | {row['fold'] + 1} | {int(threshold['n_reviews'])} | "
                f"{'yes' if threshold['pooled'] else 'no'} | {threshold['threshold']:.3f} | "
                f"{p:.3f} | {r:.3f} | {int(rows['correct'].sum())} |"
            )
    lines += [
        "",
        "**Reviews per species needed (mean over 5 seeds and both folds; held-out, pooled "
        "over species)**",
        "",
        "| reviews per species | reviews in all | precision | recall | within 0.05 of 0.9 |",
        "|---|---|---|---|---|",
    ]
    for n, group in curve.groupby("n"):
        lines.append(
            f"| {n} | {group['reviews'].mean():.0f} | {group['precision'].mean():.3f} "
            f"(sd {group['precision'].std():.3f}) | {group['recall'].mean():.3f} | "
            f"{(abs(group['precision'] - TARGET_PRECISION) <= 0.05).mean():.0%} of runs |"
        )
    lines += [
        "",
        f"**BirdNET zero-shot on the soundscapes, per 5-s window** ({windows['windows']} "
        f"windows): padded cmAP {windows['padded_cmap']:.3f}, macro mAP over the species "
        f"present {windows['macro_map']:.3f}, micro F1 at 0.5 {windows['micro_f1']:.3f}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=Path, help="write the tables into this Markdown file")
    parser.add_argument("--fresh", action="store_true", help="recompute the detections")
    parser.add_argument("--seeds", type=int, default=5, help="review draws per size")
    args = parser.parse_args()
    start = time.perf_counter()
    truth = labels()
    detections = zero_shot_detections(args.fresh)
    detections["correct"] = oracle_verdicts(detections, truth)
    results = []
    for n in REVIEWS:
        for seed in range(args.seeds):
            results += fold_results(detections, n, seed)
    curve = pd.DataFrame(
        [
            {
                "n": row["n"],
                "reviews": row["reviews"],
                "precision": row["per_species"][0],
                "recall": row["per_species"][1],
            }
            for row in results
        ]
    )
    windows = window_metrics(detections, truth)
    text = render(results, curve, windows, detections, time.perf_counter() - start)
    publish(text, args.docs, "calibration")


if __name__ == "__main__":
    main()
