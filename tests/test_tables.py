"""Tests of the detection-table writers and readers: round trips, layouts, atomicity, errors."""

import os
import re
import string
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_birdaudio import tables
from sklearn_birdaudio.tables import (
    COLUMNS,
    RAVEN_COLUMNS,
    read_detections,
    table_path_for,
    write_detections,
    write_detections_per_file,
)

RAVEN_HEADER = (
    "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)"
    "\tSpecies\tConfidence\tBegin Path\tFile Offset (s)"
)


def make_detections(labels=None) -> pd.DataFrame:
    """Three scored files, the middle one without detections; b.flac ends on a partial
    window (10.0 to 12.5 s); one label holds a ';' and one a space."""
    detections = pd.DataFrame(
        {
            "file": ["dawn/a.wav", "dawn/a.wav", "dawn/a.wav", "dusk/b.flac", "dusk/b.flac"],
            "start_s": [0.0, 0.0, 3.0, 5.0, 10.0],
            "end_s": [5.0, 5.0, 8.0, 10.0, 12.5],
            "label": labels or ["amerob", "Turdus migratorius", "amerob", "norcar;f", "amerob"],
            "confidence": [0.91, 0.4, 0.123456789, 2 / 3, 0.75],
        }
    )
    detections.attrs["durations"] = {"dawn/a.wav": 9.5, "dawn/quiet.wav": 7.25, "dusk/b.flac": 12.5}
    detections.attrs["errors"] = [{"file": "broken.wav", "error": "truncated"}]
    detections.attrs["frequency_range"] = (20.0, 15000.0)
    return detections


def assert_same_detections(actual: pd.DataFrame, expected: pd.DataFrame, atol=1e-6):
    assert list(actual.columns) == list(COLUMNS)
    assert actual["file"].tolist() == expected["file"].tolist()
    assert actual["label"].tolist() == expected["label"].tolist()
    for column in ("start_s", "end_s", "confidence"):
        np.testing.assert_allclose(actual[column], expected[column], rtol=0, atol=atol)


def raven_rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]


# Round trips


def test_csv_round_trip_is_exact(tmp_path):
    detections = make_detections()
    path = write_detections(detections, tmp_path / "run.csv")
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(COLUMNS)
    assert_same_detections(read_detections(path), detections, atol=0)


@pytest.mark.parametrize("format", ["csv", "raven"])
def test_combined_round_trip(tmp_path, format):
    detections = make_detections()
    path = write_detections(detections, tmp_path / f"run.{format}.txt", format=format)
    assert_same_detections(read_detections(path, format=format), detections)


def test_raven_combined_round_trip_with_inferred_format(tmp_path):
    detections = make_detections()
    path = write_detections(detections, tmp_path / "run.selections.txt", format="raven")
    assert_same_detections(read_detections(path), detections)


def test_audacity_round_trip_and_layout(tmp_path):
    detections = make_detections().iloc[3:]
    path = write_detections(detections, tmp_path / "b.txt", format="audacity")
    assert path.read_text(encoding="utf-8").splitlines() == [
        "5.000000\t10.000000\tnorcar;f;0.666667",
        "10.000000\t12.500000\tamerob;0.750000",
    ]
    assert_same_detections(read_detections(path, file="dusk/b.flac"), detections)


def test_audacity_file_defaults_to_table_stem(tmp_path):
    detections = make_detections().iloc[3:]
    path = write_detections(detections, tmp_path / "b.birdaudio.labels.txt", format="audacity")
    assert set(read_detections(path)["file"]) == {"b"}


@pytest.mark.parametrize("format", ["raven", "audacity", "csv"])
def test_per_file_round_trip(tmp_path, format):
    detections = make_detections()
    paths = write_detections_per_file(detections, tmp_path, format=format)
    files = list(detections.attrs["durations"])
    read_back = pd.concat(
        [
            read_detections(path, file=audio_file)
            for path, audio_file in zip(paths, files, strict=True)
        ]
    )
    assert_same_detections(read_back, detections)
    if format != "audacity":  # Raven and CSV tables name their audio file themselves
        read_back = pd.concat([read_detections(path) for path in paths])
        assert_same_detections(read_back, detections)


