"""Tests of ``birdaudio predict --resume``: run records, and what a resumed run redoes.

Every test compares with a run that was not interrupted: a resumed run must end with the
same tables (and records) byte for byte, having scored again exactly the files whose table
its record does not vouch for. ``detection.detect`` is spied on to see which files a run
asks to score.
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from test_classifier import SAMPLE_RATE, songs, tiny_pipeline

from sklearn_birdaudio import detection, make_birdsong, read_detections, save_model
from sklearn_birdaudio.cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, main
from sklearn_birdaudio.runs import RECORDS_FOLDER, record_path_for

# 1-s windows (the model's), scored 3 at a time, every (window, class) reported.
OPTIONS = ("--min-confidence", "0", "--batch-size", "3", "--format", "csv", "-q")
HASHED_NAME = re.compile(r"rec-[0-9a-f]{8}\.birdaudio\.csv")


class Crash(BaseException):
    """A kill: not an Exception, so nothing on the way catches it."""


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    X, Y, _ = songs(8, random_state=0)
    model = tiny_pipeline(max_epochs=1, validation_fraction=None, module__n_blocks=1)
    return save_model(model.fit(X, Y), tmp_path_factory.mktemp("model") / "tiny.safetensors")


def write_recordings(root: Path, seconds: dict[str, float], random_state: int) -> list[Path]:
    """Synthetic songs at ``root/<name>`` (WAV or FLAC by the name), one per entry."""
    paths = []
    for index, (name, duration) in enumerate(seconds.items()):
        (waveform,), _, _ = make_birdsong(
            1, n_classes=4, duration=duration, sample_rate=SAMPLE_RATE,
            random_state=random_state + index,
        )  # fmt: skip
        paths.append(root / name)
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(paths[-1], waveform, SAMPLE_RATE)
    return paths


@pytest.fixture(scope="module")
def reference(model_file, tmp_path_factory):
    """Four recordings (two share the stem "rec") and their tables from one plain run."""
    root = tmp_path_factory.mktemp("recordings")
    names = {"a/dawn.wav": 3.0, "a/noon.flac": 2.5, "x/rec.wav": 2.0, "y/rec.flac": 3.0}
    recordings = write_recordings(root, names, random_state=10)
    out = root / "reference"
    assert predict(model_file, out, *recordings) == EXIT_OK
    return recordings, out


@pytest.fixture
def scored(monkeypatch) -> list[str]:
    """The files the command asks detect() to score, in order."""
    calls, detect = [], detection.detect

    def spy(model, sources, *args, **kwargs):
        calls.extend(os.fspath(source) for source in sources)
        return detect(model, sources, *args, **kwargs)

    monkeypatch.setattr(detection, "detect", spy)
    return calls


def predict(model_file, out, *inputs, options=()) -> int:
    command = ["predict", str(model_file), *map(str, inputs), "--out", str(out), *OPTIONS]
    return main([*command, *options])


def contents(folder: Path) -> dict[str, bytes]:
    """Every table and record under ``folder`` (not temporary files), by relative path."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.endswith(".tmp")
    }


def tables_of(folder: Path) -> dict[str, Path]:
    """The audio file each table of ``folder`` says it holds, and the table."""
    tables = {}
    for table in folder.glob("*.birdaudio.csv"):
        record = json.loads(record_path_for(table).read_text())
        tables[record["source"]["path"]] = table
    return tables


# -- names ------------------------------------------------------------------------------


def test_files_sharing_a_stem_get_their_own_tables_and_records(
    model_file, reference, tmp_path, scored
):
    recordings, _ = reference
    x_rec, y_rec = (str(path) for path in recordings[2:])
    out = tmp_path / "tables"
    assert predict(model_file, out, x_rec, y_rec) == EXIT_OK
    tables = sorted(out.glob("*.birdaudio.csv"))
    assert len(tables) == 2 and all(HASHED_NAME.fullmatch(table.name) for table in tables)
    # The folder holds the tables and the records' hidden folder; no table pattern, even
    # recursive, lists a record.
    assert sorted(path.name for path in out.iterdir()) == sorted(
        [RECORDS_FOLDER, *(table.name for table in tables)]
    )
    assert sorted(out.rglob("*.csv")) == sorted(out.glob("*.birdaudio.*")) == tables
    by_source = tables_of(out)
    assert set(by_source) == {x_rec, y_rec}
    for source, table in by_source.items():
        rows = read_detections(table)
        assert set(rows["file"]) == {source} and len(rows) > 0
        record = json.loads(record_path_for(table).read_text())
        assert record["status"] == "complete" and record["table"]["name"] == table.name
        assert record["source"]["absolute_path"] == os.path.abspath(source)

    before = contents(out)
    by_source[y_rec].unlink()
    scored.clear()
    assert predict(model_file, out, x_rec, y_rec, options=["--resume"]) == EXIT_OK
    assert scored == [y_rec]
    assert contents(out) == before


