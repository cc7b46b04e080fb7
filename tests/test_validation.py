"""Tests of the parameter checks, and that NumPy numbers (as grids give them) pass them."""

import joblib
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_birdaudio import (
    AudioSpec,
    BirdNETClassifier,
    BirdNETEmbedder,
    MelSpectrogramTransformer,
    ScoreCalibrator,
    make_birdsong,
    plot_detections,
)
from sklearn_birdaudio._validation import (
    check_integer,
    check_memory,
    check_real,
    is_integer,
    is_real_number,
)
from sklearn_birdaudio.audio import load_audio, stream_audio
from sklearn_birdaudio.augment import BackgroundMix, Mixup, RandomGain, SpecAugment
from sklearn_birdaudio.classifier import AttentionCNNClassifier
from sklearn_birdaudio.distributed import set_torch_threads
from sklearn_birdaudio.ensemble import VotingClassifier
from sklearn_birdaudio.metrics import f1_at_threshold, padded_cmap
from sklearn_birdaudio.modules import AttentionCNN
from sklearn_birdaudio.restorable import Integer, Real

NUMPY_INTEGERS = [np.int8(3), np.int32(3), np.int64(3), np.uint16(3)]
NUMPY_FLOATS = [np.float16(0.5), np.float32(0.5), np.float64(0.5)]


# -- the checks -----------------------------------------------------------------------------
@pytest.mark.parametrize("value", [3, *NUMPY_INTEGERS], ids=repr)
def test_check_integer_returns_a_python_int(value):
    checked = check_integer(value, "n", min_val=1, max_val=3)
    assert checked == 3 and type(checked) is int


@pytest.mark.parametrize(
    "value", [True, False, np.True_, 2.0, 2.5, np.float32(2), "2", None, [2], np.array([2])]
)
def test_check_integer_refuses_what_is_not_an_integer(value):
    with pytest.raises(ValueError, match=r"^n must be a positive integer, got "):
        check_integer(value, "n", min_val=1)


@pytest.mark.parametrize(
    ("kwargs", "value", "message"),
    [
        ({"min_val": 1}, 0, "n must be a positive integer, got 0."),
        ({"min_val": 0}, -1, "n must be an integer >= 0, got -1."),
        ({"max_val": 9}, 10, "n must be an integer <= 9, got 10."),
        ({"min_val": 2, "max_val": 9}, np.int64(1), "n must be an integer in [2, 9], got "),
        ({"min_val": 1, "allow_none": True}, 0, "n must be a positive integer or None, got 0."),
        ({"min_val": 1, "message": "n: no"}, 0, "n: no"),
    ],
)
def test_check_integer_bounds_and_messages(kwargs, value, message):
    with pytest.raises(ValueError) as error:
        check_integer(value, "n", **kwargs)
    assert str(error.value).startswith(message)


def test_check_integer_bounds_are_included_and_none_is_optional():
    assert check_integer(2, "n", min_val=2, max_val=2) == 2
    assert check_integer(None, "n", min_val=1, allow_none=True) is None
    assert check_integer(-5, "n") == -5


@pytest.mark.parametrize("value", [0.5, *NUMPY_FLOATS, 1, np.int64(1)], ids=repr)
def test_check_real_returns_a_python_float(value):
    checked = check_real(value, "x", min_val=0, max_val=1)
    assert checked == float(value) and type(checked) is float


@pytest.mark.parametrize(
    "value", [True, np.True_, np.nan, np.float32(np.nan), np.inf, -np.inf, "0.5", None, 1j]
)
def test_check_real_refuses_bools_nan_infinity_and_non_numbers(value):
    with pytest.raises(ValueError, match="x must be a finite number, got "):
        check_real(value, "x")


