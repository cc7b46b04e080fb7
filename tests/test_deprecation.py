"""Tests of the deprecation period of keyword-only arguments (``_deprecation``)."""

import inspect
import pickle
import warnings

import numpy as np
import pytest

from sklearn_birdaudio import (
    f1_at_threshold,
    load_audio,
    make_birdsong,
    padded_cmap,
    stream_audio,
)
from sklearn_birdaudio._deprecation import deprecate_positional

MESSAGE = "From version 0.2 passing these as positional arguments will result in an error"


@deprecate_positional
def load(source, *, sample_rate=32000, mono=True, offset_seconds=0.0):
    """Return what it was called with."""
    return source, sample_rate, mono, offset_seconds


class Network:
    @deprecate_positional
    def __init__(self, n_classes, *, n_mels=128, dropout=0.5):
        self.n_classes, self.n_mels, self.dropout = n_classes, n_mels, dropout


def test_keyword_calls_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load("a.wav") == ("a.wav", 32000, True, 0.0)
        assert load("a.wav", mono=False, sample_rate=16000) == ("a.wav", 16000, False, 0.0)
        assert load(source="a.wav") == ("a.wav", 32000, True, 0.0)


def test_positional_values_go_to_the_keyword_only_parameters_in_order():
    with pytest.warns(FutureWarning) as record:
        assert load("a.wav", 16000, False) == ("a.wav", 16000, False, 0.0)
    assert str(record[0].message) == (
        f"Pass sample_rate=16000, mono=False as keyword args to load(). {MESSAGE}."
    )


def test_positional_and_keyword_values_combine():
    with pytest.warns(FutureWarning, match=r"Pass sample_rate=8000 as keyword args"):
        assert load("a.wav", 8000, offset_seconds=2.0) == ("a.wav", 8000, True, 2.0)


def test_the_warning_points_at_the_caller():
    with pytest.warns(FutureWarning) as record:
        load("a.wav", 16000)
    assert record[0].filename == __file__


def test_long_values_are_shortened_in_the_message():
    with pytest.warns(FutureWarning) as record:
        load("a.wav", list(range(1000)))
    message = str(record[0].message)
    assert message.startswith("Pass sample_rate=[0, 1, 2, 3, 4, 5, ...] as keyword args")


def test_a_value_given_twice_is_a_type_error():
    with pytest.raises(TypeError, match=r"load\(\) got multiple values for argument 'mono'"):
        load("a.wav", 16000, False, mono=True)


def test_too_many_positional_values_is_pythons_type_error():
    with pytest.raises(TypeError, match="positional argument"):
        load("a.wav", 16000, False, 1.0, "one too many")


def test_a_missing_data_argument_is_pythons_type_error():
    with pytest.raises(TypeError, match="source"):
        load(sample_rate=16000)


def test_methods_and_init_are_named_by_their_class():
    with pytest.warns(FutureWarning, match=r"Pass n_mels=64 as keyword args to Network\(\)\."):
        network = Network(3, 64)
    assert (network.n_classes, network.n_mels, network.dropout) == (3, 64, 0.5)


def test_the_signature_is_the_keyword_only_one():
    assert inspect.signature(load) == inspect.signature(load.__wrapped__)
    kinds = {name: parameter.kind for name, parameter in inspect.signature(load).parameters.items()}
    assert kinds == {
        "source": inspect.Parameter.POSITIONAL_OR_KEYWORD,
        "sample_rate": inspect.Parameter.KEYWORD_ONLY,
        "mono": inspect.Parameter.KEYWORD_ONLY,
        "offset_seconds": inspect.Parameter.KEYWORD_ONLY,
    }
    assert load.__name__ == "load" and load.__doc__ == "Return what it was called with."
    assert list(inspect.signature(Network).parameters) == ["n_classes", "n_mels", "dropout"]