@pytest.mark.parametrize("format", ["raven", "audacity", "csv"])
def test_integer_labels_come_back_as_integers(tmp_path, format):
    detections = make_detections(labels=[3, 0, 12, 3, 7]).iloc[:3]
    path = write_detections(detections, tmp_path / f"a.{format}", format=format)
    read_back = read_detections(path, format=format, file="dawn/a.wav")
    assert read_back["label"].tolist() == [3, 0, 12]
    assert pd.api.types.is_integer_dtype(read_back["label"])


def test_integer_looking_but_not_plain_labels_stay_text(tmp_path):
    detections = make_detections(labels=["3", "03", "12", "3", "7"])
    read_back = read_detections(write_detections(detections, tmp_path / "run.csv"))
    assert read_back["label"].tolist() == ["3", "03", "12", "3", "7"]


# Raven layout


def test_raven_combined_layout(tmp_path):
    path = write_detections(make_detections(), tmp_path / "run.txt", format="raven")
    assert path.read_text(encoding="utf-8").splitlines()[0] == RAVEN_HEADER
    rows = raven_rows(path)
    column = {name: [row[i] for row in rows] for i, name in enumerate(RAVEN_COLUMNS)}
    assert column["Selection"] == ["1", "2", "3", "4", "5"]
    assert set(column["View"]) == {"Spectrogram 1"} and set(column["Channel"]) == {"1"}
    # b.flac plays after a.wav (9.5 s) and quiet.wav (7.25 s): its times shift by 16.75 s.
    offset_b = 9.5 + 7.25
    expected_begin = [0.0, 0.0, 3.0, 5.0 + offset_b, 10.0 + offset_b]
    expected_end = [5.0, 5.0, 8.0, 10.0 + offset_b, 12.5 + offset_b]
    assert column["Begin Time (s)"] == [f"{time:.6f}" for time in expected_begin]
    assert column["End Time (s)"] == [f"{time:.6f}" for time in expected_end]
    assert column["File Offset (s)"] == [
        "0.000000",
        "0.000000",
        "3.000000",
        "5.000000",
        "10.000000",
    ]
    assert column["Begin Path"] == make_detections()["file"].tolist()
    assert column["Confidence"][3] == "0.666667"
    assert set(column["Low Freq (Hz)"]) == {"20.0"} and set(column["High Freq (Hz)"]) == {"15000.0"}


def test_raven_rounding_errors_do_not_add_up(tmp_path):
    # Times that fall between six-decimal steps: Begin, End and File Offset each round by up
    # to 5e-7, and end_s = File Offset + End - Begin must not sum those errors (1.5e-6 here).
    detections = pd.DataFrame(
        {
            "file": ["b.wav"],
            "start_s": [0.3813315],
            "end_s": [0.5858525],
            "label": ["amerob"],
            "confidence": [0.5],
        }
    )
    detections.attrs["durations"] = {"a.wav": 0.942519, "b.wav": 1.0}
    path = write_detections(detections, tmp_path / "run.txt", format="raven")
    assert_same_detections(read_detections(path), detections, atol=5.1e-7)


def test_raven_frequency_arguments_and_default(tmp_path):
    detections = make_detections()
    path = write_detections(detections, tmp_path / "a.txt", format="raven", high_freq=12000)
    assert {(row[5], row[6]) for row in raven_rows(path)} == {("20.0", "12000.0")}
    del detections.attrs["frequency_range"]
    path = write_detections(detections, tmp_path / "b.txt", format="raven")
    assert {(row[5], row[6]) for row in raven_rows(path)} == {("0.0", "16000.0")}


