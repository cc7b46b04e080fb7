"""Tests of reviewing detections: the sample, the review folder, review.csv, the page, the CLI.

The page is tested in a real browser (Debian's chromium driven by selenium) when one is
installed; ``make test-all`` installs it where it can, otherwise that test skips and says why.
"""

import csv
import io
import json
import re
import shutil
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklearn_birdaudio import (
    SkippedClipsWarning,
    export_review,
    read_review,
    sample_for_review,
    write_detections,
    write_detections_per_file,
)
from sklearn_birdaudio.cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, main
from sklearn_birdaudio.review import REVIEW_COLUMNS
from sklearn_birdaudio.review_page import _csv_lines, _review_cells

SPECIES = ("wren", "robin", "owl")
HOSTILE_LABEL = '=HYPERLINK("x"),\n</script><img src=x onerror=alert(1)>'
HOSTILE_FILE = '=we,ird "dawn".wav'
MATH_LABEL = r"cost $\frac{1}{$ 5"  # matplotlib would take "$...$" for (broken) math


def write_noise(path, seconds: float, sample_rate: int, channels: int = 1, seed: int = 0):
    """Write 16-bit noise and return its samples as int16, shape (n,) or (n, channels)."""
    rng = np.random.default_rng(seed)
    shape = (int(round(seconds * sample_rate)), channels)
    samples = rng.integers(-8000, 8000, size=shape).astype(np.int16)
    samples = samples[:, 0] if channels == 1 else samples
    soundfile.write(path, samples, sample_rate, subtype="PCM_16")
    return samples


def read_int16(path):
    samples, sample_rate = soundfile.read(path, dtype="int16")
    return samples, sample_rate


def detections_of(labels, scores, file="a.wav") -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame(
        {
            "file": file,
            "start_s": np.arange(n, dtype=float),
            "end_s": np.arange(n, dtype=float) + 3.0,
            "label": list(labels),
            "confidence": np.asarray(scores, dtype=float),
        }
    )


# -- sampling ---------------------------------------------------------------------------


@st.composite
def detection_tables(draw, max_rows: int = 60):
    n = draw(st.integers(0, max_rows))
    labels = draw(st.lists(st.sampled_from(SPECIES), min_size=n, max_size=n))
    scores = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    return detections_of(labels, scores)


def strata_counts(table: pd.DataFrame, sample: pd.DataFrame, label: str, n_bins: int):
    """Rows per bin of one species: in the table (by the sample's bin edges) and drawn."""
    edges = np.asarray(sample.attrs["bin_edges"])
    scores = table.loc[table["label"] == label, "confidence"].to_numpy()
    strata = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, n_bins - 1)
    drawn = sample.loc[sample["label"] == label, "stratum"].to_numpy()
    return np.bincount(strata, minlength=n_bins), np.bincount(drawn, minlength=n_bins)


@settings(max_examples=150, deadline=None)
@given(
    table=detection_tables(),
    n_per_species=st.integers(1, 25),
    n_bins=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
)
def test_stratified_sample_covers_the_bins_with_weights_that_add_up(
    table, n_per_species, n_bins, seed
):
    sample = sample_for_review(table, n_per_species=n_per_species, n_bins=n_bins, random_state=seed)
    assert list(sample.columns) == [*table.columns, "weight", "stratum"]
    # Rows of the table, each once (start_s identifies a row here).
    assert sample["start_s"].is_unique
    merged = sample.merge(table, on=["start_s"], suffixes=("", "_table"))
    assert len(merged) == len(sample)
    assert (merged["confidence"] == merged["confidence_table"]).all()
    edges = np.asarray(sample.attrs["bin_edges"])
    assert len(edges) == n_bins + 1 and edges[-1] == 1.0
    assert (edges[sample["stratum"]] <= sample["confidence"]).all()
    assert (sample["confidence"] <= edges[sample["stratum"] + 1]).all()
    for label in SPECIES:
        available = int((table["label"] == label).sum())
        rows = sample[sample["label"] == label]
        assert len(rows) == min(n_per_species, available)
        if not available:
            continue
        in_bin, drawn = strata_counts(table, sample, label, n_bins)
        filled = np.flatnonzero(in_bin)
        if len(rows) >= len(filled):
            assert (drawn[filled] >= 1).all()  # every non-empty bin is visited
            # As equal as the bins allow: a bin gives less than the others only when it
            # has given all it holds.
            assert all(drawn[b] == in_bin[b] or drawn[b] >= drawn.max() - 1 for b in filled)
            expected = in_bin[rows["stratum"]] / drawn[rows["stratum"]]
            np.testing.assert_allclose(rows["weight"], expected)
            assert rows["weight"].sum() == pytest.approx(available)
        else:  # fewer rows than bins: one row from each of len(rows) bins drawn at random
            assert drawn.max() == 1
            expected = in_bin[rows["stratum"]] * len(filled) / len(rows)
            np.testing.assert_allclose(rows["weight"], expected)
    assert sample.attrs["n_detections"] == table["label"].value_counts().to_dict()