def test_a_decorated_function_pickles_by_name():
    assert pickle.loads(pickle.dumps(load_audio)) is load_audio


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda source, sample_rate=32000: None, id="no keyword-only parameter"),
        pytest.param(lambda source, *args, mono=True: None, id="*args"),
    ],
)
def test_only_functions_with_keyword_only_parameters_and_no_args_are_wrapped(bad):
    with pytest.raises(TypeError):
        deprecate_positional(bad)


def test_public_functions_keep_their_positional_calls_for_now():
    """The calls users may have copied from the docs before 0.2: same results, warned."""
    waveform = np.zeros(16000, dtype=np.float32)
    with pytest.warns(FutureWarning, match=r"Pass sample_rate=8000 as keyword args to load_"):
        positional = load_audio(waveform, 8000, source_rate=16000)
    np.testing.assert_array_equal(
        positional, load_audio(waveform, sample_rate=8000, source_rate=16000)
    )
    with pytest.warns(FutureWarning, match=r"Pass block_seconds=0.5 as keyword args to stream_"):
        assert [len(block) for block in stream_audio(waveform, 0.5, sample_rate=16000)] == [
            8000,
            8000,
        ]
    with pytest.warns(FutureWarning, match=r"Pass n_classes=2 as keyword args to make_birdsong"):
        X, Y, _ = make_birdsong(3, 2, duration=0.1, sample_rate=8000, random_state=0)
    assert X.shape == (3, 800) and Y.shape == (3, 2)
    y_true, y_score = np.eye(3), np.eye(3) * 0.8
    with pytest.warns(FutureWarning, match=r"Pass padding_factor=1 as keyword args"):
        assert padded_cmap(y_true, y_score, 1) == padded_cmap(y_true, y_score, padding_factor=1)
    with pytest.warns(FutureWarning, match=r"Pass threshold=0.9, average='macro' as keyword"):
        assert f1_at_threshold(y_true, y_score, 0.9, "macro") == 0.0


@pytest.mark.parametrize(
    ("function", "positional"),
    [
        ("load_audio", ["source"]),
        ("stream_audio", ["source"]),
        ("audio_files", ["folder"]),
        ("audio_info", ["source"]),
        ("make_birdsong", ["n_samples"]),
        ("load_folder", ["root"]),
        ("load_manifest", ["csv_path"]),
        ("mean_average_precision", ["y_true", "y_score"]),
        ("padded_cmap", ["y_true", "y_score"]),
        ("f1_at_threshold", ["y_true", "y_score"]),
        ("top1_accuracy", ["y_primary", "y_score"]),
        ("make_small_data_pipeline", []),
        ("valid_frames", ["spectrograms"]),
        ("AttentionCNN", ["n_classes", "n_mels"]),
        ("LogMelSpectrogram", []),
    ],
)
def test_only_data_arguments_are_positional(function, positional):
    import sklearn_birdaudio

    parameters = inspect.signature(getattr(sklearn_birdaudio, function)).parameters.values()
    assert [
        parameter.name
        for parameter in parameters
        if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ] == positional


# Public callables whose options were keyword-only from the start: no call to keep working.
KEYWORD_ONLY_FROM_THE_START = {
    "stream_windows", "AudioSpec", "sample_for_review", "export_review",
    "reviewed_training_data", "load_model", "DistilledClassifier",
}  # fmt: skip


def test_every_public_callable_with_keyword_only_options_keeps_old_positional_calls():
    import inspect

    import sklearn_birdaudio

    missing = []
    for name in sklearn_birdaudio.__all__:
        obj = getattr(sklearn_birdaudio, name)
        function = obj.__init__ if inspect.isclass(obj) else obj
        if not callable(function) or name in KEYWORD_ONLY_FROM_THE_START:
            continue
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            continue
        keyword_only = any(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
        if keyword_only and not hasattr(function, "__wrapped__"):
            missing.append(name)
    assert not missing, f"keyword-only without deprecate_positional: {missing}"
