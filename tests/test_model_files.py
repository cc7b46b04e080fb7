"""A model file is untrusted data: what a tampered file can and cannot make the package do.

Each test builds a tampered copy of a real saved model (its JSON description or its raw
safetensors header edited) and checks that loading either refuses it, naming what is
wrong, or restores the model without the parameters that act on the machine. Tests that a
file runs no code use a canary: a file that would exist if anything had run.
"""

from __future__ import annotations

import json
import resource
import sys
import threading

import numpy as np
import pytest
import soundfile
import torch
from numpy.testing import assert_array_equal
from safetensors import safe_open
from safetensors.torch import save_file
from test_classifier import SAMPLE_RATE, songs, tiny_pipeline

from sklearn_birdaudio import DroppedParameterWarning, load_model, save_model
from sklearn_birdaudio.cli import EXIT_ERROR, EXIT_OK, main
from sklearn_birdaudio.persistence import is_model_file


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A fitted tiny pipeline, its file, and test clips."""
    X_train, Y_train, _ = songs(16, 0, as_frame=True)
    X_test, _, _ = songs(6, 1)
    model = tiny_pipeline(max_epochs=1).fit(X_train, Y_train)
    path = save_model(model, tmp_path_factory.mktemp("saved") / "model.safetensors")
    return model, path, X_test


def description(path) -> dict:
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["model"])


def tamper(path, target, edit=None, tensors=None):
    """Copy the model at ``path`` to ``target``: ``edit(description)``, tensors replaced."""
    with safe_open(str(path), framework="pt") as handle:
        stored = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        metadata = handle.metadata()
    model = json.loads(metadata["model"])
    if edit is not None:
        edit(model)
    save_file(
        {**stored, **(tensors or {})},
        str(target),
        metadata={**metadata, "model": json.dumps(model)},
    )
    return target


def cnn_params(model: dict) -> dict:
    """The classifier's parameters in a pipeline's description."""
    return model["params"]["steps"][1]["$tuple"][1]["params"]


def mel_params(model: dict) -> dict:
    return model["params"]["steps"][0]["$tuple"][1]["params"]


# -- 1. code execution through compiler options -------------------------------------------


def test_compiler_options_in_a_file_never_reach_torch_compile(saved, tmp_path, monkeypatch):
    model, path, X_test = saved
    canary = tmp_path / "canary"
    command = f"touch {canary}"

    def evil(params):
        params.update(
            {
                "inference": "compiled",
                "compile": True,
                "compile__backend": "inductor",
                "compile__options": {"cpp.cxx": [f"sh -c '{command}' #"], "freezing": True},
            }
        )

    tampered = tamper(path, tmp_path / "evil.safetensors", lambda m: evil(cnn_params(m)))

    def spy_compile(*args, **kwargs):  # what torch.compile would have been asked to run
        canary.write_text(repr(kwargs))
        return args[0]

    monkeypatch.setattr(torch, "compile", spy_compile)
    with pytest.warns(DroppedParameterWarning) as record:
        loaded = load_model(tampered)
    dropped = record[0].message.dropped
    assert set(dropped) == {
        "cnn__inference", "cnn__compile", "cnn__compile__backend", "cnn__compile__options"
    }  # fmt: skip
    cnn = loaded.named_steps["cnn"]
    assert cnn.inference == "fused" and cnn.compile is False
    assert not any(name.startswith("compile__") for name in cnn.get_params())
    assert_array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))
    # And from a shell, as the attack ran it: predict exits 0 and nothing was compiled.
    audio = tmp_path / "clip.wav"
    soundfile.write(audio, X_test[0], SAMPLE_RATE)
    assert main(["predict", str(tampered), str(audio), "--out", str(tmp_path / "t"), "-q"]) == 0
    assert not canary.exists()
    # The canary is live: the same options set by the user (trusted) do reach torch.compile.
    cnn.set_params(inference="compiled")
    cnn.predict_proba(loaded.named_steps["mel"].transform(X_test[:1]))
    assert canary.exists()


# -- 2. parameters that act on the machine ------------------------------------------------


def test_a_checkpoint_dir_in_a_file_does_not_make_fit_write_there(saved, tmp_path, monkeypatch):
    _, path, _ = saved
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    tampered = tamper(
        path,
        tmp_path / "evil.safetensors",
        lambda m: cnn_params(m).update(checkpoint_dir={"$path": "../../victim"}),
    )
    with pytest.warns(
        DroppedParameterWarning, match=r"cnn__checkpoint_dir=PosixPath\('\.\./\.\./victim'\)"
    ):
        loaded = load_model(tampered)
    assert loaded.named_steps["cnn"].checkpoint_dir is None
    monkeypatch.chdir(work)
    X, Y, _ = songs(8, 2, as_frame=True)
    loaded.set_params(cnn__max_epochs=1).fit(X, Y)
    assert not (tmp_path / "victim").exists()
    assert not list(tmp_path.rglob("checkpoint.pt"))


@pytest.mark.parametrize(
    ("place", "values", "message"),
    [
        (
            cnn_params,
            {"module__base_filters": 40_000},
            "outside its domain: an integer in [1, 1024]",
        ),
        (cnn_params, {"module__base_filters": 1_024}, "the weights do not fit the network"),
        (cnn_params, {"module__n_blocks": 32}, "channels in its last block"),
        (
            cnn_params,
            {"window_seconds": 600.0, "predict_batch_size": 4_096},
            "GiB per batch at prediction",
        ),
        (mel_params, {"duration": 3_600.0}, "GiB per batch at prediction"),
        (mel_params, {"n_mels": 10**9}, "outside its domain"),
        (mel_params, {"sample_rate": 2}, "outside its domain"),
        (cnn_params, {"threshold": float("nan")}, "outside its domain"),
        (cnn_params, {"max_epochs": True}, "outside its domain"),
        (cnn_params, {"evil": 1}, "cnn__evil is not a parameter a model file may set"),
        (cnn_params, {"module__n_mels": 8}, "module__n_mels is not a parameter"),
        (
            cnn_params,
            {"criterion": {"$class": "torch.utils.data.DataLoader"}},
            "outside its domain",
        ),
    ],
)
def test_sizes_and_values_outside_the_declared_domain_are_refused_before_allocating(
    saved, tmp_path, place, values, message
):
    _, path, _ = saved
    tampered = tamper(path, tmp_path / "big.safetensors", lambda m: place(m).update(values))
    assert tampered.stat().st_size < 200_000  # a small file asking for a lot
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(ValueError, match="invalid model description") as error:
        load_model(tampered)
    assert message in str(error.value) and str(tampered) in str(error.value)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 256


def test_large_arrays_and_strings_in_the_description_are_refused(saved, tmp_path):
    _, path, _ = saved

    def huge_classes(model):
        fitted = model["params"]["steps"][1]["$tuple"][1]["fitted"]
        fitted["classes_"] = {"dtype": "<U100000000", "values": ["a"]}

    tampered = tamper(path, tmp_path / "huge.safetensors", huge_classes)
    with pytest.raises(ValueError, match="larger than"):
        load_model(tampered)


# -- 4. weights that would give silently wrong results ------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(saved, tmp_path, bad):
    _, path, _ = saved
    with safe_open(str(path), framework="pt") as handle:
        weight = handle.get_tensor("net0/head.weight").clone()
    weight[0, 0] = bad
    tampered = tamper(path, tmp_path / "nan.safetensors", tensors={"net0/head.weight": weight})
    with pytest.raises(ValueError, match=r"head\.weight hold NaN or infinite values"):
        load_model(tampered)


def relabel(path, target, key, dtype):
    """Copy ``path`` with the safetensors header's dtype of ``key`` changed (bytes kept)."""
    content = path.read_bytes()
    length = int.from_bytes(content[:8], "little")
    header = json.loads(content[8 : 8 + length])
    header[key]["dtype"] = dtype
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (length - len(text))  # same length: the offsets stay right
    assert len(text) == length
    target.write_bytes(content[:8] + text + content[8 + length :])
    return target


