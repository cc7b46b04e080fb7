"""Tests of the figures: what each draws (boxes, lines, legends) against the data given."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import soundfile
from matplotlib.patches import Rectangle
from sklearn.exceptions import NotFittedError
from sklearn.metrics import average_precision_score, precision_recall_curve
from sklearn.preprocessing import label_binarize
from skorch.history import History
from test_classifier import MEL, SAMPLE_RATE, songs, tiny_pipeline

from sklearn_birdaudio import MelSpectrogramTransformer
from sklearn_birdaudio.detection import WindowScores, detect, window_scores
from sklearn_birdaudio.plotting import (
    plot_detections,
    plot_precision_recall,
    plot_training_curves,
)

DISPLAY_MEL = MelSpectrogramTransformer(**{**MEL, "duration": None})
FREQUENCY_RANGE = (500.0, 6000.0)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fitted():
    X, Y, _ = songs(30, 0, as_frame=True)
    return tiny_pipeline(max_epochs=3).fit(X, Y)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Two 3-second recordings of synthetic song."""
    folder = tmp_path_factory.mktemp("recordings")
    X, _, _ = songs(6, 2)
    paths = []
    for index in range(2):
        path = folder / f"recording_{index}.wav"
        soundfile.write(path, np.concatenate(list(X[3 * index : 3 * index + 3])), SAMPLE_RATE)
        paths.append(path)
    return paths


def detections_table(paths) -> pd.DataFrame:
    """Three detections in the first file (two in one window), one in the second."""
    table = pd.DataFrame(
        {
            "file": [str(paths[0])] * 3 + [str(paths[1])],
            "start_s": [0.0, 0.0, 1.5, 0.5],
            "end_s": [1.0, 1.0, 2.5, 1.5],
            "label": ["wren", "tody", "wren", "tody"],
            "confidence": [0.874, 0.5, 0.25, 0.9],
        }
    )
    table.attrs["frequency_range"] = FREQUENCY_RANGE
    return table


def rectangles(ax) -> list[Rectangle]:
    return [patch for patch in ax.patches if isinstance(patch, Rectangle)]


def texts(ax) -> list[str]:
    return [text.get_text() for text in ax.texts]