@pytest.mark.parametrize(
    ("kwargs", "value", "message"),
    [
        ({"min_val": 0, "include_boundaries": "neither"}, 0, "a positive finite number"),
        ({"min_val": 0}, -0.5, "a finite number >= 0"),
        ({"min_val": 0, "include_boundaries": "neither"}, -1, "a positive finite number"),
        ({"min_val": 0, "max_val": 1, "include_boundaries": "right"}, 0, "in (0, 1]"),
        ({"min_val": 0, "max_val": 1, "include_boundaries": "left"}, 1, "in [0, 1)"),
        ({"min_val": 0, "max_val": 1, "include_boundaries": "neither"}, 1, "in (0, 1)"),
        ({"min_val": 0, "max_val": 1}, 1.5, "in [0, 1], got 1.5."),
        ({"max_val": 1, "include_boundaries": "right"}, 2, "a finite number <= 1"),
        ({"min_val": 0, "allow_none": True, "include_boundaries": "neither"}, 0, "or None, got 0."),
    ],
)
def test_check_real_bounds_and_messages(kwargs, value, message):
    with pytest.raises(ValueError) as error:
        check_real(value, "x", **kwargs)
    assert str(error.value).startswith("x must be ") and message in str(error.value)


def test_check_real_keeps_a_callers_message_and_allows_none():
    with pytest.raises(ValueError, match=r"^x: own words$"):
        check_real(np.nan, "x", message="x: own words")
    assert check_real(None, "x", allow_none=True) is None
    assert check_real(1.0, "x", min_val=0, max_val=1, include_boundaries="right") == 1.0


def test_predicates():
    assert all(is_integer(value) for value in [0, -3, *NUMPY_INTEGERS])
    assert not any(is_integer(value) for value in [True, np.True_, 1.0, "1", None])
    assert all(is_real_number(value) for value in [0, -3.5, *NUMPY_INTEGERS, *NUMPY_FLOATS])
    assert not any(is_real_number(value) for value in [True, np.nan, np.inf, "1", None, 1j])


def test_check_memory_takes_none_folders_and_memories(tmp_path):
    assert check_memory(None).location is None
    assert check_memory(tmp_path).location == str(tmp_path)
    assert check_memory(str(tmp_path)).location == str(tmp_path)
    memory = joblib.Memory(tmp_path, verbose=0)
    assert check_memory(memory) is memory
    with pytest.raises(ValueError, match=r"^memory must be None, a folder .* got 3\.$"):
        check_memory(3)


# -- NumPy numbers in every converted parameter --------------------------------------------
TINY_NETWORK = {
    "n_classes": 3, "n_mels": 16, "in_channels": 1, "base_filters": 8, "n_blocks": 2,
    "n_heads": 2, "stem_stride": 2,
}  # fmt: skip