@settings(max_examples=100, deadline=None)
@given(
    table=detection_tables(),
    n_per_species=st.integers(1, 25),
    threshold=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**31 - 1),
)
def test_margin_sample_takes_the_scores_nearest_the_threshold(
    table, n_per_species, threshold, seed
):
    sample = sample_for_review(
        table, n_per_species=n_per_species, strategy="margin", threshold=threshold,
        random_state=seed,
    )  # fmt: skip

    def distance(scores):
        scores = np.clip(np.asarray(scores), 1e-12, 1 - 1e-12)
        return np.abs(np.log(scores / (1 - scores)) - np.log(threshold / (1 - threshold)))

    assert (sample["weight"] == 1.0).all()
    for label in SPECIES:
        rows = sample[sample["label"] == label]
        others = table[(table["label"] == label) & ~table["start_s"].isin(rows["start_s"])]
        assert len(rows) == min(n_per_species, len(rows) + len(others))
        if len(rows) and len(others):
            assert distance(rows["confidence"]).max() <= distance(others["confidence"]).min()


def test_margin_breaks_ties_at_random_with_the_seed():
    table = detections_of(["wren"] * 40, [0.5] * 40)
    draws = [
        tuple(sample_for_review(table, n_per_species=5, strategy="margin", random_state=seed)[
            "start_s"
        ])
        for seed in (0, 0, 1, 2)
    ]  # fmt: skip
    assert draws[0] == draws[1]
    assert len(set(draws[1:])) > 1


def test_sample_is_reproducible_with_a_seed():
    rng = np.random.default_rng(0)
    table = detections_of(rng.choice(SPECIES, 300), rng.uniform(0.1, 1, 300))
    first = sample_for_review(table, n_per_species=10, random_state=42)
    again = sample_for_review(table, n_per_species=10, random_state=42)
    pd.testing.assert_frame_equal(first, again)
    others = [sample_for_review(table, n_per_species=10, random_state=seed) for seed in (1, 2)]
    assert any(not other["start_s"].equals(first["start_s"]) for other in others)
    # Ordered by species, then by falling score.
    assert first["label"].tolist() == sorted(first["label"])
    for _, rows in first.groupby("label"):
        assert rows["confidence"].is_monotonic_decreasing


@pytest.mark.parametrize("n_per_species", [10, 3])
def test_weights_estimate_the_number_of_correct_detections_without_bias(n_per_species):
    """Horvitz-Thompson: the weighted count of correct reviewed detections is, on average
    over draws, the number of correct detections; with more rows than non-empty bins (4
    here) and with fewer, where the bins are drawn too. The unweighted count is not."""
    rng = np.random.default_rng(0)
    scores = rng.beta(2, 5, size=200)  # mostly low scores, few high ones
    correct = rng.uniform(size=200) < scores  # precision rises with the score
    table = detections_of(["wren"] * 200, scores)
    weighted, unweighted = [], []
    for seed in range(400):
        sample = sample_for_review(table, n_per_species=n_per_species, random_state=seed)
        drawn = correct[sample["start_s"].astype(int).to_numpy()]
        weighted.append(float(np.sum(sample["weight"] * drawn)))
        unweighted.append(200 * drawn.mean())
    standard_error = np.std(weighted) / np.sqrt(len(weighted))
    assert abs(np.mean(weighted) - correct.sum()) < 4 * standard_error
    # Equal numbers per bin over-represent the few high scores, which are mostly correct.
    assert np.mean(unweighted) - correct.sum() > 10 * np.std(unweighted) / np.sqrt(400)