def legend_labels(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


# -- plot_detections --------------------------------------------------------------------


def test_boxes_are_the_detections_of_the_file(recordings):
    detections = detections_table(recordings)
    fig = plot_detections(recordings[0], detections, mel=DISPLAY_MEL)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    own = detections[detections["file"] == str(recordings[0])]
    boxes = rectangles(ax)
    assert len(boxes) == len(own) == 3
    for box, row in zip(boxes, own.itertuples(), strict=True):
        assert box.get_x() == row.start_s
        assert box.get_width() == pytest.approx(row.end_s - row.start_s)
        assert box.get_y() == FREQUENCY_RANGE[0]
        assert box.get_height() == pytest.approx(FREQUENCY_RANGE[1] - FREQUENCY_RANGE[0])
    assert texts(ax) == ["wren 0.87", "tody 0.50", "wren 0.25"]
    # The same colour for a class's boxes, different ones for different classes.
    assert boxes[0].get_edgecolor() == boxes[2].get_edgecolor() != boxes[1].get_edgecolor()
    assert fig.get_suptitle() == "recording_0.wav"


def test_spectrogram_is_the_mel_of_the_whole_recording_on_a_hz_axis(recordings):
    mel = MelSpectrogramTransformer(**MEL)  # duration=1.0: a model's mel step
    fig = plot_detections(recordings[0], mel=mel)
    ax = fig.axes[0]
    expected = DISPLAY_MEL.transform([recordings[0]])[0, 0]
    image = ax.get_images()[0].get_array()
    assert image.shape == expected.shape == (MEL["n_mels"], 1 + 3 * SAMPLE_RATE // 256)
    np.testing.assert_allclose(image, expected)
    assert mel.duration == 1.0  # the caller's transformer is left as it was
    assert ax.get_ylim() == (MEL.get("fmin", 20.0), MEL["fmax"])
    assert ax.get_xlim() == pytest.approx((0.0, 3.0), abs=256 / SAMPLE_RATE)
    assert ax.get_yscale() == "function"  # the mel scale, in Hz
    assert {250, 1000, 4000, 8000} <= set(ax.get_yticks())
    assert ax.get_ylabel() == "Frequency (Hz)" and ax.get_xlabel() == "Time (s)"
    assert rectangles(ax) == [] and texts(ax) == []


def test_waveform_source_takes_every_row_and_the_mel_band():
    waveform = np.concatenate(list(songs(2, 3)[0]))
    detections = pd.DataFrame(
        {"start_s": [0.0, 1.0], "end_s": [1.0, 2.0], "label": ["a", "b"], "confidence": [0.6, 0.7]}
    )  # no file column and no frequency_range: the mel's band is used
    fig = plot_detections(waveform, detections, mel=DISPLAY_MEL, title="two songs")
    ax = fig.axes[0]
    boxes = rectangles(ax)
    assert [box.get_x() for box in boxes] == [0.0, 1.0]
    assert all(box.get_y() == 20.0 and box.get_height() == 8000 - 20.0 for box in boxes)
    assert texts(ax) == ["a 0.60", "b 0.70"]
    assert fig.get_suptitle() == "two songs"


def test_detections_and_scores_of_a_fitted_model(fitted, recordings):
    path = recordings[0]
    detections = detect(fitted, [path], overlap_seconds=0.5, min_confidence=0.0, verbose=0)
    scores = window_scores(fitted, path, overlap_seconds=0.5)
    assert len(detections) > 0
    fig = plot_detections(path, detections, scores, mel=fitted.named_steps["mel"], max_classes=3)
    spectrogram_axes, score_axes = fig.axes
    boxes = rectangles(spectrogram_axes)
    assert len(boxes) == len(detections)
    np.testing.assert_allclose([box.get_x() for box in boxes], detections["start_s"])
    np.testing.assert_allclose(
        [box.get_width() for box in boxes], detections["end_s"] - detections["start_s"]
    )
    np.testing.assert_allclose([box.get_y() for box in boxes], 20.0)  # the model's band
    assert texts(spectrogram_axes) == [
        f"{row.label} {row.confidence:.2f}" for row in detections.itertuples()
    ]
    # The three classes with the highest maximum score, each line its column of scores.
    assert len(score_axes.lines) == 3
    highest = np.argsort(-scores.scores.max(axis=0), kind="stable")[:3]
    assert legend_labels(score_axes) == [str(scores.classes[column]) for column in highest]
    for line, column in zip(score_axes.lines, highest, strict=True):
        np.testing.assert_array_equal(line.get_xdata(), (scores.start_s + scores.end_s) / 2)
        np.testing.assert_array_equal(line.get_ydata(), scores.scores[:, column])
    assert score_axes.get_ylim()[0] == 0 and 1 <= score_axes.get_ylim()[1] <= 1.05
    assert score_axes.get_xlabel() == "Time (s)"


@pytest.mark.parametrize("max_classes", [1, 2, 4, 10])
def test_score_lines_are_the_highest_classes(max_classes):
    scores = WindowScores(
        start_s=np.array([0.0, 1.0, 2.0]),
        end_s=np.array([1.0, 2.0, 2.5]),
        scores=np.array([[0.1, 0.9, 0.3, 0.0], [0.2, 0.1, 0.4, 0.05], [0.3, 0.2, 0.5, 0.0]]),
        classes=np.array(["w", "x", "y", "z"]),
        duration_s=2.5,
    )
    waveform = np.zeros(int(2.5 * SAMPLE_RATE), dtype=np.float32)
    fig = plot_detections(waveform, scores=scores, mel=DISPLAY_MEL, max_classes=max_classes)
    score_axes = fig.axes[1]
    assert len(score_axes.lines) == min(max_classes, 4)
    assert legend_labels(score_axes) == ["x", "y", "w", "z"][:max_classes]
    np.testing.assert_array_equal(score_axes.lines[0].get_xdata(), [0.5, 1.5, 2.25])
    np.testing.assert_array_equal(score_axes.lines[0].get_ydata(), [0.9, 0.1, 0.2])
    assert fig.axes[0].get_xlim() == (0.0, 2.5)


def test_ten_minutes_are_drawn_whole():
    waveform = np.zeros(600 * SAMPLE_RATE, dtype=np.float32)
    fig = plot_detections(waveform, mel=DISPLAY_MEL)  # hop 256 at 16 kHz: 37 500 frames
    assert fig.axes[0].get_images()[0].get_array().shape == (MEL["n_mels"], 37501)
    assert fig.axes[0].get_xlim() == (0.0, 600.0)
    fig.savefig(io.BytesIO(), format="png", dpi=50)


def test_detections_errors(recordings):
    detections = detections_table(recordings)
    with pytest.raises(ValueError, match=r"missing the columns \['confidence'\]"):
        plot_detections(recordings[0], detections.drop(columns="confidence"), mel=DISPLAY_MEL)
    with pytest.raises(ValueError, match=r"missing the columns \['file'\]"):
        plot_detections(recordings[0], detections.drop(columns="file"), mel=DISPLAY_MEL)
    with pytest.raises(TypeError, match="detections must be a pandas DataFrame"):
        plot_detections(recordings[0], detections.to_dict(), mel=DISPLAY_MEL)
    with pytest.warns(UserWarning, match="no rows for the file"):
        fig = plot_detections(recordings[0], detections.iloc[3:], mel=DISPLAY_MEL)
    assert rectangles(fig.axes[0]) == []
    with pytest.raises(TypeError, match="mel must be a MelSpectrogramTransformer"):
        plot_detections(recordings[0], mel=tiny_pipeline())
    with pytest.raises(ValueError, match="max_classes must be a positive integer, got 0"):
        plot_detections(recordings[0], max_classes=0, mel=DISPLAY_MEL)
    with pytest.raises(ValueError, match=r"array of shape \(2, 3, 4\)"):
        plot_detections(np.zeros((2, 3, 4)))


def test_scores_errors(recordings):
    detections = detections_table(recordings)
    scores = WindowScores(
        start_s=np.array([0.0, 1.0]),
        end_s=np.array([1.0, 2.0]),
        scores=np.zeros((2, 2)),
        classes=np.array(["wren", "owl"]),
        duration_s=3.0,
    )
    with pytest.raises(ValueError, match=r"labels \['tody'\] that are not among scores.classes"):
        plot_detections(recordings[0], detections, scores, mel=DISPLAY_MEL)
    scores.scores = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"shape \(2, 3\); expected .* \(2, 2\)"):
        plot_detections(recordings[0], scores=scores, mel=DISPLAY_MEL)
    with pytest.raises(TypeError, match="scores must be a WindowScores"):
        plot_detections(recordings[0], scores=np.zeros((2, 2)), mel=DISPLAY_MEL)


# -- plot_training_curves ---------------------------------------------------------------


def test_training_curves_are_the_history(fitted):
    history = fitted.named_steps["cnn"].history_
    fig = plot_training_curves(fitted)
    loss_axes, map_axes = fig.axes
    train, valid, best = loss_axes.lines
    epochs = history[:, "epoch"]
    np.testing.assert_array_equal(train.get_xdata(), epochs)
    np.testing.assert_allclose(train.get_ydata(), history[:, "train_loss"])
    np.testing.assert_allclose(valid.get_ydata(), history[:, "valid_loss"])
    best_epoch = epochs[int(np.argmin(history[:, "valid_loss"]))]
    assert list(best.get_xdata()) == [best_epoch, best_epoch]
    valid_map, map_best = map_axes.lines
    np.testing.assert_allclose(valid_map.get_ydata(), history[:, "valid_mAP"])
    assert list(map_best.get_xdata()) == [best_epoch, best_epoch]
    assert legend_labels(loss_axes) == [
        "training loss",
        "validation loss",
        f"best epoch ({best_epoch})",
    ]
    assert map_axes.get_xlabel() == "Epoch"
    # The classifier itself and its History give the same figure.
    for source in (fitted.named_steps["cnn"], history):
        again = plot_training_curves(source)
        np.testing.assert_allclose(again.axes[0].lines[1].get_ydata(), valid.get_ydata())


def test_best_epoch_is_the_lowest_validation_loss():
    history = History(
        [
            {"epoch": 1, "train_loss": 1.0, "valid_loss": 0.9, "valid_mAP": 0.3},
            {"epoch": 2, "train_loss": 0.8, "valid_loss": 0.5, "valid_mAP": 0.5},
            {"epoch": 3, "train_loss": 0.6, "valid_loss": 0.7, "valid_mAP": 0.6},
        ]
    )
    fig = plot_training_curves(history, figsize=(5, 3))
    assert list(fig.axes[0].lines[2].get_xdata()) == [2, 2]
    assert tuple(fig.get_size_inches()) == (5, 3)


def test_training_curves_without_validation():
    X, Y, _ = songs(16, 0, as_frame=True)
    model = tiny_pipeline(max_epochs=3, validation_fraction=None).fit(X, Y)
    fig = plot_training_curves(model)
    assert len(fig.axes) == 1
    (train,) = fig.axes[0].lines
    np.testing.assert_allclose(train.get_ydata(), model[-1].history_[:, "train_loss"])


def test_training_curves_errors():
    with pytest.raises(NotFittedError):
        plot_training_curves(tiny_pipeline())
    with pytest.raises(TypeError, match="history must be a fitted AttentionCNNClassifier"):
        plot_training_curves(MelSpectrogramTransformer())
    with pytest.raises(ValueError, match="history is empty"):
        plot_training_curves(History())
    with pytest.raises(ValueError, match="no train_loss"):
        plot_training_curves(History([{"epoch": 1, "dur": 0.1}]))


# -- plot_precision_recall --------------------------------------------------------------


@pytest.fixture
def multilabel_scores():
    """Targets of 5 classes with 30, 20, 0, 40 and 10 positives, and noisy scores."""
    rng = np.random.default_rng(0)
    y_true = np.zeros((100, 5), dtype=int)
    for column, n_positives in enumerate([30, 20, 0, 40, 10]):
        y_true[rng.choice(100, n_positives, replace=False), column] = 1
    y_score = np.clip(0.4 * y_true + rng.uniform(0, 0.7, y_true.shape), 0, 1)
    return y_true, y_score, ["a", "b", "c", "d", "e"]


def test_precision_recall_curves_per_class_and_micro(multilabel_scores):
    y_true, y_score, names = multilabel_scores
    fig = plot_precision_recall(y_true, y_score, classes=names)
    (ax,) = fig.axes
    order = [3, 0, 1, 4]  # classes with positives, most frequent first; "c" has none
    assert len(ax.lines) == len(order) + 1
    expected = [
        f"{names[column]} (AP {average_precision_score(y_true[:, column], y_score[:, column]):.2f})"
        for column in order
    ]
    micro = average_precision_score(y_true, y_score, average="micro")
    assert legend_labels(ax) == [*expected, f"micro-average (AP {micro:.2f})"]
    for line, column in zip(ax.lines[:-1], order, strict=True):
        precision, recall, _ = precision_recall_curve(y_true[:, column], y_score[:, column])
        np.testing.assert_array_equal(line.get_xdata(), recall)
        np.testing.assert_array_equal(line.get_ydata(), precision)
    precision, recall, _ = precision_recall_curve(y_true.ravel(), y_score.ravel())
    np.testing.assert_array_equal(ax.lines[-1].get_ydata(), precision)
    assert ax.lines[-1].get_linewidth() > ax.lines[0].get_linewidth()
    assert "no positives, not shown: c" in ax.get_title()
    assert ax.get_xlabel() == "Recall" and ax.get_ylabel() == "Precision"


def test_precision_recall_max_classes_keeps_the_most_frequent(multilabel_scores):
    y_true, y_score, names = multilabel_scores
    fig = plot_precision_recall(y_true, y_score, classes=names, max_classes=2)
    ax = fig.axes[0]
    assert len(ax.lines) == 3
    assert [label.split(" ")[0] for label in legend_labels(ax)] == ["d", "a", "micro-average"]
    assert "2 of 5 classes drawn: the 2 with the most positives" in ax.get_title()


def test_precision_recall_takes_dataframes_and_labels(multilabel_scores):
    y_true, y_score, names = multilabel_scores
    reference = legend_labels(plot_precision_recall(y_true, y_score, classes=names).axes[0])
    # DataFrames: class names from the columns, scores matched to targets by name.
    true_frame = pd.DataFrame(y_true, columns=names)
    score_frame = pd.DataFrame(y_score, columns=names)[names[::-1]]
    assert legend_labels(plot_precision_recall(true_frame, score_frame).axes[0]) == reference
    # 1-D labels are binarized with classes.
    labels = np.array(["x", "y", "z"])[np.random.default_rng(1).integers(0, 3, 50)]
    scores = np.random.default_rng(2).uniform(size=(50, 3))
    fig = plot_precision_recall(labels, scores, classes=["x", "y", "z"])
    indicator = label_binarize(labels, classes=["x", "y", "z"])
    expected = {
        f"{name} (AP {average_precision_score(indicator[:, column], scores[:, column]):.2f})"
        for column, name in enumerate(["x", "y", "z"])
    }
    assert set(legend_labels(fig.axes[0])[:-1]) == expected
    # Without classes, the sorted labels name the columns.
    assert legend_labels(plot_precision_recall(labels, scores).axes[0]) == legend_labels(
        fig.axes[0]
    )


def test_precision_recall_errors(multilabel_scores):
    y_true, y_score, names = multilabel_scores
    with pytest.raises(ValueError, match=r"y_true has shape \(100, 5\).*y_score has shape"):
        plot_precision_recall(y_true, y_score[:, :4])
    with pytest.raises(ValueError, match=r"\(100, 5\).*\(99, 5\)"):
        plot_precision_recall(y_true, y_score[:99])
    with pytest.raises(ValueError, match="classes has 4 names"):
        plot_precision_recall(y_true, y_score, classes=names[:4])
    with pytest.raises(ValueError, match=r"labels \['w'\] that are not in classes"):
        plot_precision_recall(np.array(["x", "w"]), np.zeros((2, 2)), classes=["x", "y"])
    with pytest.raises(ValueError, match="pass classes"):
        plot_precision_recall(np.array(["x", "x"]), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="no positive label"):
        plot_precision_recall(np.zeros((4, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="0/1 indicator"):
        plot_precision_recall(np.full((4, 2), 2), np.ones((4, 2)))
    with pytest.raises(ValueError, match="y_score must be a 2-D array"):
        plot_precision_recall(y_true[:, 0], y_score[:, 0])
    with pytest.raises(ValueError, match="different columns"):
        plot_precision_recall(
            pd.DataFrame(y_true, columns=names), pd.DataFrame(y_score, columns=list("vwxyz"))
        )


# -- accuracy against speed ---------------------------------------------------------------


def test_the_pareto_front_holds_exactly_the_models_nothing_beats_on_both():
    from sklearn_birdaudio.plotting import pareto_front

    rng = np.random.default_rng(0)
    scores, speeds = rng.random(40), rng.random(40) * 1000 + 1
    front = pareto_front(scores, speeds)
    for i in range(40):
        dominated = any(
            scores[j] >= scores[i] and speeds[j] >= speeds[i]
            and (scores[j] > scores[i] or speeds[j] > speeds[i])
            for j in range(40)
        )  # fmt: skip
        assert front[i] == (not dominated)
    assert pareto_front([0.5, 0.5], [10, 10]).tolist() == [True, True]  # ties: both
    with pytest.raises(ValueError, match="1-D of one length"):
        pareto_front([0.5], [1, 2])


def test_the_accuracy_speed_figure_draws_each_model_and_the_front():
    from sklearn_birdaudio.plotting import plot_accuracy_speed

    models = pd.DataFrame({
        "name": ["ours", "teacher", "slow and bad"], "macro mAP": [0.75, 0.9, 0.5],
        "low": [0.7, 0.85, 0.4], "high": [0.8, 0.95, 0.6], "x real time": [1000, 60, 50],
        "group": ["ours", "BirdNET", "BirdNET"],
    })  # fmt: skip
    figure = plot_accuracy_speed(models)
    axes = figure.axes[0]
    assert axes.get_xscale() == "log"
    assert [text.get_text() for text in axes.texts] == ["ours", "teacher", "slow and bad"]
    front = next(line for line in axes.get_lines() if line.get_label() == "Pareto front")
    assert sorted(front.get_xdata()) == [60, 1000]  # "slow and bad" is beaten on both
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert {"ours", "BirdNET", "Pareto front"} <= set(legend)
    plt.close(figure)
    with pytest.raises(ValueError, match="positive number"):
        plot_accuracy_speed(models.assign(**{"x real time": [0, 1, 2]}))
    with pytest.raises(ValueError, match="lacks the columns"):
        plot_accuracy_speed(models.drop(columns="name"))