def test_attention_cnn_takes_numpy_numbers_and_builds_the_same_network():
    torch.manual_seed(0)
    plain = AttentionCNN(**TINY_NETWORK, dropout=0.25)
    torch.manual_seed(0)
    numpy = AttentionCNN(
        **{name: np.int64(value) for name, value in TINY_NETWORK.items()},
        dropout=np.float32(0.25),
    )
    assert numpy.time_reduction == plain.time_reduction and type(numpy.time_reduction) is int
    assert numpy.dropout.p == 0.25
    for (name, mine), (_, theirs) in zip(
        numpy.state_dict().items(), plain.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(mine, theirs, msg=name)


@pytest.mark.parametrize("name", [*TINY_NETWORK, "dropout"])
def test_attention_cnn_still_refuses_bools(name):
    with pytest.raises(ValueError, match=f"module__{name} must be"):
        AttentionCNN(**{**TINY_NETWORK, name: True})


def test_grid_search_over_network_parameters_as_numpy_numbers():
    waveforms, Y, _ = make_birdsong(8, n_classes=2, duration=1.0, random_state=0)
    X = MelSpectrogramTransformer(duration=1.0).fit_transform(waveforms)
    grid = {
        "module__base_filters": np.array([4]),  # elements of arrays are NumPy scalars
        "module__n_blocks": [np.int64(2)],
        "module__n_heads": [np.int32(2)],
        "module__stem_stride": [np.int64(2)],
        "module__dropout": [np.float32(0.1)],
    }
    classifier = AttentionCNNClassifier(
        max_epochs=1, validation_fraction=None, window_seconds=1.0, overlap_seconds=0.5,
        random_state=0, verbose=0,
    )  # fmt: skip
    search = GridSearchCV(classifier, grid, cv=KFold(2), error_score="raise").fit(X, Y)
    assert isinstance(search.best_params_["module__n_blocks"], np.int64)
    assert search.best_estimator_.predict_proba(X).shape == (8, 2)


def test_grid_search_over_the_ensemble_threshold_as_numpy_numbers():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    members = [("a", OneVsRestClassifier(LogisticRegression())), ("b", LogisticRegression())]
    search = GridSearchCV(
        VotingClassifier(members[:1]),
        {"threshold": [np.float32(0.5), np.float64(1.0)]},
        cv=KFold(2),
        error_score="raise",
    ).fit(X, Y)
    assert search.best_params_["threshold"] in (0.5, 1.0)
    with pytest.raises(ValueError, match=r"threshold must be a number in \(0, 1\], got True"):
        VotingClassifier(members[:1], threshold=True).fit(X, Y)


def test_augmentations_take_numpy_numbers():
    assert RandomGain(np.float32(3.0)).max_db == 3.0
    masks = SpecAugment(np.int64(1), np.float32(0.25), np.int64(2), np.int32(4))
    assert (masks.time_masks, masks.max_time_fraction, masks.freq_masks, masks.max_freq_bands) == (
        1, 0.25, 2, 4,
    )  # fmt: skip
    assert all(type(value) is int for value in (masks.time_masks, masks.max_freq_bands))
    mixup = Mixup(alpha=np.float64(0.4), probability=np.float32(0.5))
    assert (mixup.alpha, mixup.probability) == (0.4, 0.5)
    background = BackgroundMix(np.float32(0.5), np.int64(3), np.int64(9))
    assert (background.probability, background.min_db, background.max_db) == (0.5, 3.0, 9.0)
    for factory in [lambda: RandomGain(True), lambda: Mixup(alpha=np.inf)]:
        with pytest.raises(ValueError, match="must be a number >= "):
            factory()


def test_make_birdsong_takes_numpy_numbers():
    plain = make_birdsong(
        4, n_classes=3, duration=0.5, sample_rate=8000, n_labels=1.5, noise=0.05, distractors=2,
        random_state=0,
    )  # fmt: skip
    numpy = make_birdsong(
        np.int64(4), n_classes=np.int32(3), duration=np.float32(0.5), sample_rate=np.int64(8000),
        n_labels=np.float64(1.5), noise=np.float64(0.05), distractors=np.int64(2),
        random_state=0,
    )  # fmt: skip
    np.testing.assert_array_equal(numpy[0], plain[0])
    np.testing.assert_array_equal(numpy[1], plain[1])
    with pytest.raises(ValueError, match="n_samples must be a positive integer, got True"):
        make_birdsong(True)


def test_audio_functions_take_numpy_numbers():
    waveform = np.random.default_rng(0).normal(size=16000).astype(np.float32)
    loaded = load_audio(
        waveform, sample_rate=np.int64(8000), source_rate=np.float64(16000),
        offset_seconds=np.float32(0.25), duration_seconds=np.int64(1),
    )  # fmt: skip
    expected = load_audio(
        waveform, sample_rate=8000, source_rate=16000, offset_seconds=0.25, duration_seconds=1
    )
    np.testing.assert_array_equal(loaded, expected)
    blocks = stream_audio(waveform, block_seconds=np.float32(0.5), sample_rate=np.int32(16000))
    assert [len(block) for block in blocks] == [8000, 8000]
    with pytest.raises(ValueError, match="sample_rate must be a positive whole number of Hz"):
        load_audio(waveform, sample_rate=np.float64(16000.5))


def test_metrics_take_numpy_numbers():
    y_true = np.array([[1, 0], [0, 1], [1, 1]])
    y_score = np.array([[0.9, 0.2], [0.3, 0.4], [0.7, 0.6]])
    assert padded_cmap(y_true, y_score, padding_factor=np.int64(2)) == padded_cmap(
        y_true, y_score, padding_factor=2
    )
    assert f1_at_threshold(y_true, y_score, threshold=np.float32(0.35)) == 1.0


def test_model_file_domains_take_numpy_numbers():
    assert np.int64(5) in Integer(1, 9) and np.uint8(9) in Integer(1, 9)
    assert True not in Integer(0, 9) and np.float64(5) not in Integer(1, 9)
    assert np.float32(0.5) in Real(0.0, 1.0) and np.int64(1) in Real(0.0, 1.0)
    assert np.float64(np.nan) not in Real(0.0, 1.0) and False not in Real(0.0, 1.0)
    assert np.float32(0.0) not in Real(0.0, 1.0, low_open=True)


MEL_PARAMETERS = {
    "sample_rate": 8000, "duration": 0.5, "n_fft": 256, "hop_length": 128, "n_mels": 16,
    "fmin": 50.0, "fmax": 4000.0, "top_db": 60.0, "input_sample_rate": 16000, "batch_size": 2,
}  # fmt: skip


def as_numpy(parameters: dict) -> dict:
    """The same values as NumPy scalars: int64 for the ints, float32 for the floats."""
    return {
        name: np.int64(value) if isinstance(value, int) else np.float32(value)
        for name, value in parameters.items()
    }


def test_mel_transformer_takes_numpy_numbers_and_transforms_the_same():
    waveforms = np.random.default_rng(0).normal(size=(3, 8000)).astype(np.float32)
    plain = MelSpectrogramTransformer(**MEL_PARAMETERS)
    numpy = MelSpectrogramTransformer(**as_numpy(MEL_PARAMETERS))
    np.testing.assert_array_equal(numpy.fit_transform(waveforms), plain.fit_transform(waveforms))
    assert numpy.audio_spec == plain.audio_spec


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("n_mels", "n_mels must be a positive integer, got True."),
        ("duration", "duration must be a positive finite number or None, got True."),
        ("input_sample_rate", "input_sample_rate must be a positive integer or None, got True."),
        ("fmin", "fmin must be a finite number >= 0, got True."),
    ],
)
def test_mel_transformer_still_refuses_bools(name, message):
    with pytest.raises(ValueError) as error:
        MelSpectrogramTransformer(**{**MEL_PARAMETERS, name: True}).fit([np.zeros(800)])
    assert str(error.value) == message


