"""Tests of scale-out on Dask: detection on a real LocalCluster, grid search, threads."""

import logging
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import GridSearchCV, KFold
from test_classifier import SAMPLE_RATE, songs, tiny_pipeline

from sklearn_birdaudio import detect
from sklearn_birdaudio.distributed import import_extra, set_torch_threads, torch_threads_plan
from sklearn_birdaudio.metrics import SCORERS

distributed = pytest.importorskip(
    "distributed", reason='needs the dask extra: pip install "sklearn-birdaudio[dask]"'
)

N_WORKERS = 2


@pytest.fixture(scope="module")
def client():
    """A real cluster of 2 worker processes with 1 thread each, closed after the module.

    Dask's active memory manager is off here. Every 2 s it drops replicas that no task
    queued on a worker waits for, so a broadcast model could be dropped from an idle
    worker and fetched again later: one more transfer, never one per file, but it made
    the count of transfers depend on timing (1 run in 3 counted 3 on 2 workers).
    """
    dask = pytest.importorskip("dask")
    with (
        dask.config.set({"distributed.scheduler.active-memory-manager.start": False}),
        distributed.LocalCluster(
            n_workers=N_WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def model():
    X, Y, _ = songs(48, 0)
    return tiny_pipeline(max_epochs=4, validation_fraction=None).fit(X, Y)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Five synthetic recordings of 1.5-4 s, a truncated WAV and a text file named .wav."""
    folder = tmp_path_factory.mktemp("recordings")
    waveforms, *_ = songs(5, 3)
    paths = []
    for index, waveform in enumerate(waveforms):
        repeated = np.tile(waveform, 1 + index % 4)[: int((1.5 + 0.6 * index) * SAMPLE_RATE)]
        path = folder / f"recording_{index}.wav"
        soundfile.write(path, repeated, SAMPLE_RATE)
        paths.append(str(path))
    truncated = folder / "truncated.wav"
    truncated.write_bytes((folder / "recording_0.wav").read_bytes()[:30])
    text = folder / "notes.wav"
    text.write_text("not audio")
    return [*paths[:2], str(truncated), *paths[2:], str(text)]


def assert_same_detections(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    # Workers run 1 torch thread, this process 2: scores agree to float rounding.
    pd.testing.assert_frame_equal(actual, expected, check_exact=False, rtol=1e-5, atol=1e-6)
    assert actual.attrs["durations"] == expected.attrs["durations"]
    assert [e["file"] for e in actual.attrs["errors"]] == [
        e["file"] for e in expected.attrs["errors"]
    ]
    assert actual.attrs["frequency_range"] == expected.attrs["frequency_range"]


# -- detection --------------------------------------------------------------------------


def test_detect_on_a_cluster_equals_the_local_path(client, model, recordings):
    options = {"min_confidence": 0.0, "overlap_seconds": 0.5, "verbose": 0}
    local = detect(model, recordings, **options)
    on_cluster = detect(model, recordings, client=client, **options)
    assert_same_detections(on_cluster, local)
    assert len(local.attrs["durations"]) == 5 and len(local.attrs["errors"]) == 2
    assert set(on_cluster["file"]) == set(local.attrs["durations"])


def test_arrays_and_files_mix_on_a_cluster(client, model, recordings):
    waveform = soundfile.read(recordings[0], dtype="float32")[0]
    sources = [waveform, recordings[1]]
    local = detect(model, sources, min_confidence=0.2, verbose=0)
    assert_same_detections(detect(model, sources, client=client, verbose=0), local)


@pytest.mark.parametrize("where", ["local", "cluster"])
def test_on_file_receives_each_recording_as_it_finishes(where, request, model, recordings):
    client = request.getfixturevalue("client") if where == "cluster" else None
    parts = []
    detections = detect(
        model, recordings, min_confidence=0.0, verbose=0, client=client, on_file=parts.append
    )
    assert len(parts) == len(recordings)  # one call per recording, the unreadable ones too
    by_file = {}
    for part in parts:
        (name,) = set(part.attrs["durations"]) | {e["file"] for e in part.attrs["errors"]}
        by_file[name] = part
        assert set(part["file"]) <= {name}
    assert set(by_file) == set(recordings)
    for name in recordings:
        expected = detections[detections["file"] == name].reset_index(drop=True)
        if expected.empty:  # the unreadable ones: no rows (an empty frame's dtypes differ)
            assert by_file[name].empty
        else:
            pd.testing.assert_frame_equal(by_file[name], expected)
    assert by_file[recordings[2]].attrs["errors"][0]["file"] == recordings[2]
    assert by_file[recordings[2]].empty


UNPICKLED = 0  # per process: how often a CountingModel was unpickled there


class CountingModel(ClassifierMixin, BaseEstimator):
    """Scores each window by its mean; counts its own unpickling in the process."""

    def fit(self, X=None, y=None):
        self.classes_ = np.array(["mean"])
        return self

    def predict_proba(self, X):
        return np.array([[float(np.clip(np.mean(window) + 0.5, 0, 1))] for window in X])

    def __setstate__(self, state):
        global UNPICKLED
        UNPICKLED += 1
        self.__dict__.update(state)


def unpickled_count() -> int:
    return UNPICKLED


def reset_count() -> None:
    global UNPICKLED
    UNPICKLED = 0


def test_the_model_is_sent_to_each_worker_once_not_per_file(client):
    rng = np.random.default_rng(0)
    waveforms = [rng.uniform(-0.1, 0.1, 32000 * 3).astype(np.float32) for _ in range(8)]
    client.run(reset_count)
    detections = detect(
        CountingModel().fit(), waveforms, window_seconds=1.0, client=client, verbose=0
    )
    unpickled = client.run(unpickled_count)
    assert 1 <= sum(unpickled.values()) <= N_WORKERS < len(waveforms)
    assert len(detections.attrs["durations"]) == len(waveforms)


class FailingModel(CountingModel):
    """Raises an error that is not about audio on recordings longer than 2 s."""

    def predict_proba(self, X):
        if any(len(window) > 2 * 32000 for window in X):
            raise RuntimeError("out of memory on this worker")
        return super().predict_proba(X)


def test_a_task_that_fails_on_the_cluster_is_listed_and_the_rest_are_scored(client):
    waveforms = [np.zeros(32000, np.float32), np.zeros(32000 * 3, np.float32)]
    detections = detect(
        FailingModel().fit(), waveforms, window_seconds=5.0, client=client, verbose=0
    )
    assert list(detections.attrs["durations"]) == ["array 0"]
    [error] = detections.attrs["errors"]
    assert error["file"] == "array 1"
    assert "RuntimeError: out of memory on this worker" in error["error"]
    # Locally too, since any failure of one file stays with that file.
    local = detect(FailingModel().fit(), waveforms, window_seconds=5.0, verbose=0)
    assert list(local.attrs["durations"]) == ["array 0"]
    assert local.attrs["errors"] == [
        {"file": "array 1", "error": "array 1: RuntimeError: out of memory on this worker"}
    ]


def test_n_jobs_and_client_are_exclusive(client, model, recordings):
    with pytest.raises(ValueError, match="n_jobs=2 and client are exclusive"):
        detect(model, recordings, n_jobs=2, client=client)
    with pytest.raises(TypeError, match="on_file must be callable"):
        detect(model, recordings, on_file="tables/")


# -- model selection and threads ----------------------------------------------------------


def test_grid_search_on_the_cluster_equals_the_local_one(client):
    X, Y, _ = songs(40, 1)

    def search():
        return GridSearchCV(
            tiny_pipeline(max_epochs=3, validation_fraction=None),
            {"cnn__lr": [1e-3, 1e-2]},
            cv=KFold(2),
            scoring=SCORERS["mAP_macro"],
        )

    local = search().fit(X, Y)
    with joblib.parallel_backend("dask"):
        remote = search().fit(X, Y)
    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"], atol=1e-6
    )
    np.testing.assert_allclose(remote.predict_proba(X), local.predict_proba(X), atol=1e-5)


def test_set_torch_threads_shares_the_cores_between_workers(client):
    plan = set_torch_threads(client)
    assert set(plan) == set(client.scheduler_info(n_workers=-1)["workers"])
    cores = client.run(lambda: __import__("dask.system").system.cpu_count())
    for address, threads in plan.items():
        assert threads == max(1, cores[address] // N_WORKERS)  # 2 workers, 1 thread each
    assert client.run(torch.get_num_threads) == plan
    assert torch_threads_plan(client) == plan
    assert set(set_torch_threads(client, n_threads=3).values()) == {3}
    assert set(client.run(torch.get_num_threads).values()) == {3}
    set_torch_threads(client)
    with pytest.raises(ValueError, match="n_threads must be a positive integer"):
        set_torch_threads(client, n_threads=0)


# -- optional extras --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "extra"), [("distributed", "dask"), ("accelerate", "accelerate")]
)
def test_a_missing_extra_names_the_pip_command(monkeypatch, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # what an absent package looks like
    with pytest.raises(ImportError, match=rf"sklearn-birdaudio\[{extra}\]"):
        import_extra(module)


def test_importing_the_package_imports_neither_dask_nor_accelerate():
    code = (
        "import sys, sklearn_birdaudio, sklearn_birdaudio.distributed; "
        "print(sorted(m for m in ('dask', 'distributed', 'accelerate') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


def test_birdaudio_predict_on_a_scheduler_writes_the_local_tables(client, model, tmp_path):
    from sklearn_birdaudio import save_model
    from sklearn_birdaudio.cli import EXIT_PARTIAL, main

    saved = tmp_path / "model.safetensors"
    save_model(model, saved)
    field = tmp_path / "field"
    field.mkdir()
    waveforms, *_ = songs(3, 5)
    for index, waveform in enumerate(waveforms):
        soundfile.write(field / f"site{index}.wav", np.tile(waveform, 3), SAMPLE_RATE)
    (field / "broken.wav").write_text("not audio")
    command = ["predict", str(saved), str(field), "--min-confidence", "0", "-q"]
    assert main([*command, "--out", str(tmp_path / "local")]) == EXIT_PARTIAL
    address = client.scheduler.address
    assert main([*command, "--out", str(tmp_path / "dask"), "--scheduler", address]) == (
        EXIT_PARTIAL
    )
    local = sorted(path.name for path in (tmp_path / "local").glob("*.csv"))
    assert local == sorted(path.name for path in (tmp_path / "dask").glob("*.csv"))
    assert len(local) == 3
    for name in local:
        expected = pd.read_csv(tmp_path / "local" / name)
        actual = pd.read_csv(tmp_path / "dask" / name)
        pd.testing.assert_frame_equal(actual, expected, check_exact=False, rtol=1e-4)


def test_birdaudio_predict_says_when_the_scheduler_cannot_be_reached(model, tmp_path, capsys):
    from sklearn_birdaudio import save_model
    from sklearn_birdaudio.cli import EXIT_ERROR, main

    saved = tmp_path / "model.safetensors"
    save_model(model, saved)
    audio = tmp_path / "a.wav"
    soundfile.write(audio, songs(1, 0)[0][0], SAMPLE_RATE)
    code = main(
        ["predict", str(saved), str(audio), "--out", str(tmp_path / "t"), "--scheduler",
         "tcp://127.0.0.1:9", "-q"]
    )  # fmt: skip
    assert code == EXIT_ERROR
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err


def allocator_thresholds_after_a_task() -> bool:
    from sklearn_birdaudio.distributed import _keep_tensors_on_the_heap

    return _keep_tensors_on_the_heap()


def test_workers_allocator_is_tuned_for_tensors_on_glibc(client):
    import ctypes.util
    import platform

    tuned = client.run(allocator_thresholds_after_a_task)
    expected = platform.system() == "Linux" and ctypes.util.find_library("c") is not None
    if expected and platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert set(tuned.values()) == {expected}