def test_a_table_left_by_another_file_of_the_same_name_is_redone(
    model_file, reference, tmp_path, scored, capsys
):
    # Alone in its run, each of x/rec.wav and y/rec.flac is named rec.birdaudio.csv.
    recordings, _ = reference
    x_rec, y_rec = (str(path) for path in recordings[2:])
    fresh, out = tmp_path / "fresh", tmp_path / "tables"
    assert predict(model_file, fresh, x_rec) == EXIT_OK
    assert predict(model_file, out, y_rec) == EXIT_OK
    scored.clear()
    capsys.readouterr()
    assert predict(model_file, out, x_rec, options=["--resume"]) == EXIT_OK
    assert scored == [x_rec]
    assert "1 record of another source" in capsys.readouterr().out
    assert contents(out) == contents(fresh)
    # The two together: both are scored, under their own names.
    scored.clear()
    assert predict(model_file, out, x_rec, y_rec, options=["--resume"]) == EXIT_OK
    assert sorted(scored) == sorted([x_rec, y_rec])
    assert set(tables_of(out)) == {x_rec, y_rec}


def test_the_same_file_under_two_spellings_is_refused(model_file, reference, tmp_path, capsys):
    recordings, _ = reference
    dawn = recordings[0]
    twice = dawn.parent / ".." / dawn.parent.name / dawn.name  # a/../a/dawn.wav
    assert predict(model_file, tmp_path / "t", dawn, twice) == EXIT_ERROR
    error = capsys.readouterr().err.strip()
    assert "would share the table name" in error and "same file" in error


# -- what resume redoes -----------------------------------------------------------------


def edit_one_digit(path: Path) -> None:
    text = path.read_text()
    index = max(i for i, char in enumerate(text) if char.isdigit() and i < len(text) // 2)
    path.write_text(text[:index] + str((int(text[index]) + 1) % 10) + text[index + 1 :])


def touch(path: Path) -> None:
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))


def replace_audio(path: Path) -> None:
    (waveform,), _, _ = make_birdsong(1, n_classes=4, duration=4.0, sample_rate=SAMPLE_RATE,
                                      random_state=99)  # fmt: skip
    soundfile.write(path, waveform, SAMPLE_RATE)