def test_min_confidence_and_species_select_what_is_sampled():
    table = detections_of(["wren", "robin"] * 20, np.linspace(0.05, 1, 40))
    sample = sample_for_review(
        table, n_per_species=50, n_bins=4, min_confidence=0.4, species=["wren"], random_state=0
    )
    assert set(sample["label"]) == {"wren"}
    assert sample["confidence"].min() >= 0.4
    assert len(sample) == ((table["label"] == "wren") & (table["confidence"] >= 0.4)).sum()
    assert sample.attrs["bin_edges"] == pytest.approx([0.4, 0.55, 0.7, 0.85, 1.0])
    assert (sample["weight"] == 1.0).all()  # every detection drawn
    with pytest.raises(ValueError, match=r"\['owl'\] have no detections.*'robin', 'wren'"):
        sample_for_review(table, species=["owl", "wren"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_per_species": 0}, "n_per_species must be a positive integer, got 0"),
        ({"n_bins": 2.5}, "n_bins must be a positive integer, got 2.5"),
        ({"strategy": "random"}, r"strategy must be one of \['stratified', 'margin'\]"),
        ({"threshold": 1.0}, "threshold must be a number strictly between 0 and 1"),
        ({"min_confidence": -0.1}, r"min_confidence must be a number in \[0, 1\)"),
    ],
)
def test_sample_refuses_invalid_parameters(options, message):
    with pytest.raises(ValueError, match=message):
        sample_for_review(detections_of(["wren"], [0.5]), **options)


def test_sample_refuses_scores_it_cannot_bin():
    with pytest.raises(ValueError, match=r"detections\['confidence'\] holds nan \(row 1\)"):
        sample_for_review(detections_of(["wren", "wren"], [0.5, np.nan]))
    with pytest.raises(ValueError, match="missing the column"):
        sample_for_review(detections_of(["wren"], [0.5]).drop(columns="confidence"))