@pytest.mark.parametrize(("dtype", "message"), [
    ("I32", "is torch.int32 [4, 32] in the file, the network needs torch.float32 [4, 32]"),
    ("F16", "not a model file"),  # half the bytes: safetensors itself refuses the offsets
])  # fmt: skip
def test_tensors_relabelled_to_another_dtype_are_refused(saved, tmp_path, dtype, message):
    _, path, _ = saved
    tampered = relabel(path, tmp_path / "relabelled.safetensors", "net0/head.weight", dtype)
    with pytest.raises(ValueError, match=r"not a model file|invalid model description") as error:
        load_model(tampered)
    assert message in str(error.value)


def test_scaler_state_relabelled_as_integers_is_refused(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.random.default_rng(0).normal(size=(40, 3))
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, X[:, 0] > 0)
    path = save_model(model, tmp_path / "linear.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        key = next(k for k in handle.keys() if k.endswith("mean_"))  # noqa: SIM118
    tampered = relabel(path, tmp_path / "relabelled.safetensors", key, "I64")
    with pytest.raises(ValueError, match="mean_ is stored as int64; expected real numbers"):
        load_model(tampered)


# -- 7. the format is recognised by its header, never by a first byte ----------------------


def test_a_safetensors_file_starting_with_0x80_is_never_taken_for_a_pickle(
    saved, tmp_path, monkeypatch
):
    model, path, X_test = saved
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    for padding in range(256):  # a header length whose low byte is 0x80, a pickle's PROTO
        target = tamper(path, tmp_path / "m.safetensors")
        with safe_open(str(target), framework="pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        save_file(tensors, str(target), metadata={**metadata, "pad": "x" * padding})
        if target.read_bytes()[0] == 0x80:
            break
    assert target.read_bytes()[0] == 0x80 and is_model_file(target)
    monkeypatch.setattr("joblib.load", lambda *a, **k: pytest.fail("fed to joblib.load"))
    loaded = load_model(target, allow_pickle=True)
    assert_array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))


