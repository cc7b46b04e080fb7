"""Detection tables of fixed models on the soundscapes, to show that a refactoring changed nothing.

Usage (from the repository root, after ``make install``)::

    .venv/bin/python benchmarks/reference_tables.py --out outputs/tables-before
    # ... change the code ...
    .venv/bin/python benchmarks/reference_tables.py --out outputs/tables-after \\
        --compare outputs/tables-before

The first run fits two small pipelines on eight xeno-canto recordings of
``../shared/data/xc-puerto-rico`` (the default network and the small-data recipe's, one
epoch, seeded) and saves them with ``save_model`` under ``--models`` (default
``outputs/reference-models``); later runs load those files, so every run scores the same
weights. Each model runs :func:`~sklearn_birdaudio.detect` over the seven soundscapes of
``../shared/data/soundscapes`` (5-s windows with and without overlap, one file at a time
and one per core), and the tables are written as CSV (full precision), Raven (one
combined table) and Audacity (a label track per file). ``--compare`` prints, for every
table, whether its bytes equal the other folder's, and exits 1 if any differs.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from sklearn_birdaudio import (
    AttentionCNNClassifier,
    MelSpectrogramTransformer,
    detect,
    load_manifest,
    load_model,
    make_small_data_pipeline,
    save_model,
    write_detections,
    write_detections_per_file,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RUNS = {  # name: detect() keywords
    "no-overlap-1-job": dict(n_jobs=1),
    "overlap-2.5-s-all-cores": dict(overlap_seconds=2.5, n_jobs=-1),
}


def fitted_models(folder: Path) -> dict[str, Path]:
    """The two reference pipelines' files, fitting and saving them on the first run."""
    from sklearn.pipeline import Pipeline

    paths = {name: folder / f"{name}.safetensors" for name in ("default", "recipe")}
    if all(path.exists() for path in paths.values()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    X, Y, _ = load_manifest(DATA / "xc-puerto-rico" / "labels.csv", split="train")
    default = Pipeline(
        [
            ("mel", MelSpectrogramTransformer(duration=None)),
            (
                "cnn",
                AttentionCNNClassifier(
                    max_epochs=1, validation_fraction=None, verbose=0, random_state=0
                ),
            ),
        ]
    )
    recipe = make_small_data_pipeline(max_epochs=1, random_state=0, verbose=0)
    for name, model in (("default", default), ("recipe", recipe)):
        save_model(model.fit(X[:8], Y[:8]), paths[name])
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the tables")
    parser.add_argument("--models", type=Path, default=Path("outputs/reference-models"))
    parser.add_argument("--compare", type=Path, help="a folder of an earlier run")
    args = parser.parse_args()

    soundscapes = sorted((DATA / "soundscapes" / "audio").glob("*.mp3"))
    args.out.mkdir(parents=True, exist_ok=True)
    for model_name, path in fitted_models(args.models).items():
        model = load_model(path)
        for run_name, keywords in RUNS.items():
            detections = detect(model, soundscapes, min_confidence=0.0, verbose=0, **keywords)
            stem = f"{model_name}-{run_name}"
            for format in ("csv", "raven"):
                write_detections(detections, args.out / f"{stem}.{format}.txt", format=format)
            write_detections_per_file(detections, args.out / stem, format="audacity")
    differing = 0
    for table in sorted(path for path in args.out.rglob("*") if path.is_file()):
        digest = hashlib.sha256(table.read_bytes()).hexdigest()[:16]
        verdict = ""
        if args.compare is not None:
            other = args.compare / table.relative_to(args.out)
            same = other.exists() and other.read_bytes() == table.read_bytes()
            differing += not same
            verdict = "identical" if same else "DIFFERS"
        name = str(table.relative_to(args.out))
        print(f"{name:70s} {table.stat().st_size:>10d} B  sha256 {digest}  {verdict}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