DAMAGES = {  # what is done to one file's table, record or source; why resume redoes it
    "truncated-table": (lambda t, r, s: t.write_bytes(t.read_bytes()[: t.stat().st_size // 2]),
                        "table differs from its record"),
    "empty-table": (lambda t, r, s: t.write_bytes(b""), "table differs from its record"),
    "garbage-table": (lambda t, r, s: t.write_bytes(os.urandom(t.stat().st_size)),
                      "table differs from its record"),
    "edited-table": (lambda t, r, s: edit_one_digit(t), "table differs from its record"),
    "deleted-table": (lambda t, r, s: t.unlink(), "no table"),
    "deleted-record": (lambda t, r, s: r.unlink(), "no record"),
    "corrupt-record": (lambda t, r, s: r.write_bytes(r.read_bytes()[:-40]), "unreadable record"),
    "empty-record": (lambda t, r, s: r.write_text("{}"), "unreadable record"),
    "partial-record": (
        lambda t, r, s: r.write_text(r.read_text().replace('"complete"', '"partial"')),
        "partial",
    ),
    "touched-source": (lambda t, r, s: touch(s), "source changed"),
    "replaced-source": (lambda t, r, s: replace_audio(s), "source changed"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_resume_redoes_exactly_the_damaged_file(
    model_file, reference, tmp_path, scored, capsys, damage
):
    recordings, reference_out = reference
    damage_to, reason = DAMAGES[damage]
    if damage.endswith("-source"):  # on copies: the other tests share the recordings
        copies = tmp_path / "recordings"
        shutil.copytree(recordings[0].parents[1], copies, ignore=shutil.ignore_patterns("ref*"))
        recordings = [copies / path.relative_to(recordings[0].parents[1]) for path in recordings]
        reference_out = tmp_path / "reference"
        assert predict(model_file, reference_out, *recordings) == EXIT_OK
    out = tmp_path / "tables"
    shutil.copytree(reference_out, out)
    victim = str(recordings[1])
    table = tables_of(out)[victim]
    damage_to(table, record_path_for(table), recordings[1])
    if damage.endswith("-source"):  # the uninterrupted run on the files as they are now
        reference_out = tmp_path / "fresh"
        assert predict(model_file, reference_out, *recordings) == EXIT_OK
    scored.clear()
    capsys.readouterr()

    assert predict(model_file, out, *recordings, options=["--resume"]) == EXIT_OK
    assert scored == [victim]
    assert f"3 of 4 file(s) complete, skipped; 1 to score (1 {reason})" in capsys.readouterr().out
    assert contents(out) == contents(reference_out)


def test_resume_skips_everything_when_nothing_changed(model_file, reference, tmp_path, scored):
    recordings, reference_out = reference
    out = tmp_path / "tables"
    shutil.copytree(reference_out, out)
    assert predict(model_file, out, *recordings, options=["--resume"]) == EXIT_OK
    assert scored == []
    assert contents(out) == contents(reference_out)


def test_resume_redoes_tables_made_with_other_settings_or_another_model(
    model_file, reference, tmp_path, scored, capsys
):
    recordings, reference_out = reference
    out = tmp_path / "tables"
    shutil.copytree(reference_out, out)
    stricter = ["--resume", "--min-confidence", "0.5"]
    assert predict(model_file, out, *recordings, options=stricter) == EXIT_OK
    assert scored == [str(path) for path in recordings]
    assert "4 other settings" in capsys.readouterr().out
    other_model = tmp_path / "other.safetensors"
    other_model.write_bytes(model_file.read_bytes())  # same weights, same bytes: same model
    scored.clear()
    assert predict(other_model, out, *recordings, options=stricter) == EXIT_OK
    assert scored == []


# -- a file that fails part-way ---------------------------------------------------------


@pytest.mark.parametrize("read_ahead", [False, True], ids=["in-line", "read-ahead"])
def test_a_file_failing_part_way_keeps_every_window_read_and_is_retried(
    model_file, tmp_path, scored, capsys, monkeypatch, read_ahead
):
    """70 s with NaN at 65 s: detect reads 60-s blocks, and the error comes in the second.
    The 5 s before the NaN in that block must still be cut into windows (60-64 s), and
    with batches of 7 the last windows (63-64 s) wait in a batch not yet full when the
    error comes: all of them must be scored."""
    monkeypatch.setattr(detection, "should_read_ahead", lambda *args, **kwargs: read_ahead)
    (waveform,), _, _ = make_birdsong(1, n_classes=4, duration=70.0, sample_rate=SAMPLE_RATE,
                                      random_state=5)  # fmt: skip
    broken = waveform.copy()
    broken[65 * SAMPLE_RATE] = np.nan
    source = tmp_path / "night.wav"
    soundfile.write(source, broken, SAMPLE_RATE, subtype="FLOAT")
    out = tmp_path / "tables"
    batches = ["--batch-size", "7"]
    assert predict(model_file, out, source, options=batches) == EXIT_PARTIAL
    err = capsys.readouterr().err
    assert f"incomplete {source}: only its first 65 s were scored" in err and "NaN" in err
    table = out / "night.birdaudio.csv"
    rows = read_detections(table)
    assert np.unique(rows["start_s"]).tolist() == [float(second) for second in range(65)]
    record = json.loads(record_path_for(table).read_text())
    assert record["status"] == "partial" and record["seconds_scored"] == 65.0
    assert "NaN" in record["error"]

    # Retried, and reported again, for as long as it fails.
    assert predict(model_file, out, source, options=[*batches, "--resume", "-v"]) == EXIT_PARTIAL
    assert scored == [str(source)] * 2
    assert f"redo {source}: partial" in capsys.readouterr().out
    # Fixed: the resumed run gives what a run on the good file gives.
    soundfile.write(source, waveform, SAMPLE_RATE, subtype="FLOAT")
    assert predict(model_file, out, source, options=[*batches, "--resume"]) == EXIT_OK
    clean = tmp_path / "clean"
    assert predict(model_file, clean, source, options=batches) == EXIT_OK
    assert contents(out) == contents(clean)
    # What the partial run scored is what the clean run scores for those windows.
    clean_rows = read_detections(clean / "night.birdaudio.csv")
    before_error = clean_rows[clean_rows["start_s"] < 65].reset_index(drop=True)
    assert before_error[["start_s", "label"]].equals(rows[["start_s", "label"]])
    np.testing.assert_allclose(rows["confidence"], before_error["confidence"], atol=1e-6)


# -- killed runs ------------------------------------------------------------------------


def counted_replace(monkeypatch, out: Path, crash_at: int, torn: bool) -> list[str]:
    """Make os.replace into ``out`` crash at its ``crash_at``-th call; ``torn``: first write
    half the file in place, as a writer that is not atomic would leave it when killed."""
    calls, replace = [], os.replace

    def crashing(source, destination, *args, **kwargs):
        if not os.fspath(destination).startswith(os.fspath(out)):
            return replace(source, destination, *args, **kwargs)
        calls.append(os.fspath(destination))
        if len(calls) == crash_at:
            if torn:
                data = Path(source).read_bytes()
                Path(destination).write_bytes(data[: len(data) // 2])
            raise Crash(destination)
        return replace(source, destination, *args, **kwargs)

    monkeypatch.setattr(os, "replace", crashing)
    return calls


def test_a_run_crashing_at_any_write_resumes_to_the_uninterrupted_output(
    model_file, reference, tmp_path, monkeypatch
):
    recordings, reference_out = reference
    expected = contents(reference_out)
    n_writes = len(expected)  # each table, then its record
    assert n_writes == 2 * len(recordings)
    for torn in (False, True):
        for crash_at in range(1, n_writes + 1):
            out = tmp_path / f"{'torn' if torn else 'crash'}-{crash_at}"
            with monkeypatch.context() as patch:
                calls = counted_replace(patch, out, crash_at, torn)
                with pytest.raises(Crash):
                    predict(model_file, out, *recordings)
            assert len(calls) == crash_at
            assert predict(model_file, out, *recordings, options=["--resume"]) == EXIT_OK
            assert contents(out) == expected, (torn, crash_at)
            assert not [path for path in out.rglob("*") if path.name.endswith(".tmp")]


def n_written(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


def test_a_killed_predict_process_resumes_to_the_uninterrupted_output(model_file, tmp_path):
    """SIGKILL a real ``python -m sklearn_birdaudio.cli predict`` twice, the second time
    while it resumes, each time at a seeded-random point: once a drawn number of files
    (tables and records) is written, after a drawn delay of up to 20 ms, which lands
    anywhere in the writes (during one, between a table and its record). A last resume
    must give the uninterrupted output."""
    names = {f"site{index % 3}/rec{index:02d}.wav": 3.0 for index in range(10)}
    recordings = write_recordings(tmp_path / "many", names, random_state=40)
    reference_out, out = tmp_path / "reference", tmp_path / "tables"
    assert predict(model_file, reference_out, *recordings) == EXIT_OK
    n_files = n_written(reference_out)  # 10 tables, 10 records
    command = [sys.executable, "-m", "sklearn_birdaudio.cli", "predict", str(model_file),
               *map(str, recordings), "--out", str(out), *OPTIONS]  # fmt: skip
    rng = random.Random(7)
    kill_points = sorted(rng.sample(range(1, n_files - 6), 2))  # 7 or more writes left
    for extra, kill_point in zip(([], ["--resume"]), kill_points, strict=True):
        target = max(kill_point, n_written(out) + 1)
        process = subprocess.Popen([*command, *extra], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if n_written(out) >= target:
                break
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.02))
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL  # killed, not finished
    assert predict(model_file, out, *recordings, options=["--resume"]) == EXIT_OK
    assert contents(out) == contents(reference_out)


def test_resume_removes_the_temporary_files_of_a_killed_run_and_nothing_else(
    model_file, reference, tmp_path
):
    recordings, _ = reference
    out = tmp_path / "tables"
    assert predict(model_file, out, *recordings) == EXIT_OK
    table = next(out.glob("*.birdaudio.csv"))
    leftovers = [
        out / f".{table.name}.0123456789abcdef.tmp",
        record_path_for(table).parent / f".{record_path_for(table).name}.fedcba9876543210.tmp",
    ]
    keep = [out / ".notes.tmp", out / f".{table.name}.not-ours.tmp", out / "mine.tmp"]
    for path in [*leftovers, *keep]:
        path.write_text("half a table")
    assert predict(model_file, out, *recordings, options=["--resume"]) == EXIT_OK
    assert not any(path.exists() for path in leftovers)
    assert all(path.exists() for path in keep)


# -- --out ------------------------------------------------------------------------------


def test_out_naming_an_existing_file_without_suffix_is_a_one_line_error(
    model_file, reference, tmp_path, capsys
):
    recordings, _ = reference
    out = tmp_path / "tables"
    out.write_text("not a folder")
    assert predict(model_file, out, *recordings) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"birdaudio predict: error: {out}: exists and is not a folder")
    assert "expected --out to be a folder" in err and out.read_text() == "not a folder"