def test_raven_timeline_without_durations_uses_last_ends(tmp_path):
    detections = make_detections()
    detections.attrs.clear()
    path = write_detections(detections, tmp_path / "run.txt", format="raven")
    # Unknown durations: a.wav lasts until its last end (8.0 s); quiet.wav is unknown.
    assert [row[3] for row in raven_rows(path)][3:] == ["13.000000", "18.000000"]
    assert_same_detections(read_detections(path), detections)


def test_raven_table_without_path_and_offset_reads_times_within_the_file(tmp_path):
    path = tmp_path / "rec.birdaudio.selections.txt"
    path.write_text(
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tSpecies\tConfidence\n"
        "1\tSpectrogram 1\t1\t1.5\t4.0\tamerob\t0.5\n",
        encoding="utf-8",
    )
    expected = pd.DataFrame(
        {
            "file": ["rec"],
            "start_s": [1.5],
            "end_s": [4.0],
            "label": ["amerob"],
            "confidence": [0.5],
        }
    )
    assert_same_detections(read_detections(path), expected)


# Per-file tables


def test_per_file_names_and_header_only_table_for_file_without_detections(tmp_path):
    detections = make_detections()
    paths = write_detections_per_file(detections, tmp_path / "tables")
    assert [path.name for path in paths] == [
        "a.birdaudio.selections.txt",
        "quiet.birdaudio.selections.txt",
        "b.birdaudio.selections.txt",
    ]
    assert sorted(path.name for path in (tmp_path / "tables").iterdir()) == sorted(
        path.name for path in paths
    )
    assert paths[1].read_text(encoding="utf-8") == RAVEN_HEADER + "\n"
    assert read_detections(paths[1]).empty
    # Single-file form: b.flac's begin times are within b.flac, selections numbered from 1.
    assert [(row[0], row[3], row[4]) for row in raven_rows(paths[2])] == [
        ("1", "5.000000", "10.000000"),
        ("2", "10.000000", "12.500000"),
    ]


@pytest.mark.parametrize(
    ("format", "empty_table"), [("csv", ",".join(COLUMNS) + "\n"), ("audacity", "")]
)
def test_per_file_empty_tables_in_other_formats(tmp_path, format, empty_table):
    paths = write_detections_per_file(make_detections(), tmp_path, format=format)
    assert paths[1].name == f"quiet.birdaudio.{tables.PER_FILE_SUFFIXES[format]}"
    assert paths[1].read_text(encoding="utf-8") == empty_table


def test_per_file_tables_of_files_sharing_a_stem_do_not_overwrite(tmp_path):
    detections = pd.DataFrame(
        {
            "file": ["y/rec.wav", "x/rec.wav", "rec_2.wav"],
            "start_s": [0.0, 1.0, 2.0],
            "end_s": [3.0, 4.0, 5.0],
            "label": ["from y", "from x", "from rec_2"],
            "confidence": [0.1, 0.2, 0.3],
        }
    )
    paths = write_detections_per_file(detections, tmp_path, format="csv")
    # x/rec.wav sorts first and keeps the stem; rec_2 is taken by rec_2.wav, so y gets rec_3.
    assert [path.name for path in paths] == [
        "rec_3.birdaudio.csv",
        "rec.birdaudio.csv",
        "rec_2.birdaudio.csv",
    ]
    for path, (_, row) in zip(paths, detections.iterrows(), strict=True):
        assert read_detections(path)["label"].tolist() == [row["label"]]
    for path, audio_file in zip(paths, detections["file"], strict=True):
        assert table_path_for(audio_file, tmp_path, "csv", audio_files=detections["file"]) == path