# -- the review folder ------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A review of detections at the start, middle and end of a 16 kHz file, and in a
    44.1 kHz stereo file at times that fall between samples."""
    root = tmp_path_factory.mktemp("review")
    mono = write_noise(root / "dawn.wav", 10.0, 16000, seed=1)
    stereo = write_noise(root / "dusk.wav", 6.0, 44100, channels=2, seed=2)
    sample = pd.DataFrame(
        {
            "file": [str(root / "dawn.wav")] * 3 + [str(root / "dusk.wav")] * 2,
            "start_s": [4.0, 0.0, 8.0, 3.3, 0.5],
            "end_s": [7.0, 3.0, 10.0, 4.4, 1.7],
            "label": ["wren", HOSTILE_LABEL, "owl", MATH_LABEL, "+robin"],
            "confidence": [0.9, 0.25, 0.5, 0.61, 0.125],
            "weight": [1.0, 2.5, 3.0, 1.5, 7.0],
            "stratum": [4, 0, 2, 3, 0],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for any of these rows
        page = export_review(sample, root / "out", context_seconds=2.0, verbose=0)
    return {"root": root, "page": page, "sample": sample, "mono": mono, "stereo": stereo}


def test_export_writes_the_review_folder(exported):
    out = exported["page"].parent
    assert exported["page"] == out / "index.html"
    names = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    ids = ["0001", "0002", "0003", "0004", "0005"]
    assert names == sorted(
        ["index.html", "review.csv"]
        + [f"clips/{i}.wav" for i in ids]
        + [f"spectrograms/{i}.png" for i in ids]
    )


def test_review_csv_has_exactly_the_columns_and_the_sample(exported):
    path = exported["page"].parent / "review.csv"
    assert path.read_text(encoding="utf-8").split("\n", 1)[0] == ",".join(REVIEW_COLUMNS)
    review = read_review(path)
    assert list(review.columns) == list(REVIEW_COLUMNS)
    sample = exported["sample"]
    for column in ("file", "start_s", "end_s", "label", "confidence", "weight", "stratum"):
        assert review[column].tolist() == sample[column].tolist(), column
    assert review["review_id"].tolist() == ["0001", "0002", "0003", "0004", "0005"]
    assert review["clip"].tolist() == [f"clips/{i}.wav" for i in review["review_id"]]
    assert review["spectrogram"].tolist() == [f"spectrograms/{i}.png" for i in review["review_id"]]
    assert (review["verdict"] == "").all()


def test_review_csv_neutralises_formulas_and_quotes_text(exported):
    records = list(csv.reader(io.StringIO((exported["page"].parent / "review.csv").read_text())))
    labels = [record[REVIEW_COLUMNS.index("label")] for record in records[1:]]
    # The csv module has removed the quotes; the formula mark stays for read_review.
    assert labels[1] == "'" + HOSTILE_LABEL
    assert labels[4] == "'+robin"
    assert labels[0] == "wren"
    assert all(len(record) == len(REVIEW_COLUMNS) for record in records)


def test_clips_hold_the_source_audio_around_the_window(exported):
    out, mono = exported["page"].parent, exported["mono"]
    review = read_review(out / "review.csv")
    rate = 16000
    # (clip start in the file, clip end, window in the clip) for the three 16 kHz rows.
    expected = [(2.0, 9.0, (2.0, 5.0)), (0.0, 5.0, (0.0, 3.0)), (6.0, 10.0, (2.0, 4.0))]
    for row, (start, stop, window) in zip(review.itertuples(), expected, strict=False):
        clip, clip_rate = read_int16(out / row.clip)
        assert clip_rate == rate
        np.testing.assert_array_equal(clip, mono[int(start * rate) : int(stop * rate)])
        assert (row.clip_start_s, row.clip_end_s) == pytest.approx(window, abs=1e-9)


def test_clips_of_a_stereo_file_are_its_mono_mix_at_its_rate(exported):
    out, stereo = exported["page"].parent, exported["stereo"]
    review = read_review(out / "review.csv")
    rate = 44100
    for row in review.iloc[3:].itertuples():
        clip, clip_rate = read_int16(out / row.clip)
        assert clip_rate == rate
        first = int(round(max(row.start_s - 2.0, 0.0) * rate))
        stop = int(round(min(row.end_s + 2.0, 6.0) * rate))
        mix = stereo[first:stop].astype(float).mean(axis=1)
        assert len(clip) == stop - first
        assert np.abs(clip - mix).max() <= 1.0  # rounding of the mean to 16 bits
        # The window's place in the clip, to the sample the clip starts on.
        assert row.clip_start_s == pytest.approx(row.start_s - first / rate, abs=1e-12)
        assert row.clip_end_s == pytest.approx(row.end_s - first / rate, abs=1e-12)


def test_spectrograms_are_small_pictures(exported):
    import matplotlib.image

    out = exported["page"].parent
    for path in sorted((out / "spectrograms").glob("*.png")):
        height, width, _ = matplotlib.image.imread(path).shape
        assert (width, height) == (480, 208)


def test_page_holds_the_rows_as_data_that_cannot_close_its_script(exported):
    text = exported["page"].read_text(encoding="utf-8")
    assert text.count("</script>") == 2  # the data block's and the page script's
    assert "<img src=x" not in text and "HYPERLINK" in text
    assert "http://" not in text and "https://" not in text  # nothing from the network
    block = re.search(r'<script type="application/json" id="review-data">(.*?)</script>', text)
    data = json.loads(block.group(1))
    assert data["header"] == ",".join(REVIEW_COLUMNS)
    assert [row["label"] for row in data["rows"]] == exported["sample"]["label"].tolist()
    # Each row's cells are review.csv's, verdict aside.
    records = list(csv.reader(io.StringIO((exported["page"].parent / "review.csv").read_text())))
    for row, record in zip(data["rows"], records[1:], strict=True):
        assert next(csv.reader(io.StringIO(",".join(row["cells"])))) == record[:-1]


def test_export_does_not_replace_an_existing_review(exported, tmp_path):
    out = tmp_path / "again"
    sample = exported["sample"].iloc[:1]
    export_review(sample, out, verbose=0)
    with pytest.raises(FileExistsError, match=r"review.csv: a review exists there"):
        export_review(sample, out, verbose=0)
    export_review(sample.iloc[:1], out, overwrite=True, verbose=0)


def test_export_skips_and_lists_the_rows_whose_audio_cannot_be_read(tmp_path):
    good = tmp_path / "good.wav"
    write_noise(good, 4.0, 16000)
    (tmp_path / "not_audio.wav").write_bytes(b"this is not audio" * 10)
    sample = pd.DataFrame(
        {
            "file": [str(good), str(tmp_path / "gone.wav"), str(tmp_path / "not_audio.wav"),
                     str(good)],
            "start_s": [1.0, 0.0, 0.0, 5.0],
            "end_s": [2.0, 3.0, 3.0, 8.0],
            "label": ["wren"] * 4,
            "confidence": [0.5] * 4,
        }
    )  # fmt: skip
    with pytest.warns(SkippedClipsWarning, match="3 of 4 detection") as caught:
        export_review(sample, tmp_path / "out", verbose=0)
    skipped = caught[0].message.skipped
    assert skipped["file"].tolist() == sample["file"][1:].tolist()
    assert "gone.wav" in skipped["error"][0] and "file not found" in skipped["error"][0]
    assert "cannot be decoded as audio" in skipped["error"][1]
    assert "starts at 5 s, after the end of the 4.000 s recording" in skipped["error"][2]
    review = read_review(tmp_path / "out" / "review.csv")
    assert review["file"].tolist() == [str(good)] and review["review_id"].tolist() == ["0001"]
    listed = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert listed["file"].tolist() == skipped["file"].tolist()
    assert listed["error"].tolist() == skipped["error"].tolist()


def test_clips_of_high_rate_recordings_are_resampled_to_96_khz(tmp_path):
    write_noise(tmp_path / "bat.wav", 1.0, 192000)
    sample = detections_of(["bat"], [0.7], file=str(tmp_path / "bat.wav")).assign(end_s=0.5)
    export_review(sample, tmp_path / "out", context_seconds=0.1, verbose=0)
    clip, rate = read_int16(tmp_path / "out" / "clips" / "0001.wav")
    assert rate == 96000 and len(clip) == int(0.6 * 96000)


def test_progress_bar_shows_unless_verbose_is_0(tmp_path, capsys):
    write_noise(tmp_path / "a.wav", 4.0, 16000)
    sample = detections_of(["wren"], [0.7], file=str(tmp_path / "a.wav"))
    export_review(sample, tmp_path / "quiet", verbose=0)
    assert capsys.readouterr().err == ""
    export_review(sample, tmp_path / "loud", verbose=1)
    assert "review clips" in capsys.readouterr().err


# -- review.csv -------------------------------------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labels=st.lists(texts, min_size=1, max_size=5), file=texts, verdict=st.sampled_from(
    ["", "yes", "no", "unsure"]))  # fmt: skip
def test_review_csv_reads_back_any_text(tmp_path_factory, labels, file, verdict):
    n = len(labels)
    review = pd.DataFrame(
        {
            "review_id": [f"{i:04d}" for i in range(1, n + 1)],
            "file": file,
            "start_s": np.arange(n) * 0.1,
            "end_s": np.arange(n) * 0.1 + 3,
            "label": labels,
            "confidence": np.linspace(0, 1, n),
            "weight": 1 / 3,
            "stratum": np.arange(n),
            "clip": "clips/0001.wav",
            "clip_start_s": 2.0,
            "clip_end_s": 5.0,
            "spectrogram": "spectrograms/0001.png",
            "verdict": verdict,
        }
    )
    path = tmp_path_factory.mktemp("csv") / "review.csv"
    path.write_text(_csv_lines(",".join(REVIEW_COLUMNS), _review_cells(review)), "utf-8")
    back = read_review(path)
    assert back["label"].astype(str).tolist() == labels  # plain integers come back as int
    assert back["file"].tolist() == [file] * n
    pd.testing.assert_frame_equal(
        back.drop(columns=["label", "file"]), review.drop(columns=["label", "file"])
    )


def write_review_csv(path, verdicts):
    lines = [",".join(REVIEW_COLUMNS)]
    for i, verdict in enumerate(verdicts, start=1):
        lines.append(
            f"{i:04d},a.wav,0.0,3.0,wren,0.5,1.0,0,clips/{i:04d}.wav,0.0,3.0,"
            f"spectrograms/{i:04d}.png,{verdict}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_review_normalises_verdicts(tmp_path):
    given_ = ["Y", "yes", " TRUE ", "1", "n", "No", "false", "0", "u", "Unsure", "", " "]
    path = write_review_csv(tmp_path / "review.csv", given_)
    assert read_review(path)["verdict"].tolist() == (
        ["yes"] * 4 + ["no"] * 4 + ["unsure"] * 2 + [""] * 2
    )


def test_read_review_refuses_a_verdict_it_cannot_read(tmp_path):
    path = write_review_csv(tmp_path / "review.csv", ["yes", "maybe"])
    with pytest.raises(ValueError) as raised:
        read_review(path)
    message = str(raised.value)
    assert str(path) in message and "data row 2" in message and "'0002'" in message
    assert "'maybe'" in message and "yes, no, unsure" in message


def test_read_review_names_a_missing_column_and_a_bad_number(tmp_path):
    path = tmp_path / "review.csv"
    path.write_text("review_id,file,verdict\n0001,a.wav,yes\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['start_s'"):
        read_review(path)
    write_review_csv(path, ["yes"])
    path.write_text(path.read_text().replace(",0.5,", ",high,"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"data row 1 \(review_id '0001'\): confidence is 'high'"):
        read_review(path)


# -- the command ------------------------------------------------------------------------


@pytest.fixture
def field(tmp_path, monkeypatch):
    """Two recordings and their per-file csv tables (and a run-record folder), with
    relative paths, as predict writes them from the folder it runs in."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "audio").mkdir()
    write_noise(tmp_path / "audio" / "dawn.wav", 30.0, 16000, seed=3)
    write_noise(tmp_path / "audio" / "dusk.wav", 30.0, 16000, seed=4)
    rng = np.random.default_rng(0)
    rows = []
    for file in ("audio/dawn.wav", "audio/dusk.wav"):
        for start in range(0, 27, 3):
            for label in ("wren", "owl"):
                rows.append((file, float(start), start + 3.0, label, rng.uniform(0.1, 1)))
    detections = pd.DataFrame(rows, columns=["file", "start_s", "end_s", "label", "confidence"])
    write_detections_per_file(detections, "tables", format="csv")
    # What predict's run records look like to a glob: to be left alone.
    (tmp_path / "tables" / ".birdaudio-records").mkdir()
    (tmp_path / "tables" / ".birdaudio-records" / "x.csv").write_text("not a table\n")
    return detections


