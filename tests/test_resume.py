"""Tests of resumable training: a checkpoint after every epoch, and fits that resume from it.

The reference is always an uninterrupted fit: a resumed one must end with the same weights
(every tensor equal), the same predictions and the same history.
"""

import json
import logging
import pickle

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sklearn_birdaudio import MelSpectrogramTransformer, make_birdsong
from sklearn_birdaudio.checkpoints import CHECKPOINT_FILE
from sklearn_birdaudio.classifier import AttentionCNNClassifier

SAMPLE_RATE = 16000
# Long recordings (random windows each epoch), shuffled batches, dropout, augmentation, a
# validation split: every random draw of training, so a generator left out of the
# checkpoint shows.
CNN = {
    "module__base_filters": 4, "module__n_blocks": 2, "module__n_heads": 2,
    "module__dropout": 0.2, "lr": 3e-3, "max_epochs": 5, "batch_size": 6,
    "validation_fraction": 0.25, "patience": None, "window_seconds": 1.0,
    "overlap_seconds": 0.5, "predict_batch_size": 8, "augment": "default", "crops_per_recording": 2,
    "random_state": 0, "verbose": 0,
}  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run fastest on one thread, and no slower beside other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def recordings():
    waveforms, Y, _ = make_birdsong(
        24, n_classes=3, duration=2.0, sample_rate=SAMPLE_RATE, random_state=0
    )
    lengths = np.random.default_rng(0).uniform(0.6, 2.0, len(waveforms))
    waveforms = [waveform[: int(length * SAMPLE_RATE)] for waveform, length in zip(
        waveforms, lengths, strict=True)]  # fmt: skip
    mel = MelSpectrogramTransformer(
        sample_rate=SAMPLE_RATE, duration=None, n_fft=512, hop_length=256, n_mels=16, fmax=8000
    )
    return mel.fit_transform(waveforms), Y


@pytest.fixture(scope="module")
def uninterrupted(recordings):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return AttentionCNNClassifier(**CNN).fit(*recordings)
    finally:
        torch.set_num_threads(threads)


class InterruptAt(Callback):
    """Raise ``error`` at the end of ``epoch``, or after its ``batch``-th training batch."""

    def __init__(self, epoch, batch=None, error=KeyboardInterrupt):
        self.epoch, self.batch, self.error = epoch, batch, error

    def on_batch_end(self, net, training, **kwargs):
        at_batch = training and len(net.history) == self.epoch
        if at_batch and len(net.history[-1, "batches"]) == self.batch:
            raise self.error("interrupted mid-epoch")

    def on_epoch_end(self, net, **kwargs):
        if self.batch is None and len(net.history) == self.epoch:
            raise self.error("interrupted")


def assert_same_model(model, reference, X):
    weights, expected = model.module_.state_dict(), reference.module_.state_dict()
    assert weights.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(weights[name], tensor), name
    np.testing.assert_array_equal(model.predict_proba(X), reference.predict_proba(X))
    without_durations = [
        [{key: value for key, value in epoch.items() if key != "dur"} for epoch in history]
        for history in (model.history_, reference.history_)
    ]
    assert without_durations[0] == without_durations[1]


@pytest.mark.parametrize(
    "interruption",
    [
        InterruptAt(2),  # KeyboardInterrupt: skorch stops gracefully, fit returns
        InterruptAt(3, batch=2, error=RuntimeError),  # a crash within epoch 3
    ],
    ids=["keyboard-interrupt-after-epoch-2", "crash-during-epoch-3"],
)
def test_an_interrupted_fit_resumes_to_the_same_model(
    interruption, recordings, uninterrupted, tmp_path, caplog
):
    X, Y = recordings
    first = AttentionCNNClassifier(**CNN, checkpoint_dir=tmp_path, callbacks=[interruption])
    if interruption.error is KeyboardInterrupt:
        with caplog.at_level(logging.WARNING, "sklearn_birdaudio.classifier"):
            first.fit(X, Y)
        assert "Training stopped after epoch 2 of 5" in caplog.text
        assert len(first.history_) == 2
    else:
        with pytest.raises(RuntimeError, match="mid-epoch"):
            first.fit(X, Y)
    assert [path.name for path in tmp_path.iterdir()] == [CHECKPOINT_FILE]
    saved_durations = first.history_[:2, "dur"]

    # Another process would build the classifier again; verbose may change.
    resumed = AttentionCNNClassifier(**{**CNN, "verbose": 1}, checkpoint_dir=tmp_path)
    resumed.fit(X, Y)
    assert resumed.history_[:2, "dur"] == saved_durations  # epochs 1-2 were not run again
    assert_same_model(resumed, uninterrupted, X)