def test_a_damaged_safetensors_file_is_reported_as_such_not_as_a_pickle(saved, tmp_path):
    _, path, _ = saved
    target = tmp_path / "damaged.safetensors"
    content = bytearray(path.read_bytes())
    content[0] = 0x80  # a wrong header length: no longer safetensors
    target.write_bytes(bytes(content[: len(content) // 2]))
    assert not is_model_file(target)
    assert main(["info", str(target)]) == EXIT_ERROR


def test_a_real_pickle_is_recognised_and_refused_without_allow_pickle(saved, tmp_path):
    import joblib

    model, _, _ = saved
    target = tmp_path / "model.bin"
    joblib.dump(model, target)
    assert not is_model_file(target)
    with pytest.raises(ValueError, match="is a joblib/pickle file, refused"):
        load_model(target)


# -- birdaudio info lists what was not restored -------------------------------------------


def test_info_lists_the_parameters_that_were_not_restored(saved, tmp_path, capsys):
    _, path, _ = saved
    tampered = tamper(
        path,
        tmp_path / "m.safetensors",
        lambda m: cnn_params(m).update(device="meta", inference="compiled"),
    )
    assert main(["info", str(tampered)]) == EXIT_OK
    err = capsys.readouterr().err
    assert "not restored from the model file" in err
    assert "cnn__device = 'meta'  (a device)" in err
    assert "cnn__inference = 'compiled'" in err


# -- 4. predict is thread-safe and never mutates the estimator ----------------------------


def test_threads_sharing_one_model_get_the_sequential_results(saved):
    model, _, X_test = saved
    cnn = model.named_steps["cnn"]
    spectrograms = model.named_steps["mel"].transform(X_test)
    expected = cnn.predict_proba(spectrograms)
    before = {key: repr(value) for key, value in vars(cnn).items()}
    results, errors = [], []
    start = threading.Barrier(4)

    def score():
        start.wait()
        try:
            for _ in range(5):
                results.append(cnn.predict_proba(spectrograms))
                assert cnn.device == "auto"
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=score) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 20
    for result in results:
        np.testing.assert_allclose(result, expected, rtol=0, atol=1e-6)
    assert {key: repr(value) for key, value in vars(cnn).items()} == before


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, *sys.argv[1:]]))


# -- files written before the audio spec ---------------------------------------------------


def as_written_before_the_audio_spec(model: dict, hop_length: int) -> None:
    """The layout of the previous version: the classifier kept the framing as parameters."""
    cnn = model["params"]["steps"][1]["$tuple"][1]
    cnn["fitted"].pop("audio_spec_")
    cnn["params"].update(sample_rate=16000, hop_length=hop_length)


def test_a_file_of_the_previous_version_loads_and_predicts_as_the_original(saved, tmp_path):
    from sklearn_birdaudio import get_audio_spec

    model, path, X_test = saved
    old = tamper(path, tmp_path / "old.safetensors", lambda m: as_written_before_the_audio_spec(
        m, model.named_steps["mel"].hop_length))  # fmt: skip
    loaded = load_model(old)
    np.testing.assert_allclose(loaded.predict_proba(X_test), model.predict_proba(X_test))
    assert get_audio_spec(loaded) == get_audio_spec(model)
    assert loaded.named_steps["cnn"]._window_frames == model.named_steps["cnn"]._window_frames


def test_a_file_of_the_previous_version_framed_otherwise_than_its_mel_is_refused(saved, tmp_path):
    from sklearn_birdaudio import get_audio_spec

    model, path, X_test = saved
    other_hop = 2 * model.named_steps["mel"].hop_length
    old = tamper(path, tmp_path / "odd.safetensors",
                 lambda m: as_written_before_the_audio_spec(m, other_hop))  # fmt: skip
    loaded = load_model(old)
    with pytest.raises(ValueError, match="fitted on spectrograms at sample_rate=16000, hop_le"):
        get_audio_spec(loaded)
    with pytest.raises(ValueError, match=f"hop_length={other_hop // 2}, but"):
        loaded.predict_proba(X_test)