def test_table_path_for_ignores_order_and_case_and_counts_failed_files(tmp_path):
    # "B/Rec.flac" sorts before "a/rec.wav" (code-point order) and keeps the stem.
    run = ["a/rec.wav", "B/Rec.flac", "song.wav"]
    for audio_files in (run, run[::-1]):
        paths = [table_path_for(file, "t", "audacity", audio_files) for file in run]
        assert [path.name for path in paths] == [
            "rec_2.birdaudio.labels.txt",
            "Rec.birdaudio.labels.txt",
            "song.birdaudio.labels.txt",
        ]
    assert table_path_for("a/rec.wav", "t", "audacity").name == "rec.birdaudio.labels.txt"
    # A file that could not be read still holds its name, so names stay stable on a resume.
    detections = make_detections()
    detections.attrs["errors"] = [{"file": "a.wav", "error": "unreadable"}]
    paths = write_detections_per_file(detections, tmp_path)
    assert paths[0].name == "a_2.birdaudio.selections.txt"
    audio_files = [*detections.attrs["durations"], "a.wav"]
    assert table_path_for("dawn/a.wav", tmp_path, audio_files=audio_files) == paths[0]


# Atomic writes


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_failed_write_leaves_existing_table_and_no_temporary_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "run.csv"
    path.write_text("previous table\n", encoding="utf-8")

    def fail(*args, **kwargs):
        raise OSError(f"simulated {failing} failure")

    monkeypatch.setattr(tables.os, failing, fail)
    with pytest.raises(OSError, match=f"simulated {failing}"):
        write_detections(make_detections(), path)
    assert path.read_text(encoding="utf-8") == "previous table\n"
    assert [entry.name for entry in tmp_path.iterdir()] == ["run.csv"]


def test_interrupted_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tables.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_detections(make_detections(), tmp_path / "run.csv")
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_existing_table_and_creates_folders(tmp_path):
    path = tmp_path / "new" / "folder" / "run.csv"
    path.parent.mkdir(parents=True)
    path.write_text("previous table\n", encoding="utf-8")
    write_detections(make_detections(), path)
    assert path.read_text(encoding="utf-8").startswith("file,start_s")
    assert list(path.parent.iterdir()) == [path]
    mode = os.stat(path).st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


# Errors


def test_unknown_format_is_rejected_by_every_function(tmp_path):
    message = "format must be one of 'csv', 'raven', 'audacity'; got 'excel'"
    with pytest.raises(ValueError, match=message):
        write_detections(make_detections(), tmp_path / "run.xlsx", format="excel")
    with pytest.raises(ValueError, match=message):
        write_detections_per_file(make_detections(), tmp_path, format="excel")
    with pytest.raises(ValueError, match=message):
        table_path_for("a.wav", tmp_path, format="excel")
    path = write_detections(make_detections(), tmp_path / "run.csv")
    with pytest.raises(ValueError, match=message):
        read_detections(path, format="excel")
    assert [entry.name for entry in tmp_path.iterdir()] == ["run.csv"]


def test_missing_columns_are_named(tmp_path):
    detections = make_detections().drop(columns=["confidence", "end_s"])
    with pytest.raises(ValueError, match=r"missing the column\(s\) \['end_s', 'confidence'\]"):
        write_detections(detections, tmp_path / "run.csv")
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        write_detections(detections.to_numpy(), tmp_path / "run.csv")


def test_audacity_track_of_several_files_points_to_per_file_writer(tmp_path):
    with pytest.raises(ValueError, match=r"one audio file.*2 files.*write_detections_per_file"):
        write_detections(make_detections(), tmp_path / "run.txt", format="audacity")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("format", ["raven", "audacity"])
@pytest.mark.parametrize("label", ["am\terob", "am\nerob"])
def test_tab_or_line_break_in_label_is_rejected_before_writing(tmp_path, format, label):
    detections = make_detections(labels=["amerob", "amerob", label, "norcar", "amerob"])
    with pytest.raises(
        ValueError, match=re.escape(f"label {label!r} contains a tab or line break")
    ):
        write_detections_per_file(detections, tmp_path, format=format)
    assert list(tmp_path.iterdir()) == []


def test_tab_in_file_name_is_rejected_for_raven(tmp_path):
    detections = make_detections().assign(file="odd\tname.wav")
    with pytest.raises(ValueError, match=re.escape("file 'odd\\tname.wav' contains a tab")):
        write_detections(detections, tmp_path / "run.txt", format="raven")


