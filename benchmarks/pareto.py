"""The Pareto figure: macro mAP against real-time factor for every model the package ships.

Usage (from the repository root, after ``speed.py --json outputs/speed.json``,
``accuracy.py --design --seeds 1 --docs docs/benchmarks.md`` and ``distill.py --docs
docs/benchmarks.md``)::

    .venv/bin/python benchmarks/pareto.py [--speed outputs/speed.json]
        [--out docs/images/accuracy_speed.png] [--docs docs/benchmarks.md]

It draws nothing it measures itself: the macro mAP (test split of xc-puerto-rico, with its
95 % bootstrap interval) is read from the tables that ``accuracy.py``, ``embeddings.py``
and ``distill.py`` wrote into ``docs/benchmarks.md``, and the speed (seconds of audio per
wall second on the 7 soundscapes, decoding included) from the JSON that ``speed.py``
wrote, so that every speed comes from one run on one machine. The figure is made with
:func:`sklearn_birdaudio.plotting.plot_accuracy_speed`; the table it prints goes between
the ``pareto`` markers of ``--docs``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd
from _measure import publish

from sklearn_birdaudio.plotting import pareto_front, plot_accuracy_speed

#: Figure label -> (docs section, start of the row's first cell, speed key, group).
MODELS = {
    "recipe CNN": (
        "embeddings", "AttentionCNN pipeline (accuracy.py's recipe",
        "detect(), small-data recipe network", "ours",
    ),
    "default CNN": (
        "accuracy-design", "AttentionCNN pipeline, one network", "detect(), default network",
        "ours",
    ),
    "distilled student": (
        "distill", "distilled student, max over windows", "detect(), distilled student", "ours",
    ),
    "BirdNET zero-shot": (
        "embeddings", "BirdNET zero-shot", "BirdNET zero-shot, 2 thread(s)",
        "BirdNET (CC BY-NC-SA)",
    ),
    "BirdNET embeddings + LR": (
        "embeddings", "BirdNET embeddings + logistic regression",
        "BirdNET embeddings + logistic regression", "BirdNET (CC BY-NC-SA)",
    ),
    "BirdNET ensemble": (
        "embeddings", "ensemble: embeddings + zero-shot",
        "BirdNET ensemble (embeddings + LR, zero-shot)", "BirdNET (CC BY-NC-SA)",
    ),
}  # fmt: skip


def section(docs: str, name: str) -> str:
    found = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", docs, re.DOTALL)
    if not found:
        raise SystemExit(f"docs: no {name} section; run the benchmark that writes it first")
    return found[1]


def test_row(text: str, start: str) -> tuple[float, float, float]:
    """Macro mAP and its interval from the first table row starting with ``start`` (bold or
    not)."""
    for line in text.splitlines():
        cells = [cell.strip().strip("*") for cell in line.strip().strip("|").split("|")]
        if cells and cells[0].startswith(start):
            # the interval cell (the name may hold brackets too: "weights [1, 1]"), or
            # accuracy.py's sentence below its tables
            interval = re.search(r"\[([\d.]+), ([\d.]+)\]", " | ".join(cells[1:])) or (
                re.search(r"interval over test recordings: \[([\d.]+), ([\d.]+)\]", text)
            )
            return float(cells[1]), float(interval[1]), float(interval[2])
    raise SystemExit(f"docs: no row starting with {start!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speed", type=Path, default=Path("outputs/speed.json"))
    parser.add_argument("--benchmarks", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--out", type=Path, default=Path("docs/images/accuracy_speed.png"))
    parser.add_argument("--docs", type=Path, help="Markdown file with pareto markers")
    args = parser.parse_args()
    docs = args.benchmarks.read_text()
    speeds = json.loads(args.speed.read_text())
    rows = []
    for name, (where, start, speed_key, group) in MODELS.items():
        score, low, high = test_row(section(docs, where), start)
        rows.append({"name": name, "macro mAP": score, "low": low, "high": high,
                     "x real time": speeds[speed_key], "group": group})  # fmt: skip
    models = pd.DataFrame(rows)
    models["on the front"] = pareto_front(models["macro mAP"], models["x real time"])
    figure = plot_accuracy_speed(
        models,
        title="xc-puerto-rico test split (71 recordings): accuracy against speed on 2 cores",
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=120)
    fastest_birdnet = models.loc[models["group"] != "ours", "x real time"].max()
    lines = [
        f"![macro mAP against speed]({args.out.relative_to(args.out.parents[1])})",
        "",
        "| model | macro mAP [95 % bootstrap] | x real time | vs fastest BirdNET pipeline | "
        "on the Pareto front |",
        "|---|---|---|---|---|",
    ]
    for _, row in models.iterrows():
        speed = row["x real time"]
        lines.append(
            f"| {row['name']} | {row['macro mAP']:.3f} [{row['low']:.3f}, {row['high']:.3f}] | "
            f"{speed:.0f}x | {speed / fastest_birdnet:.1f}x | "
            f"{'yes' if row['on the front'] else 'no'} |"
        )
    publish("\n".join(lines) + "\n", args.docs, "pareto")
    print(f"figure written to {args.out}")


if __name__ == "__main__":
    main()