def test_grid_search_over_mel_parameters_as_numpy_numbers():
    waveforms = np.random.default_rng(0).normal(size=(8, 8000)).astype(np.float32)
    y = np.arange(8) % 2  # both classes in every fold
    pipeline = Pipeline(
        [
            ("mel", MelSpectrogramTransformer(**MEL_PARAMETERS)),
            ("flat", FunctionTransformer(lambda X: X.reshape(len(X), -1))),
            ("linear", LogisticRegression(max_iter=200)),
        ]
    )
    grid = {"mel__n_mels": np.array([8, 16]), "mel__hop_length": [np.int64(256)]}
    search = GridSearchCV(pipeline, grid, cv=KFold(2), error_score="raise")
    search.fit(waveforms, y)
    assert isinstance(search.best_params_["mel__n_mels"], np.int64)
    assert search.predict(waveforms).shape == (8,)


def test_audio_spec_takes_numpy_numbers_and_stores_python_ones():
    spec = AudioSpec(
        sample_rate=np.int64(16000), hop_length=np.int32(256), window_seconds=np.float32(1.5),
        clip_seconds=np.float64(3.0), input_sample_rate=np.uint16(8000),
        frequency_range=(np.int64(0), np.float32(8000)),
    )  # fmt: skip
    assert spec == AudioSpec(
        sample_rate=16000, hop_length=256, window_seconds=1.5, clip_seconds=3.0,
        input_sample_rate=8000, frequency_range=(0.0, 8000.0),
    )  # fmt: skip
    values = [spec.sample_rate, spec.hop_length, spec.input_sample_rate, spec.window_seconds]
    assert [type(value) for value in values] == [int, int, int, float]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hop_length": True}, "AudioSpec: hop_length must be a positive integer, got True."),
        ({"sample_rate": None}, "AudioSpec: sample_rate must be a positive integer, got None."),
        (
            {"clip_seconds": np.float32(np.inf)},
            "AudioSpec: clip_seconds must be a positive number of seconds or None, got ",
        ),
        ({"frequency_range": (20.0,)}, "AudioSpec: frequency_range must be (low, high) Hz"),
        ({"frequency_range": (True, 9.0)}, "AudioSpec: frequency_range must be (low, high) Hz"),
    ],
)
def test_audio_spec_refusals_keep_their_words(change, message):
    with pytest.raises(ValueError) as error:
        AudioSpec(**change)
    assert str(error.value).startswith(message)