def test_cli_review_writes_the_review_folder(field, capsys):
    code = main(["review", "tables", "--out", "review", "--per-species", "4", "--bins", "2",
                 "--seed", "3", "-q"])  # fmt: skip
    assert code == EXIT_OK
    out = capsys.readouterr().out
    assert "Detections: 36 in 2 table(s)" in out
    assert "wren: 4 of 18" in out and "owl: 4 of 18" in out
    assert "index.html" in out and "file://" in out
    review = read_review("review/review.csv")
    assert len(review) == 8
    expected = sample_for_review(field, n_per_species=4, n_bins=2, random_state=3)
    # The tables hold the detections as written: the command samples what the library does.
    assert sorted(zip(review["file"], review["start_s"], review["label"], strict=True)) == sorted(
        zip(expected["file"], expected["start_s"], expected["label"], strict=True)
    )
    for row in review.itertuples():
        assert soundfile.info(f"review/{row.clip}").duration > 0


def test_cli_review_options_select_species_and_strategy(field, capsys):
    write_detections(field, "all.selections.txt", format="raven")
    code = main(["review", "all.selections.txt", "--out", "margin", "--strategy", "margin",
                 "--threshold", "0.7", "--species", "owl", "--per-species", "3",
                 "--context", "0.5", "--min-confidence", "0.2", "-q"])  # fmt: skip
    assert code == EXIT_OK, capsys.readouterr().err
    review = read_review("margin/review.csv")
    assert set(review["label"]) == {"owl"} and len(review) == 3
    assert (review["weight"] == 1.0).all() and (review["confidence"] >= 0.2).all()
    owls = field[(field["label"] == "owl") & (field["confidence"] >= 0.2)]
    logit = np.log(owls["confidence"] / (1 - owls["confidence"]))
    nearest = (logit - np.log(0.7 / 0.3)).abs().nsmallest(3)
    assert sorted(review["confidence"]) == pytest.approx(
        sorted(owls["confidence"][nearest.index]), abs=1e-6
    )
    assert review["clip_start_s"].max() <= 0.5


