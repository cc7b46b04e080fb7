"""Tests of the detection-table writers and readers: round trips, layouts, atomicity, errors."""

import csv
import io
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

from sklearn_birdaudio import table_files, table_writers, tables, text_cells
from sklearn_birdaudio.table_files import table_path_for, write_detections_per_file
from sklearn_birdaudio.tables import (
    COLUMNS,
    FORMATS,
    RAVEN_COLUMNS,
    read_detections,
    write_detections,
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
    assert column["Species"] == make_detections()["label"].tolist()
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


def path_hash(audio_file: str) -> str:
    """The documented hash in a table name: 4-byte BLAKE2b of the file's absolute path."""
    import hashlib

    absolute = os.path.abspath(audio_file).replace(os.sep, "/")
    return hashlib.blake2b(absolute.encode(), digest_size=4).hexdigest()


def test_per_file_tables_of_files_sharing_a_stem_do_not_overwrite(tmp_path):
    # A file whose stem is x/rec.wav's hashed one gets a hash too.
    name_taker = f"rec-{path_hash('x/rec.wav')}.wav"
    detections = pd.DataFrame(
        {
            "file": ["y/rec.wav", "x/rec.wav", name_taker],
            "start_s": [0.0, 1.0, 2.0],
            "end_s": [3.0, 4.0, 5.0],
            "label": ["from y", "from x", "from the name taker"],
            "confidence": [0.1, 0.2, 0.3],
        }
    )
    paths = write_detections_per_file(detections, tmp_path, format="csv")
    assert [path.name for path in paths] == [
        f"rec-{path_hash('y/rec.wav')}.birdaudio.csv",
        f"rec-{path_hash('x/rec.wav')}.birdaudio.csv",
        f"rec-{path_hash('x/rec.wav')}-{path_hash(name_taker)}.birdaudio.csv",
    ]
    for path, (_, row) in zip(paths, detections.iterrows(), strict=True):
        assert read_detections(path)["label"].tolist() == [row["label"]]
    for path, audio_file in zip(paths, detections["file"], strict=True):
        assert (
            table_path_for(audio_file, tmp_path, format="csv", audio_files=detections["file"])
            == path
        )


def test_table_path_for_ignores_order_case_and_working_folder_and_counts_failed_files(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    run = ["a/rec.wav", "B/Rec.flac", "song.wav"]
    expected = [
        f"rec-{path_hash('a/rec.wav')}.birdaudio.labels.txt",
        f"Rec-{path_hash('B/Rec.flac')}.birdaudio.labels.txt",
        "song.birdaudio.labels.txt",
    ]
    absolute = [str(tmp_path / file) for file in run]  # the same files, spelt otherwise
    for files, audio_files in ((run, run), (run, run[::-1]), (absolute, absolute)):
        paths = [
            table_path_for(file, "t", format="audacity", audio_files=audio_files) for file in files
        ]
        assert [path.name for path in paths] == expected
    assert table_path_for("a/rec.wav", "t", format="audacity").name == "rec.birdaudio.labels.txt"
    # A file that could not be read still counts: the names are those of the whole run.
    detections = make_detections()
    detections.attrs["errors"] = [{"file": "a.wav", "error": "unreadable"}]
    paths = write_detections_per_file(detections, tmp_path)
    assert paths[0].name == f"a-{path_hash('dawn/a.wav')}.birdaudio.selections.txt"
    audio_files = [*detections.attrs["durations"], "a.wav"]
    assert table_path_for("dawn/a.wav", tmp_path, audio_files=audio_files) == paths[0]


def test_per_file_names_are_still_importable_from_tables():
    from sklearn_birdaudio.tables import table_path_for as from_tables

    assert from_tables is table_files.table_path_for
    assert tables.write_detections_per_file is table_files.write_detections_per_file
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        tables.no_such_name  # noqa: B018


def test_per_file_tables_refuse_one_file_under_two_spellings(tmp_path):
    with pytest.raises(ValueError, match=r"would share the table name 'rec-.*same file given"):
        table_path_for("x/rec.wav", tmp_path, audio_files=["x/rec.wav", "x/../x/rec.wav"])


# Atomic writes


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_failed_write_leaves_existing_table_and_no_temporary_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "run.csv"
    path.write_text("previous table\n", encoding="utf-8")

    def fail(*args, **kwargs):
        raise OSError(f"simulated {failing} failure")

    monkeypatch.setattr(table_writers.os, failing, fail)
    with pytest.raises(OSError, match=f"simulated {failing}"):
        write_detections(make_detections(), path)
    assert path.read_text(encoding="utf-8") == "previous table\n"
    assert [entry.name for entry in tmp_path.iterdir()] == ["run.csv"]


def test_interrupted_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(table_writers.os, "fsync", interrupt)
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


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("column", ["label", "file"])
def test_text_that_utf8_cannot_encode_is_refused_before_writing(tmp_path, format, column):
    detections = make_detections().iloc[3:]
    detections[column] = ["norcar", "lone \udc80 surrogate"]
    message = re.escape(f"detections[{column!r}] holds 'lone \\udc80 surrogate', which UTF-8")
    with pytest.raises(ValueError, match=message):
        write_detections(detections, tmp_path / "run.txt", format=format)
    with pytest.raises(ValueError, match=message):
        write_detections_per_file(detections, tmp_path, format=format)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("low_freq", "high_freq"), [(500, 100), (-1, 100), (0, np.inf)])
def test_invalid_frequency_band_is_rejected(tmp_path, low_freq, high_freq):
    with pytest.raises(ValueError, match="0 <= low_freq < high_freq"):
        write_detections(
            make_detections(),
            tmp_path / "r.txt",
            format="raven",
            low_freq=low_freq,
            high_freq=high_freq,
        )


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


# Hostile text: escaping, formula injection, tables of other tools

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Written on purpose apart from the module's own list: C0 and C1 controls, DEL, and the
# Unicode line and paragraph separators (str.splitlines also breaks at \x0b, \x0c, \x1c-\x1e).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def raw_text(path: Path) -> str:
    """A table's text with its line endings as written (read_text would translate CR)."""
    return path.read_bytes().decode("utf-8")


# Where file names and labels are in the rows of each format (Audacity: "label;confidence").
TEXT_FIELDS = {
    "csv": {"file": 0, "label": 3},
    "raven": {"label": 7, "file": 9},
    "audacity": {"label": 2},
}


def written_rows(path: Path, format: str) -> list[list[str]]:
    """The rows of a table as written, without its header, parsed apart from read_detections:
    CSV with the csv module, the tab-separated formats split at line feeds and tabs only."""
    text = raw_text(path)
    if format == "csv":
        # csv before Python 3.11 refuses NUL, which is no formula start.
        return list(csv.reader(io.StringIO(text.replace("\x00", "\ufffd"), newline="")))[1:]
    assert text.endswith("\n") or not text
    header_lines = 1 if format == "raven" else 0
    return [line.split("\t") for line in text.split("\n")[header_lines:-1]]


@pytest.mark.parametrize(
    ("label", "written"),
    [
        ("am\terob", "'am\\terob"),
        ("am\nerob\r", "'am\\nerob\\r"),
        ("C:\\birds\tx\x0b\x85\u2028", "'C:\\\\birds\\tx\\x0b\\x85\\u2028"),
        ("'quoted'", "''quoted'"),
        ("-1 dB", "'-1 dB"),
    ],
)
@pytest.mark.parametrize("format", ["raven", "audacity"])
def test_tab_formats_escape_text_reversibly(tmp_path, format, label, written):
    detections = make_detections(labels=["amerob", label, "x", "norcar", label])
    paths = write_detections_per_file(detections, tmp_path, format=format)
    label_fields = [row[TEXT_FIELDS[format]["label"]] for row in written_rows(paths[0], format)]
    assert label_fields[:2] == (
        ["amerob", written] if format == "raven" else ["amerob;0.910000", f"{written};0.400000"]
    )
    assert_same_detections(read_detections(paths[2], file="dusk/b.flac"), detections.iloc[3:])
    assert_same_detections(read_detections(paths[0], file="dawn/a.wav"), detections.iloc[:3])


def test_raven_file_names_round_trip_and_plain_ones_stay_as_they_are(tmp_path):
    files = ["odd\tname.wav", "C:\\new\\test.wav", "=cmd|' /C calc'!A0", "ordinary.wav"]
    detections = make_detections().iloc[:4].assign(file=files)
    path = write_detections(detections, tmp_path / "run.txt", format="raven")
    # A Windows path is written as it is, so that Raven finds the file it names.
    assert [row[9] for row in raven_rows(path)] == [
        "'odd\\tname.wav",
        "C:\\new\\test.wav",
        "'=cmd|' /C calc'!A0",
        "ordinary.wav",
    ]
    assert_same_detections(read_detections(path), detections)


@pytest.mark.parametrize("format", FORMATS)
def test_formula_label_reads_back_unchanged(tmp_path, format):
    labels = ['=HYPERLINK("http://example.com/?q=1,2","click")', "+1", "@SUM(A1)"]
    detections = make_detections(labels=[*labels, "x", "y"]).iloc[:3]
    path = write_detections(detections, tmp_path / f"a.{format}", format=format)
    label_cells = [row[TEXT_FIELDS[format]["label"]] for row in written_rows(path, format)]
    starts = [cell.startswith(f"'{label}") for cell, label in zip(label_cells, labels, strict=True)]
    assert starts == [True] * 3
    assert_same_detections(read_detections(path, format=format, file="dawn/a.wav"), detections)


def test_csv_quotes_control_characters_and_reads_them_back(tmp_path):
    detections = make_detections(labels=["a\rb", "a\r\nb", "\x00\x1e\x85", "x\u2028y", 'say "hi"'])
    detections["file"] = ["\r", "dawn\n/a.wav", "\r", "=x,y", "=x,y"]
    path = write_detections(detections, tmp_path / "run.csv")
    assert raw_text(path) == (
        "file,start_s,end_s,label,confidence\n"
        '"\'\r",0.0,5.0,"a\rb",0.91\n'
        '"dawn\n/a.wav",0.0,5.0,"a\r\nb",0.4\n'
        '"\'\r",3.0,8.0,"\x00\x1e\x85",0.123456789\n'
        '"\'=x,y",5.0,10.0,"x\u2028y",0.6666666666666666\n'
        '"\'=x,y",10.0,12.5,"say ""hi""",0.75\n'
    )
    assert_same_detections(read_detections(path), detections, atol=0)


def test_tables_of_other_tools_keep_crlf_backslashes_and_line_separators(tmp_path):
    # Raven on Windows: CR LF line ends, a byte-order mark, backslashes in Begin Path.
    raven = tmp_path / "rec.selections.txt"
    raven.write_bytes(
        "\ufeffSelection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tSpecies\tConfidence"
        "\tBegin Path\r\n1\tSpectrogram 1\t1\t1.5\t4.0\tamerob\t0.5\tC:\\new\\rec.wav\r\n"
        "2\tSpectrogram 1\t1\t5\t6\t'C:\\path\\tail\t0.25\tC:\\new\\rec.wav\r\n".encode()
    )
    read_back = read_detections(raven)
    assert read_back["file"].tolist() == ["C:\\new\\rec.wav"] * 2
    # A leading ' is a mark wherever the table comes from: then "\t" is a tab, while "\p",
    # which starts no escape, stays as it is.
    assert read_back["label"].tolist() == ["amerob", "C:\\path\tail"]
    # An Audacity label may hold breaks that str.splitlines knows but Audacity does not.
    audacity = tmp_path / "rec.txt"
    audacity.write_bytes("0.0\t1.0\tam\u2028erob\x0c;0.5\r\n1.0\t2.0\tx\x1c;0.25\r\n".encode())
    read_back = read_detections(audacity, file="rec.wav")
    assert read_back["label"].tolist() == ["am\u2028erob\x0c", "x\x1c"]
    np.testing.assert_array_equal(read_back["confidence"], [0.5, 0.25])


@pytest.mark.parametrize("format", FORMATS)
def test_empty_and_missing_labels_read_back_as_empty_text(tmp_path, format):
    detections = make_detections(labels=["", None, np.nan, "x", ""])
    paths = write_detections_per_file(detections, tmp_path, format=format)
    read_back = read_detections(paths[0], format=format, file="dawn/a.wav")
    assert read_back["label"].tolist() == ["", "", ""]


def test_integer_labels_beyond_64_bits_stay_text(tmp_path):
    labels = ["99999999999999999999", "1", "2", "3", "4"]
    path = write_detections(make_detections(labels=labels), tmp_path / "run.csv")
    assert read_detections(path)["label"].tolist() == labels


def test_table_that_is_not_utf8_is_reported_with_its_name(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_bytes("0.0\t1.0\tamerob;0.5\n".encode("utf-16"))
    with pytest.raises(ValueError, match=r"rec\.txt: is not UTF-8 text"):
        read_detections(path)


# Properties: any detection table survives a round trip through every format; no text cell
# can start a formula; control characters are escaped or quoted.

# No digits: labels that are all plain integers come back as int (tested above).
LABELS = st.text(alphabet=string.ascii_letters + " ;-'\",éü", min_size=1, max_size=12)
FILES = ["site/a.wav", "other/a.wav", "array 0", "ñandú.flac"]
ORDINARY_FILES = st.just(FILES)
# Hostile text: formula starts, the mark, separators, quotes, backslashes, every kind of line
# break, NUL, a byte-order mark; or any text UTF-8 can encode (lone surrogates are refused,
# tested above); or a few whole cells. Empty text too.
HOSTILE_TEXT = st.one_of(
    st.text(st.sampled_from("=+-@'\t\r\n;,\"\\ \x00\x0b\x0c\x1c\x1e\x7f\x85\u2028\u2029\ufeffé1x")),
    st.text(st.characters(codec="utf-8")),
    st.sampled_from(["", "-1", "nan", "NA", "C:\\new\\t.wav", '=HYPERLINK("x")', "'=1+2"]),
)
# Per-file tables are named after the audio file's stem, which must make a file name (tested
# above): the hostile text is the folder part of these names, with one stem per file.
HOSTILE_FILES = st.lists(HOSTILE_TEXT, min_size=1, max_size=3, unique=True).map(
    lambda folders: [f"{folder}/rec{number}.wav" for number, folder in enumerate(folders)]
)


@st.composite
def detection_tables(draw, labels=LABELS, files=ORDINARY_FILES) -> pd.DataFrame:
    """Detections of some of ``files``, in file order, with ``attrs["durations"]`` or not."""
    file_names = draw(files)
    n_rows = draw(st.integers(0, 8))
    times = st.floats(0, 1e5, allow_nan=False)
    starts = draw(st.lists(times, min_size=n_rows, max_size=n_rows))
    lengths = draw(st.lists(st.floats(1e-3, 10), min_size=n_rows, max_size=n_rows))
    detections = pd.DataFrame(
        {
            "file": draw(st.lists(st.sampled_from(file_names), min_size=n_rows, max_size=n_rows)),
            "start_s": starts,
            "end_s": np.add(starts, lengths),
            "label": draw(st.lists(labels, min_size=n_rows, max_size=n_rows)),
            "confidence": draw(st.lists(st.floats(0, 1), min_size=n_rows, max_size=n_rows)),
        }
    )
    detections["file_order"] = detections["file"].map(file_names.index)
    detections = detections.sort_values(["file_order", "start_s"], kind="stable").drop(
        columns="file_order"
    )
    if draw(st.booleans()):
        last_ends = detections.groupby("file")["end_s"].max()
        detections.attrs["durations"] = {
            file: last_ends.get(file, 0.0) + draw(st.floats(0, 100)) for file in file_names
        }
    return detections.reset_index(drop=True)


def as_read_back(detections: pd.DataFrame) -> pd.DataFrame:
    """One table's detections as read_detections returns them: labels that are all plain
    integers of 64 bits come back as int."""
    labels = detections["label"].astype(str).tolist()
    if labels and all(
        re.fullmatch(r"-?(?:0|[1-9][0-9]*)", label) and -(2**63) <= int(label) < 2**63
        for label in labels
    ):
        labels = [int(label) for label in labels]
    return detections.assign(label=labels)


def assert_round_trip(detections: pd.DataFrame, folder: Path):
    """Every format, one table and per-file tables: read_detections gives back what was written."""
    first_file = detections["file"].head(1).tolist()
    for format in FORMATS:
        # A label track belongs to one audio file and does not name it.
        audacity = format == "audacity"
        combined = detections[detections["file"].isin(first_file)] if audacity else detections
        path = write_detections(combined, folder / f"all.{format}", format=format)
        file = [*first_file, None][0] if audacity else None
        read_back = read_detections(path, format=format, file=file)
        assert_same_detections(read_back, as_read_back(combined))
        paths = write_detections_per_file(detections, folder / format, format=format)
        files = list(detections.attrs.get("durations", dict.fromkeys(detections["file"])))
        assert len(paths) == len(set(paths)) == len(files)
        for path, file in zip(paths, files, strict=True):
            expected = as_read_back(detections[detections["file"] == file])
            assert_same_detections(read_detections(path, format=format, file=file), expected)
            if format != "audacity":  # Raven and CSV tables name their audio file themselves
                assert_same_detections(read_detections(path, format=format), expected)


@settings(max_examples=40, deadline=None)
@given(detections=detection_tables())
def test_round_trip_property(detections):
    # fsync makes each write wait for the disk; atomicity is tested above, formats here.
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(table_writers.os, "fsync"):
        assert_round_trip(detections, Path(folder))


@settings(max_examples=40, deadline=None)
@given(detections=detection_tables(labels=HOSTILE_TEXT, files=HOSTILE_FILES))
def test_any_text_round_trips_in_every_format(detections):
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(table_writers.os, "fsync"):
        assert_round_trip(detections, Path(folder))


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(HOSTILE_TEXT, min_size=1, max_size=6), files=HOSTILE_FILES)
def test_no_text_cell_starts_a_formula_and_controls_are_escaped_or_quoted(labels, files):
    detections = pd.DataFrame(
        {
            "file": [files[number % len(files)] for number in range(len(labels))],
            "start_s": 0.0,
            "end_s": 1.0,
            "label": labels,
            "confidence": 0.5,
        }
    )
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(table_writers.os, "fsync"):
        folder = Path(folder)
        paths = {
            "csv": [write_detections(detections, folder / "run.csv")],
            "raven": [write_detections(detections, folder / "run.txt", format="raven")],
            "audacity": write_detections_per_file(detections, folder, format="audacity"),
        }
        for format, n_fields in [("csv", 5), ("raven", len(RAVEN_COLUMNS)), ("audacity", 3)]:
            rows = [row for path in paths[format] for row in written_rows(path, format)]
            assert len(rows) == len(detections)
            assert {len(row) for row in rows} == {n_fields}
            cells = [row[field] for row in rows for field in TEXT_FIELDS[format].values()]
            assert not [cell for cell in cells if cell.startswith(FORMULA_STARTS)]
            text = "".join(raw_text(path) for path in paths[format])
            if format == "csv":  # control characters only inside quoted cells
                text = re.sub(r'"(?:[^"]|"")*"', "", text)
            assert not CONTROL.search(text.replace("\n", "").replace("\t", ""))


@settings(max_examples=30, deadline=None)
@given(
    detections=detection_tables(labels=st.text(string.ascii_letters + ' ;,"é', min_size=1)),
    numbers=st.lists(st.floats(), min_size=24, max_size=24),
)
def test_csv_of_ordinary_text_is_what_pandas_writes(detections, numbers):
    # Any float, NaN and infinities included, where pandas writes the shortest exact decimal.
    n_rows = len(detections)
    detections["start_s"] = numbers[:n_rows]
    detections["confidence"] = numbers[n_rows : 2 * n_rows]
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(table_writers.os, "fsync"):
        path = write_detections(detections, Path(folder) / "run.csv")
        assert raw_text(path) == detections.to_csv(index=False, lineterminator="\n")


# The text-cell API (sklearn_birdaudio.text_cells), which every table writer and reader uses.

ANY_TEXT = st.text(st.characters(codec="utf-8"))


def parsed_csv_cell(cell: str) -> str:
    """The value of one cell as the csv module reads it (a second cell keeps a row of one
    empty cell from reading as an empty row)."""
    [[value, _]] = csv.reader(io.StringIO(f"{cell},x\n", newline=""))
    return value


@given(text=st.one_of(HOSTILE_TEXT, ANY_TEXT))
def test_any_text_round_trips_through_a_csv_cell_that_starts_no_formula(text):
    value = parsed_csv_cell(text_cells.csv_cell(text))
    assert text_cells.csv_cell_text(value) == text
    assert not value.startswith(FORMULA_STARTS)


@given(text=st.one_of(HOSTILE_TEXT, ANY_TEXT))
def test_any_text_round_trips_through_a_tab_cell_without_controls(text):
    field = text_cells.tab_cell(text)
    assert text_cells.tab_cell_text(field) == text
    assert not field.startswith(FORMULA_STARTS)
    assert not CONTROL.search(field)
    if not text.startswith((*FORMULA_STARTS, "'")) and not CONTROL.search(text):
        assert field == text  # ordinary text, backslashes included, is written as it is


@given(text=st.one_of(HOSTILE_TEXT, ANY_TEXT))
def test_spreadsheet_safe_text_starts_no_formula_and_loses_its_mark_when_read(text):
    safe = text_cells.spreadsheet_safe(text)
    assert not safe.startswith(FORMULA_STARTS)
    assert safe in (text, "'" + text)
    assert text_cells.csv_cell_text(safe) == text


def test_texts_and_number_cells_write_what_pandas_writes():
    values = pd.Series(["wren", None, np.nan, 3, "=1"])
    assert text_cells.texts(values) == ["wren", "", "", "3", "=1"]
    numbers = pd.Series([0.1, 1 / 3, np.nan, -0.0, 1e300, np.inf])
    # A second column: pandas quotes the empty cell of a one-column row.
    written = pd.DataFrame({"x": numbers, "y": 0}).to_csv(index=False).splitlines()[1:]
    expected = [line.removesuffix(",0") for line in written]
    assert text_cells.csv_number_cells(numbers).tolist() == expected


@given(labels=st.lists(st.one_of(st.integers(-(2**70), 2**70).map(str), ANY_TEXT), max_size=5))
def test_labels_from_text_gives_int_only_when_every_label_is_a_plain_64_bit_integer(labels):
    read = text_cells.labels_from_text(pd.Series(labels, dtype=object)).tolist()
    plain = [re.fullmatch(r"-?(?:0|[1-9][0-9]*)", label) for label in labels]
    if labels and all(plain) and all(-(2**63) <= int(label) < 2**63 for label in labels):
        assert read == [int(label) for label in labels]
    else:
        assert read == labels