def test_birdnet_estimators_take_numpy_numbers():
    numbers = {
        "overlap_seconds": np.float32(1.5), "batch_size": np.int64(2), "n_threads": np.int32(1),
        "input_sample_rate": np.int64(16000),
    }  # fmt: skip
    BirdNETEmbedder(**numbers).fit([np.zeros(16000)])
    BirdNETClassifier(**numbers, missing_score=np.float32(0.5))._check_params()
    for name, message in [
        ("overlap_seconds", "overlap_seconds must be >= 0 and below the 3-s window, got True."),
        ("n_threads", "n_threads must be a positive integer, got True."),
        ("input_sample_rate", "input_sample_rate must be a positive integer, got True."),
    ]:
        with pytest.raises(ValueError) as error:
            BirdNETEmbedder(**{name: True}).fit([np.zeros(16000)])
        assert str(error.value) == message
    with pytest.raises(ValueError, match=r"^missing_score must be in \[0, 1\], got 'x'\.$"):
        BirdNETClassifier(missing_score="x")._check_params()


def test_score_calibrator_takes_numpy_numbers():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.1, 1, 60)
    reviews = pd.DataFrame(
        {"label": np.repeat(["owl", "wren"], 30), "confidence": scores, "verdict": scores > 0.5}
    )
    plain = ScoreCalibrator(min_reviews=3, C=0.5).fit(reviews, reviews["verdict"])
    numpy = ScoreCalibrator(min_reviews=np.int64(3), C=np.float32(0.5))
    numpy.fit(reviews, reviews["verdict"])
    np.testing.assert_array_equal(numpy.coef_, plain.coef_)
    pd.testing.assert_frame_equal(
        numpy.thresholds(
            probability=np.float32(0.75), confidence_level=np.float64(0.9),
            n_bootstrap=np.int64(3), random_state=0,
        ),
        plain.thresholds(probability=0.75, confidence_level=0.9, n_bootstrap=3, random_state=0),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"^n_bootstrap must be a non-negative integer, got -1"):
        plain.thresholds(probability=0.75, n_bootstrap=-1)
    with pytest.raises(ValueError, match=r"^precision must be a number strictly between 0 and 1"):
        plain.thresholds(precision=np.float32(1.0))
    with pytest.raises(ValueError, match=r"^min_reviews must be a positive integer, got True\.$"):
        ScoreCalibrator(min_reviews=True).fit(reviews, reviews["verdict"])


def test_plot_detections_takes_numpy_numbers():
    waveform = np.random.default_rng(0).normal(size=16000).astype(np.float32)
    mel = MelSpectrogramTransformer(**{**MEL_PARAMETERS, "duration": None})
    fig = plot_detections(
        waveform, mel=mel, start_s=np.float32(0.25), duration_s=np.int64(1),
        max_classes=np.int64(2),
    )  # fmt: skip
    plain = plot_detections(waveform, mel=mel, start_s=0.25, duration_s=1, max_classes=2)
    np.testing.assert_array_equal(
        fig.axes[0].get_images()[0].get_array(), plain.axes[0].get_images()[0].get_array()
    )
    with pytest.raises(ValueError, match=r"^start_s must be a finite number of seconds >= 0"):
        plot_detections(waveform, mel=mel, start_s=True)
    plt.close("all")


class _Client:
    """What set_torch_threads asks of a Dask client, for one worker."""

    def scheduler_info(self, n_workers):
        return {"workers": {"tcp://worker": {}}}

    def run(self, function, plan):
        self.plan = plan


def test_set_torch_threads_takes_numpy_numbers():
    assert set_torch_threads(_Client(), n_threads=np.int64(2)) == {"tcp://worker": 2}
    assert type(set_torch_threads(_Client(), n_threads=np.int32(1))["tcp://worker"]) is int
    with pytest.raises(ValueError, match=r"^n_threads must be a positive integer, got True\.$"):
        set_torch_threads(_Client(), n_threads=True)