def test_cli_review_says_which_audio_files_are_missing(field, capsys):
    field.assign(file="audio/moved.wav").pipe(write_detections, "moved.csv")
    assert main(["review", "moved.csv", "--out", "review", "-q"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "birdaudio review: error: 1 audio file(s) of the sampled detections not found" in err
    assert "audio/moved.wav" in err and "run review from the folder predict ran in" in err


def test_cli_review_lists_unreadable_audio_and_exits_3(field, capsys):
    with open("audio/dusk.wav", "r+b") as handle:  # cut the file short: it ends at ~1 s
        handle.truncate(44 + 2 * 16000)
    code = main(["review", "tables", "--out", "review", "--per-species", "50", "-q"])
    assert code == EXIT_PARTIAL
    err = capsys.readouterr().err
    assert "left out, their audio could not be read" in err and "audio/dusk.wav" in err
    review = read_review("review/review.csv")
    assert (review["file"] == "audio/dawn.wav").all() and len(review) == 18
    assert len(pd.read_csv("review/skipped.csv")) == 18


def test_cli_review_keeps_an_existing_review_unless_told(field, capsys):
    arguments = ["review", "tables", "--out", "review", "--per-species", "1", "-q"]
    assert main(arguments) == EXIT_OK
    assert main(arguments) == EXIT_ERROR
    assert "a review exists there" in capsys.readouterr().err
    assert main([*arguments, "--overwrite"]) == EXIT_OK


# -- the page, in a browser -------------------------------------------------------------


def chromium_driver(profile, downloads):
    """Debian's chromium, headless, driven by selenium; the test skips when it is absent."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip(
            "selenium is not installed: pip install 'selenium>=4.20' (in the dev extra) to "
            "run the browser test of the review page"
        )
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = [name for name, path in (("chromium", browser), ("chromedriver", driver))
                   if path is None]  # fmt: skip
        pytest.skip(
            f"{' and '.join(missing)} not found: install Debian's browser with 'apt-get "
            "install chromium chromium-driver' (make test-all does when it runs as root) to run "
            "the browser test of the review page"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    # The prefs suffice with chromium 156's new headless mode; older ones need this.
    chrome.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    return chrome


def assert_no_alert(driver):
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018


@pytest.mark.slow
def test_review_page_in_a_browser(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_noise(tmp_path / HOSTILE_FILE, 12.0, 16000, seed=5)
    write_noise(tmp_path / "quiet.wav", 12.0, 22050, seed=6)
    labels = [HOSTILE_LABEL, "wren", "owl", "a,b"]
    sample = pd.DataFrame(
        {
            "file": [HOSTILE_FILE, "quiet.wav", HOSTILE_FILE, "quiet.wav"],
            "start_s": [0.0, 3.0, 6.0, 9.0],
            "end_s": [3.0, 6.0, 9.0, 12.0],
            "label": labels,
            "confidence": [0.95, 0.5, 0.3, 0.125],
            "weight": [1.0, 2.0, 3.5, 1 / 3],
            "stratum": [4, 2, 1, 0],
        }
    )
    page = export_review(sample, "review", verbose=0).resolve()
    written = read_review(page.parent / "review.csv")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chromium_driver(tmp_path / "profile", downloads)
    try:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        driver.get(page.as_uri())
        wait = WebDriverWait(driver, 15)
        cards = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card"))
        assert len(cards) == 4
        assert_no_alert(driver)
        # Data is text: the hostile label is shown as it is, and made no element.
        shown = [e.get_attribute("textContent") for e in driver.find_elements(By.CSS_SELECTOR,
                 ".card .label")]  # fmt: skip
        assert shown == labels
        assert driver.find_elements(By.CSS_SELECTOR, ".card .label")[0].text == HOSTILE_LABEL
        assert not driver.find_elements(By.CSS_SELECTOR, 'img[src="x"]')
        assert HOSTILE_FILE in cards[0].find_element(By.CSS_SELECTOR, ".where").text
        # The clips and spectrograms load from the folder (file://, relative paths).
        wait.until(lambda d: d.execute_script(
            "return [...document.images].every(i => i.complete && i.naturalWidth > 0) && "
            "[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)"))  # fmt: skip
        durations = driver.execute_script(
            "return [...document.querySelectorAll('audio')].map(a => a.duration)"
        )
        assert durations == pytest.approx([5.0, 7.0, 7.0, 5.0], abs=0.01)
        # Only the page's script runs: an inline handler added later is blocked (CSP).
        driver.execute_script(
            "window.fired = false; const box = document.createElement('div');"
            'box.innerHTML = \'<img src="x" onerror="window.fired = true">\';'
            "document.body.appendChild(box);"
        )
        time.sleep(0.3)
        assert driver.execute_script("return window.fired") is False

        body = driver.find_element(By.TAG_NAME, "body")
        # y on card 1, n on card 2 (each moves on), j skips card 3, u on card 4; then back
        # twice to card 2 and y again, which moves on to card 3.
        for key in "ynjukky":
            body.send_keys(key)
        current = driver.find_elements(By.CSS_SELECTOR, ".card.current")
        assert [card.get_attribute("id") for card in current] == ["card-2"]
        badges = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".card .verdict")]
        assert badges == ["yes", "yes", "not reviewed", "unsure"]
        assert driver.find_element(By.ID, "progress").text == "3 of 4 reviewed"

        driver.find_element(By.ID, "save").click()
        saved = downloads / "review.csv"
        WebDriverWait(driver, 15).until(
            lambda _: saved.is_file() and not list(downloads.glob("*.crdownload"))
        )
        # Verdicts survive a reload (kept in the browser until saved).
        driver.refresh()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 4)
        badges = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".card .verdict")]
        assert badges == ["yes", "yes", "not reviewed", "unsure"]
        assert_no_alert(driver)
    finally:
        driver.quit()

    reviewed = read_review(saved)
    assert reviewed["verdict"].tolist() == ["yes", "yes", "", "unsure"]
    pd.testing.assert_frame_equal(reviewed.drop(columns="verdict"), written.drop(columns="verdict"))
    # The saved file is review.csv, cell for cell, with the verdicts filled in.
    original = list(csv.reader(io.StringIO((page.parent / "review.csv").read_text("utf-8"))))
    filled = list(csv.reader(io.StringIO(saved.read_text("utf-8"))))
    assert filled == [original[0]] + [
        [*row[:-1], verdict] for row, verdict in zip(original[1:], ["yes", "yes", "", "unsure"],
                                                     strict=True)
    ]  # fmt: skip
    assert saved.read_bytes().count(b"'=HYPERLINK") == 1