@pytest.mark.parametrize(("low_freq", "high_freq"), [(500, 100), (-1, 100), (0, np.inf)])
def test_invalid_frequency_band_is_rejected(tmp_path, low_freq, high_freq):
    with pytest.raises(ValueError, match="0 <= low_freq < high_freq"):
        write_detections(make_detections(), tmp_path / "r.txt", "raven", low_freq, high_freq)


def test_malformed_tables_are_reported_with_file_and_line(tmp_path):
    labels = tmp_path / "rec.txt"
    labels.write_text("0.0\t1.0\tamerob;0.5\n2.0\tamerob\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"rec.txt, line 2: expected 'start<TAB>end<TAB>label'"):
        read_detections(labels)
    table = tmp_path / "run.csv"
    table.write_text("file,start_s,label\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"run.csv: lacks the column\(s\) \['end_s', 'confidence'\]"
    ):
        read_detections(table)
    table.write_text(",".join(COLUMNS) + "\na.wav,zero,1.0,amerob,0.5\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"run\.csv: column 'start_s' holds a value that is not"):
        read_detections(table)


def test_audacity_label_without_confidence_is_all_label(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_text("0.0\t1.0\tamerob;adult\n1.0\t2.0\tx;0.25\n\\\t100\t2000\n", encoding="utf-8")
    read_back = read_detections(path, file="rec.wav")
    assert read_back["label"].tolist() == ["amerob;adult", "x"]
    np.testing.assert_array_equal(read_back["confidence"], [np.nan, 0.25])


# Property: any detection table survives a round trip through every format.

# No digits: labels that are all plain integers come back as int (tested above).
LABELS = st.text(alphabet=string.ascii_letters + " ;-'\",éü", min_size=1, max_size=12)
FILES = ["site/a.wav", "other/a.wav", "array 0", "ñandú.flac"]


@st.composite
def detection_tables(draw) -> pd.DataFrame:
    n_rows = draw(st.integers(0, 8))
    times = st.floats(0, 1e5, allow_nan=False)
    starts = draw(st.lists(times, min_size=n_rows, max_size=n_rows))
    lengths = draw(st.lists(st.floats(1e-3, 10), min_size=n_rows, max_size=n_rows))
    detections = pd.DataFrame(
        {
            "file": draw(st.lists(st.sampled_from(FILES), min_size=n_rows, max_size=n_rows)),
            "start_s": starts,
            "end_s": np.add(starts, lengths),
            "label": draw(st.lists(LABELS, min_size=n_rows, max_size=n_rows)),
            "confidence": draw(st.lists(st.floats(0, 1), min_size=n_rows, max_size=n_rows)),
        }
    )
    detections["file_order"] = detections["file"].map(FILES.index)
    detections = detections.sort_values(["file_order", "start_s"], kind="stable").drop(
        columns="file_order"
    )
    if draw(st.booleans()):
        last_ends = detections.groupby("file")["end_s"].max()
        detections.attrs["durations"] = {
            file: last_ends.get(file, 0.0) + draw(st.floats(0, 100)) for file in FILES
        }
    return detections.reset_index(drop=True)


@settings(max_examples=40, deadline=None)
@given(detections=detection_tables())
def test_round_trip_property(detections):
    # fsync makes each write wait for the disk; atomicity is tested above, formats here.
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(tables.os, "fsync"):
        for format in ("csv", "raven"):
            path = write_detections(detections, Path(folder) / f"all.{format}", format=format)
            assert_same_detections(read_detections(path, format=format), detections)
        for format in ("csv", "raven", "audacity"):
            paths = write_detections_per_file(detections, Path(folder) / format, format=format)
            files = list(detections.attrs.get("durations", dict.fromkeys(detections["file"])))
            assert len(paths) == len(set(paths)) == len(files)
            read_back = [read_detections(p, file=f) for p, f in zip(paths, files, strict=True)]
            assert_same_detections(pd.concat([detections.iloc[:0], *read_back]), detections)