def test_early_stopping_resumes_with_its_count_and_best_weights(recordings, tmp_path):
    X, Y = recordings
    stalling = {**CNN, "lr": 0.3, "max_epochs": 8, "patience": 2}  # best epoch 5 of 6 (mAP)
    reference = AttentionCNNClassifier(**stalling).fit(X, Y)
    best = dict(reference.callbacks_)["early_stopping"].best_epoch_
    stop = len(reference.history_)
    assert best < stop < 8  # it stopped early, then restored an earlier epoch's weights
    # Interrupted after a miss: the resumed run must stop at the same epoch and restore
    # the best weights, saved before the interruption.
    interrupted_at = best + 1
    AttentionCNNClassifier(
        **stalling, checkpoint_dir=tmp_path, callbacks=[InterruptAt(interrupted_at)]
    ).fit(X, Y)
    resumed = AttentionCNNClassifier(**stalling, checkpoint_dir=tmp_path).fit(X, Y)
    assert_same_model(resumed, reference, X)


def test_a_finished_run_is_trained_afresh_and_its_file_holds_no_code(recordings, tmp_path):
    X, Y = recordings
    params = {**CNN, "max_epochs": 2, "checkpoint_dir": tmp_path}
    first = AttentionCNNClassifier(**params).fit(X, Y)
    # weights_only=True refuses anything but tensors and plain containers.
    state = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    metadata = json.loads(state["metadata"])
    assert metadata["finished"] and metadata["epochs"] == 2
    assert metadata["run"]["params"]["lr"] == CNN["lr"]
    again = AttentionCNNClassifier(**params).fit(X, Y)
    assert again.history_[:, "dur"] != first.history_[:, "dur"]  # both epochs run again
    assert_same_model(again, first, X)


@pytest.mark.parametrize(
    ("change", "named"),
    [({"lr": 1e-2}, "lr"), ({"module__n_blocks": 1}, "module__n_blocks"), ({}, "training data")],
)
def test_a_checkpoint_of_another_run_is_not_resumed(change, named, recordings, tmp_path):
    X, Y = recordings
    params = {**CNN, "max_epochs": 2, "checkpoint_dir": tmp_path}
    AttentionCNNClassifier(**params, callbacks=[InterruptAt(1)]).fit(X, Y)
    other = AttentionCNNClassifier(**{**params, **change})
    with pytest.warns(UserWarning, match=f"unfinished run that differs in .*{named}"):
        other.fit(X, Y if change else 1 - Y)
    assert len(other.history_) == 2
    state = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert json.loads(state["metadata"])["finished"]  # overwritten by the new run


def test_a_run_without_random_state_resumes_with_its_own_seed(recordings, tmp_path):
    X, Y = recordings
    params = {**CNN, "max_epochs": 2, "random_state": None, "checkpoint_dir": tmp_path}
    first = AttentionCNNClassifier(**params, callbacks=[InterruptAt(1)]).fit(X, Y)
    resumed = AttentionCNNClassifier(**params).fit(X, Y)
    assert resumed._seed == first._seed
    assert resumed.history_[0, "dur"] == first.history_[0, "dur"]
    assert len(resumed.history_) == 2


class Payload:
    """Any class: unpickling it would run code from the file."""


@pytest.mark.parametrize(
    "content",
    [b"not a checkpoint", pickle.dumps({"metadata": Payload()}, protocol=2)],
    ids=["garbage", "pickled-object"],
)
def test_a_file_that_is_not_a_checkpoint_is_named_and_never_run(content, recordings, tmp_path):
    (tmp_path / CHECKPOINT_FILE).write_bytes(content)
    with pytest.raises(ValueError, match=f"{CHECKPOINT_FILE} is not a training checkpoint"):
        AttentionCNNClassifier(**CNN, checkpoint_dir=tmp_path).fit(*recordings)


def test_checkpoint_dir_is_a_parameter_and_the_fit_leaves_no_private_state(recordings, tmp_path):
    cnn = AttentionCNNClassifier(**{**CNN, "max_epochs": 1}, checkpoint_dir=tmp_path)
    assert cnn.get_params()["checkpoint_dir"] == tmp_path
    cnn.fit(*recordings)
    assert not {"_resume", "_checkpoint_run", "_train_generator"} & set(vars(cnn))
    assert not [name for name in cnn.get_params() if name.startswith("_")]
    # The fitted classifier pickles without its training data or checkpoint state.
    assert len(pickle.dumps(cnn)) < 200_000
