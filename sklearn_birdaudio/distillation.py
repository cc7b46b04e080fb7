"""Distillation: a fast network of our own that learns from a slow, accurate teacher.

:class:`DistilledClassifier` fits a *teacher* (any classifier of the package with
``predict_proba``; by default :func:`birdnet_teacher`, BirdNET v2.4 embeddings + logistic
regression ensembled with BirdNET's own scores) and lets it label every window of the
training audio. A *student*, a log-mel front end + :class:`AttentionCNNClassifier`, then
learns from those window-level soft labels mixed with the recordings' own labels (which
say what is somewhere in a recording, not in which window). Unlabelled recordings, such as
soundscapes, can be given to ``fit``: the teacher labels them too.

After ``fit`` only the student predicts: ``predict_proba``, :func:`detect` and
:func:`save_model` use ``student_``, which runs without BirdNET or LiteRT. The model file
records the teacher and its licence (:func:`lineage_of`).

The windows
-----------
Every recording is cut into windows of the student's ``window_seconds`` that start every
``hop_seconds`` (the last one ends at the end of the recording; a shorter recording is
one window), on the student's spectrogram frames. The teacher scores each window as a
waveform cut at the same times, so a soft label describes exactly what the student sees.
The labelled recordings are scored by teachers fitted without them (``teacher_cv``
folds), so the soft labels are not the teacher's memory of its own training data.

Embedding regression
--------------------
With ``embedding_weight > 0`` the student also learns what an *embedder* (by default
BirdNET's, which the default teacher is built on) makes of each window: 1024 values
instead of the teacher's handful of class scores. The window embeddings are reduced to
their first 64 whitened principal components, squashed into (0, 1) by a sigmoid
(:func:`~sklearn_birdaudio.student_training.embedding_targets`), and appended to the
targets as extra outputs of the student's head, trained by the same binary cross-entropy
(the sigmoid's logit regresses the component), weighted so that the embedding targets
count ``embedding_weight`` times the class targets. After training the extra outputs are
cut off the head: the fitted student has the classes' outputs only, and runs as any
student does.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import logging
import pickle

import joblib
import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ._validation import check_integer, check_memory, check_real
from .audio import load_audio
from .feature_cache import _cached_windows, _file_key
from .feature_inputs import _as_sources, _input_name, _is_path
from .losses import MaskedBCEWithLogitsLoss, SoftenedBCEWithLogitsLoss
from .modules import AttentionCNN
from .spec import Spectrograms, get_audio_spec
from .student_training import (
    balanced_repeats,
    column_weights,
    embedding_targets,
    fit_with_loss,
    keep_class_outputs,
)
from .targets import encode_targets
from .training import window_starts

__all__ = ["DistilledClassifier", "birdnet_teacher", "lineage_of", "make_student"]

logger = logging.getLogger(__name__)

#: The licence a student distilled from BirdNET inherits (share-alike).
BIRDNET_LICENSE = "CC BY-NC-SA 4.0"

#: ``localise_labels``: a labelled species' best window score is raised to at least this
#: before the scores are divided by it (a teacher that never hears it does not blow up).
_SMALLEST_BEST_SCORE = 1e-3

#: The real-valued parameters of DistilledClassifier: their bounds (``check_real``'s
#: arguments) and what the error message says is expected.
_POSITIVE = {"min_val": 0, "include_boundaries": "neither"}
_REAL_PARAMETERS = (
    ("soft_weight", {"min_val": 0, "max_val": 1}, "in [0, 1]"),
    ("hop_seconds", _POSITIVE, "a positive number"),
    ("class_balance", {"min_val": 0, "max_val": 1}, "in [0, 1]"),
    ("temperature", _POSITIVE, "a positive number"),
    ("embedding_weight", {"min_val": 0}, "a number >= 0"),
)

_STUDENT = {
    # the small-data recipe on the teacher's 3-s windows (see make_student)
    "window_seconds": 3.0,
    "overlap_seconds": 1.5,
    "crops_per_recording": 1,  # every window is a training example already
    # Chosen on a validation split of the xeno-canto train recordings (benchmarks/
    # distill.py --validation --ablation): 40 epochs scored as 32 filters at 20 (macro mAP
    # 0.787 vs 0.781, 0.704 at 16 filters and 20 epochs) at a quarter of the cost; max over
    # windows, for macro mAP + top-1 (0.787 + 0.800 against 0.800 + 0.689 for the mean).
    "max_epochs": 40,
    "aggregation": "max",
}


def make_student(*, random_state=None, verbose: int = 1, **params) -> Pipeline:
    """The default student: log-mel + the small-data recipe's network on 3-s windows.

    16 filters and stem stride 2 (the recipe's network, which detects at 16.1x
    BirdNET's speed on 2 cores, docs/benchmarks.md), trained 40 epochs, the recording's
    score the maximum over its windows.

    Parameters
    ----------
    random_state : int, RandomState or None, default=None
        Seeds the network.
    verbose : int, default=1
        Epoch log of the network; 0 is silent.
    **params
        Classifier parameters that replace the defaults.

    Returns
    -------
    Pipeline
        Steps ``"mel"`` and ``"cnn"``.

    Examples
    --------
    >>> student = make_student(max_epochs=5)
    >>> student.named_steps["cnn"].window_seconds, student.named_steps["cnn"].max_epochs
    (3.0, 5)
    """
    from .recipes import make_small_data_pipeline

    return make_small_data_pipeline(
        random_state=random_state, verbose=verbose, **{**_STUDENT, **params}
    )


def birdnet_teacher(*, memory=None):
    """The default teacher: BirdNET embeddings + logistic regression, with zero-shot BirdNET.

    The ensemble of ``benchmarks/embeddings.py`` with the settings it chose by
    cross-validation on the training split (max pooling, ``C=3``, balanced classes, equal
    weights): macro mAP 0.898 on the xc-puerto-rico test split. Needs the ``birdnet``
    extra; the BirdNET model is licensed CC BY-NC-SA 4.0.

    Parameters
    ----------
    memory : str, path, joblib.Memory or None, default=None
        Cache of the BirdNET window embeddings (shared by both members).

    Returns
    -------
    VotingClassifier
        Members ``"embeddings"`` and ``"zero_shot"``.
    """
    from sklearn.preprocessing import StandardScaler

    from .embeddings import BirdNETClassifier, BirdNETEmbedder
    from .ensemble import VotingClassifier
    from .linear import EmbeddingLogisticRegression

    embeddings = Pipeline(
        [
            ("birdnet", BirdNETEmbedder(pooling="max", memory=memory)),
            ("scale", StandardScaler()),
            ("logistic", EmbeddingLogisticRegression(C=3.0, class_weight="balanced")),
        ]
    )
    return VotingClassifier(
        [("embeddings", embeddings), ("zero_shot", BirdNETClassifier(memory=memory))]
    )


def lineage_of(teacher) -> dict:
    """What a student distilled from ``teacher`` records of it: text only.

    Parameters
    ----------
    teacher : estimator
        The fitted teacher.

    Returns
    -------
    dict
        ``teacher`` (its structure, as class names), ``licence`` (the BirdNET licence
        when the teacher holds BirdNET, else ``None``), ``note`` and ``date`` (UTC, ISO).
    """
    from .composition import estimators_in

    if isinstance(teacher, FrozenEstimator):
        teacher = teacher.estimator
    names = [type(member).__name__ for member in estimators_in(teacher)]
    birdnet = any(name in ("BirdNETEmbedder", "BirdNETClassifier") for name in names)
    note = (
        "The student was distilled from BirdNET v2.4 (K. Lisa Yang Center for Conservation "
        "Bioacoustics, Cornell Lab of Ornithology, and Chemnitz University of Technology), "
        f"licensed {BIRDNET_LICENSE}: non-commercial use, with attribution, and "
        "derivatives under the same licence."
        if birdnet
        else "The student was distilled from a teacher without BirdNET."
    )
    return {
        "teacher": " > ".join(dict.fromkeys(names)),
        "licence": BIRDNET_LICENSE if birdnet else None,
        "note": note,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class DistilledClassifier(ClassifierMixin, BaseEstimator):
    """A student network that learns from a teacher's window-level scores.

    ``fit(X, y)`` fits the teacher on the recordings, has it score every window of them
    (and of ``unlabelled`` recordings), and trains the student on those windows with
    targets ``soft_weight * teacher + (1 - soft_weight) * labels`` (binary cross-entropy
    against them is that mix of the two losses). See the module docstring for the windows.
    Predictions come from the student alone.

    Parameters
    ----------
    teacher : classifier or None, default=None
        Fitted inside ``fit`` on ``(X, y)`` (a clone), or prefit in a
        :class:`~sklearn.frozen.FrozenEstimator`. It takes waveforms (at the rate of its
        front end) and has ``predict_proba`` and the classes of ``y``. ``None`` is
        :func:`birdnet_teacher` (``memory`` shared), which needs the ``birdnet`` extra.
    student : Pipeline or None, default=None
        A front end (e.g. :class:`~sklearn_birdaudio.MelSpectrogramTransformer` with
        ``duration=None``) followed by an :class:`~sklearn_birdaudio.AttentionCNNClassifier`,
        unfitted; ``None`` is :func:`make_student`. Its classifier's ``window_seconds`` is
        the window length.
    soft_weight : float, default=0.7
        Share of the teacher's scores in the labelled windows' targets, in [0, 1]; 0 trains
        on the recordings' labels only (every window of a recording gets its labels).
        Unlabelled windows always take the teacher's scores.
    hop_seconds : float, default=1.5
        Seconds between the starts of successive training windows.
    localise_labels : bool, default=False
        For each labelled recording, divide the teacher's window scores of each species
        of its labels by their highest over the recording's windows: the label says that
        the species sings, the teacher where (its best window gets 1). Other species keep
        the teacher's scores. Then mixed with the labels by ``soft_weight``.
    class_balance : float, default=0.0
        In [0, 1]: how far the student's epochs balance the classes. Each window of a
        labelled recording is shown ``round((n_max / n) ** class_balance)`` times per
        epoch, where ``n`` is the number of windows of its rarest label and ``n_max`` that
        of the commonest class (see
        :func:`~sklearn_birdaudio.student_training.balanced_repeats`): 0 shows every
        window once, 1 every class about equally often. Unlabelled windows are shown once.
        With ``embedding_weight > 0`` the principal components of the embedding targets
        are fitted on the windows as shown, so that they weigh the windows as the epochs
        do.
    temperature : float, default=1.0
        Distillation temperature: above 1 the student trains with
        :class:`~sklearn_birdaudio.losses.SoftenedBCEWithLogitsLoss`, which makes the
        teacher's small scores count (1 is the plain binary cross-entropy). The fitted
        student keeps its default loss.
    embedding_weight : float, default=0.0
        Weight of the regression of the embedder's window embeddings against the class
        targets' weight of 1 (see the module docstring); 0 regresses nothing.
    embedder : transformer or None, default=None
        What gives the window embeddings when ``embedding_weight > 0``: a transformer of
        waveforms (at the rate of its front end) into ``(n_windows, n_features)``, fitted
        inside ``fit`` (a clone). ``None`` is BirdNET's embedder (``memory`` shared), for
        the default teacher only.
    teacher_cv : int or None, default=5
        Folds of out-of-fold teacher scores for the labelled recordings; ``None`` scores
        them with the teacher fitted on all of them. A prefit teacher scores everything.
    memory : str, path, joblib.Memory or None, default=None
        Cache of the teacher's window scores (keyed on the fitted teacher, the input and
        the windows), so that a grid search over student parameters, or a second fit,
        does not run the teacher again; the default teacher also caches its embeddings
        there.
    random_state : int, RandomState or None, default=None
        Seeds the folds and, unless the student sets its own, the student.
    verbose : int, default=1
        Progress bars and the student's epoch log; 0 is silent.

    Attributes
    ----------
    classes_ : ndarray
        Class labels (the columns of a DataFrame ``y``, else the sorted labels).
    multilabel_ : bool
        Whether ``y`` was an indicator matrix.
    teacher_ : estimator
        The teacher fitted on all of ``X`` (the one that scored ``unlabelled``).
    student_ : Pipeline
        The fitted student: what predicts, and what :func:`save_model` writes.
    lineage_ : dict
        What the student records of its teacher (:func:`lineage_of`), plus ``soft_weight``
        and the window counts.
    n_windows_ : int
        Training windows, unlabelled ones included.
    n_windows_shown_ : int
        Windows shown to the student per epoch: ``n_windows_``, and more with
        ``class_balance`` (windows of rare classes are shown more than once).
    embedder_ : transformer or None
        The fitted embedder (``embedding_weight > 0``), else ``None``.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline  # doctest: +SKIP
    >>> model = DistilledClassifier(memory="cache/").fit(paths, Y)  # doctest: +SKIP
    >>> detect(model, ["soundscape.wav"])  # the student alone  # doctest: +SKIP
    """

    def __init__(
        self,
        teacher=None,
        student=None,
        *,
        soft_weight: float = 0.7,
        hop_seconds: float = 1.5,
        localise_labels: bool = False,
        class_balance: float = 0.0,
        temperature: float = 1.0,
        embedding_weight: float = 0.0,
        embedder=None,
        teacher_cv: int | None = 5,
        memory=None,
        random_state=None,
        verbose: int = 1,
    ):
        self.teacher = teacher
        self.student = student
        self.soft_weight = soft_weight
        self.hop_seconds = hop_seconds
        self.localise_labels = localise_labels
        self.class_balance = class_balance
        self.temperature = temperature
        self.embedding_weight = embedding_weight
        self.embedder = embedder
        self.teacher_cv = teacher_cv
        self.memory = memory
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        tags.non_deterministic = True
        return tags

    def _check_params(self) -> None:
        for name, bounds, expected in _REAL_PARAMETERS:
            value = getattr(self, name)
            check_real(value, name, **bounds, message=f"{name} must be {expected}, got {value!r}.")
        check_integer(self.teacher_cv, "teacher_cv", min_val=2, allow_none=True)
        if self.embedding_weight > 0 and self.embedder is None and self.teacher is not None:
            raise ValueError(
                "embedding_weight > 0 with a teacher of your own needs an embedder: a "
                "transformer of waveforms into window embeddings (embedder=...)."
            )
        if self.embedder is not None and not hasattr(self.embedder, "transform"):
            raise ValueError(f"embedder must be a transformer, got {type(self.embedder).__name__}.")
        if self.student is not None and not (
            isinstance(self.student, Pipeline) and len(self.student.steps) >= 2
        ):
            raise ValueError(
                "student must be a Pipeline of a front end and an AttentionCNNClassifier "
                f"(see make_student), got {type(self.student).__name__}."
            )
        if self.teacher is not None and not hasattr(self.teacher, "predict_proba"):
            raise ValueError(
                f"teacher must be a classifier with predict_proba, got "
                f"{type(self.teacher).__name__}."
            )
        self._check_student_loss()

    def _check_student_loss(self) -> None:
        """A temperature or embedding regression needs the student's own loss and network."""
        if self.student is None or not self._student_loss():
            return  # make_student's network and loss take both
        classifier = self.student.steps[-1][1]
        if classifier.get_params().get("criterion") is not None:
            raise ValueError(
                "temperature != 1 and embedding_weight > 0 train the student with a loss of "
                "their own; its classifier's criterion must be None."
            )
        module = classifier.get_params().get("module")
        if self.embedding_weight > 0 and not (
            isinstance(module, type) and issubclass(module, AttentionCNN)
        ):
            raise ValueError(
                "embedding_weight > 0 needs the student's network to be an AttentionCNN "
                f"(its head learns the embeddings), got {module!r}."
            )

    # -- fit ------------------------------------------------------------------------------
    def fit(self, X, y, *, unlabelled=None):
        """Fit the teacher, let it label the windows, and train the student on them.

        Parameters
        ----------
        X : list of paths and/or waveforms
            The labelled recordings, of any length (waveforms at the student's front
            end's rate).
        y : DataFrame or array-like of shape (n_samples, n_classes), or (n_samples,)
            A 0/1 indicator matrix (multi-label) or class labels (multi-class).
        unlabelled : list of paths and/or waveforms, optional
            Recordings without labels (soundscapes, say): the teacher labels their windows
            and the student learns from them too.

        Returns
        -------
        self : DistilledClassifier
        """
        self._check_params()
        sources = _as_sources(X)
        extra = [] if unlabelled is None else _as_sources(unlabelled)
        if not sources:
            raise ValueError("X contains no inputs; expected at least one path or waveform.")
        if len(sources) != len(y):
            raise ValueError(f"X has {len(sources)} inputs but y has {len(y)} rows.")
        labels, self.classes_, self.multilabel_ = encode_targets(y, allow_unknown=False)
        hard = labels if self.multilabel_ else np.eye(len(self.classes_))[labels]
        rng = check_random_state(self.random_state)
        student = clone(self.student) if self.student is not None else make_student()
        student_seed = int(rng.randint(2**31 - 1))
        classifier = student.steps[-1][1]
        if classifier.get_params().get("random_state") is None:
            classifier.set_params(random_state=student_seed)
        if "verbose" in classifier.get_params():
            classifier.set_params(verbose=self.verbose)
        front = student[:-1].fit(sources[:1])  # shares its steps with student
        spec = get_audio_spec(front)
        window_frames = spec.frames(classifier.window_seconds)
        hop_frames = max(spec.hop_frames(self.hop_seconds), 1)

        teacher = self.teacher if self.teacher is not None else birdnet_teacher(memory=self.memory)
        teacher = clone(teacher)
        self.teacher_ = teacher.fit(sources, y)
        self._check_teacher(self.teacher_)
        scorers = self._fold_teachers(teacher, sources, y, rng)
        self.embedder_ = self._fit_embedder(sources)
        rate = _waveform_rate(self.teacher_, spec)
        window = float(classifier.window_seconds)
        embedder_rate = None if self.embedder_ is None else _waveform_rate(self.embedder_, spec)

        # the cache key of each teacher, hashed once (not once per recording)
        distinct = {id(each): each for each in [self.teacher_, *scorers]}
        keys = {identity: _fingerprint(each) for identity, each in distinct.items()}
        embedder_key = None if self.embedder_ is None else _fingerprint(self.embedder_)
        windows, targets, embeddings, window_labels = [], [], [], []
        groups = [(sources, scorers), (extra, [self.teacher_] * len(extra))]
        with tqdm(
            total=len(sources) + len(extra), desc="Distil", unit="input",
            disable=not self.verbose,
        ) as bar:  # fmt: skip
            for part, (inputs, teachers) in enumerate(groups):
                for index, (source, fold_teacher) in enumerate(zip(inputs, teachers, strict=True)):
                    name = _input_name(source, index)
                    cut, seconds = _windows_of(front, source, window_frames, hop_frames)
                    waveform_at = _waveform_reader(source, spec)  # read once for both
                    soft = self._window_outputs(
                        fold_teacher.predict_proba, ("teacher", keys[id(fold_teacher)]),
                        source, name, seconds, window, rate, waveform_at,
                    )  # fmt: skip
                    labels = hard[index] if part == 0 else np.zeros(len(self.classes_))
                    if part == 0:
                        soft = self._labelled_targets(soft, labels)
                    if self.embedder_ is not None:
                        embedding = self._window_outputs(
                            self.embedder_.transform, ("embedder", embedder_key), source,
                            name, seconds, window, embedder_rate, waveform_at,
                        )  # fmt: skip
                        embeddings.append(embedding)
                    windows.append(cut)
                    targets.append(soft.astype(np.float32))
                    window_labels.append(np.broadcast_to(labels, soft.shape))
                    bar.update()
        repeats = balanced_repeats(np.concatenate(window_labels), float(self.class_balance))
        self.n_windows_ = len(repeats)
        self.n_windows_shown_ = int(repeats.sum())
        shown = np.repeat(np.arange(len(repeats)), repeats)  # each epoch, shuffled

        def in_epoch(parts):
            joined = np.concatenate(parts)
            return joined if self.n_windows_shown_ == self.n_windows_ else joined[shown]

        windows = Spectrograms(in_epoch(windows), spec)
        targets = pd.DataFrame(in_epoch(targets), columns=self.classes_)
        embeddings = in_epoch(embeddings) if embeddings else None
        classifier.set_params(soft_targets=True)
        if self.embedder_ is None:
            fit_with_loss(classifier, windows, targets, self._student_loss())
        else:
            self._fit_with_embeddings(classifier, windows, targets, embeddings)
        self.student_ = student
        self.lineage_ = {
            **lineage_of(self.teacher_),
            "soft_weight": float(self.soft_weight),
            "localise_labels": int(bool(self.localise_labels)),
            "class_balance": float(self.class_balance),
            "temperature": float(self.temperature),
            "embedding_weight": float(self.embedding_weight),
            "windows": f"{self.n_windows_} windows of {classifier.window_seconds:g} s every "
            f"{float(self.hop_seconds):g} s, from {len(sources)} labelled and {len(extra)} "
            f"unlabelled recordings; {self.n_windows_shown_} shown per epoch",
        }
        return self

    def _labelled_targets(self, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The targets of one labelled recording's windows, from the teacher's ``scores``."""
        if self.localise_labels:  # the label says that a species sings; the teacher, where
            best = np.maximum(scores.max(axis=0), _SMALLEST_BEST_SCORE)
            scores = np.where(labels > 0, scores / best, scores)
        weight = float(self.soft_weight)
        return weight * scores + (1 - weight) * labels

    def _fit_embedder(self, sources: list):
        """The fitted embedder of the window embeddings, or ``None`` without regression."""
        if not self.embedding_weight > 0:
            return None
        if self.embedder is None:
            from .embeddings import BirdNETEmbedder

            embedder = BirdNETEmbedder(pooling="max", memory=self.memory, verbose=0)
        else:
            embedder = clone(self.embedder)
        return embedder.fit(sources)

    def _fit_with_embeddings(self, classifier, windows, targets: pd.DataFrame, embeddings):
        """Train ``classifier`` on the class targets and the embeddings' components.

        The components become extra outputs of the head during training, and are cut off
        it afterwards (see :mod:`~sklearn_birdaudio.student_training`).
        """
        components = embedding_targets(embeddings)
        names = [f"embedding component {i}" for i in range(components.shape[1])]
        extended = pd.concat([targets, pd.DataFrame(components, columns=names)], axis=1)
        n_classes = targets.shape[1]
        loss = self._student_loss()
        loss["criterion__weight"] = torch.as_tensor(
            column_weights(n_classes, components.shape[1], float(self.embedding_weight)),
            dtype=torch.float32,
        )
        fit_with_loss(classifier, windows, extended, loss)
        keep_class_outputs(classifier, n_classes)

    def _student_loss(self) -> dict:
        """The classifier parameters of the student's training loss; ``{}``: its default."""
        if self.temperature != 1:
            return {
                "criterion": SoftenedBCEWithLogitsLoss,
                "criterion__temperature": float(self.temperature),
            }
        if self.embedding_weight > 0:  # the caller weights its columns
            return {"criterion": MaskedBCEWithLogitsLoss}
        return {}

    def _window_outputs(self, method, tag, source, name, seconds, window, rate, waveform_at):
        """``method`` of one input's windows as waveforms at ``rate``: ``(n_windows, n)``.

        Cached in ``memory`` under ``tag`` (what computes, and the hash of it fitted), the
        input and the windows; ``waveform_at(rate)`` reads the input when they are not.
        """

        def compute():
            waveform = waveform_at(rate)
            length = int(round(window * rate))
            cuts = [waveform[int(round(t * rate)) :][:length] for t in seconds]
            return np.asarray(method(cuts), dtype=np.float64).reshape(len(cuts), -1)

        key = _file_key(source) if _is_path(source) else joblib.hash(np.asarray(source))
        if key is None:  # unreadable: loading names the file
            return compute()
        settings = (*tag, tuple(seconds), window, rate)
        cached = check_memory(self.memory).cache(_cached_windows, ignore=["compute"])
        outputs = cached(settings, key, compute=compute)
        logger.debug("%s outputs of %s: %d windows", tag[0], name, len(outputs))
        return outputs

    def _check_teacher(self, teacher, fold: str = "") -> None:
        """The teacher must score y's classes, by name or (an indicator matrix) by column."""
        classes = np.asarray(getattr(teacher, "classes_", []))
        same = classes.shape == self.classes_.shape and (classes == self.classes_).all()
        positional = self.multilabel_ and np.array_equal(classes, np.arange(len(self.classes_)))
        if not (same or positional):
            hint = (
                f"; the {fold} of teacher_cv={self.teacher_cv} lacks a class: use fewer folds "
                "or teacher_cv=None"
                if fold
                else ""
            )
            raise ValueError(
                f"The teacher's classes {classes.tolist()[:10]} are not y's "
                f"{self.classes_.tolist()[:10]}; expected a teacher of the same classes{hint}."
            )

    def _fold_teachers(self, teacher, sources: list, y, rng) -> list:
        """The teacher that scores each labelled recording: one fitted without it."""
        if self.teacher_cv is None or isinstance(teacher, FrozenEstimator):
            return [self.teacher_] * len(sources)
        n_folds = min(int(self.teacher_cv), len(sources))
        if n_folds < 2:
            return [self.teacher_] * len(sources)
        folds = KFold(n_folds, shuffle=True, random_state=int(rng.randint(2**31 - 1)))
        scorers = [None] * len(sources)
        for fold, (train, held_out) in enumerate(folds.split(sources)):
            y_train = y.iloc[train] if hasattr(y, "iloc") else np.asarray(y)[train]
            fold_teacher = clone(teacher).fit([sources[i] for i in train], y_train)
            self._check_teacher(fold_teacher, f"training part of fold {fold + 1}")
            for i in held_out:
                scorers[i] = fold_teacher
        return scorers

    # -- predict --------------------------------------------------------------------------
    def predict_proba(self, X) -> np.ndarray:
        """The student's probability of each class, ``(n_samples, n_classes)``."""
        check_is_fitted(self, "student_")
        return self.student_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        """A 0/1 matrix at the student's threshold (multi-label), else the best class."""
        probabilities = self.predict_proba(X)
        if self.multilabel_:
            threshold = self.student_.steps[-1][1].threshold
            return (probabilities >= threshold).astype(np.int64)
        return self.classes_[probabilities.argmax(axis=1)]

    def teacher_proba(self, X) -> np.ndarray:
        """What a student that matched its teacher on every window would predict.

        The fitted teacher (``teacher_``) scores the windows the student scores (its
        classifier's ``window_seconds``, every ``window_seconds - overlap_seconds``), and
        each input's window scores are aggregated as the student aggregates them. Scored
        against labels, this is the accuracy the student is taught to reach: the gap to
        the student's own is what imitation loses; the gap to the teacher's
        ``predict_proba`` is what scoring windows, not whole recordings, loses.

        Parameters
        ----------
        X : list of paths and/or waveforms
            Recordings of any length (waveforms at the student's front end's rate).

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self, "student_")
        sources = _as_sources(X)
        front, classifier = self.student_[:-1], self.student_.steps[-1][1]
        spec = get_audio_spec(front)
        window = float(classifier.window_seconds)
        hop = spec.hop_frames(window - float(classifier.overlap_seconds))
        key = ("teacher", _fingerprint(self.teacher_))
        aggregate = np.max if classifier.aggregation == "max" else np.mean
        rows = []
        for index, source in enumerate(sources):
            _, seconds = _windows_of(front, source, spec.frames(window), max(hop, 1))
            scores = self._window_outputs(
                self.teacher_.predict_proba, key, source, _input_name(source, index), seconds,
                window, _waveform_rate(self.teacher_, spec), _waveform_reader(source, spec),
            )  # fmt: skip
            rows.append(aggregate(scores, axis=0))
        return np.stack(rows)

    def deployed_model(self):
        """What predicts: the fitted student, a pipeline without the teacher."""
        check_is_fitted(self, "student_")
        return self.student_


def _waveform_rate(estimator, spec) -> int:
    """The rate ``estimator`` (a frozen one's own) takes waveforms at; else ``spec``'s."""
    own = get_audio_spec(getattr(estimator, "estimator", estimator))
    return spec.waveform_rate if own is None else own.waveform_rate


def _waveform_reader(source, spec):
    """``rate -> waveform`` of one input, read (and resampled) once per rate asked for.

    A waveform input is at ``spec``'s rate; a path is decoded on the first call only, so
    the teacher and the embedder of one recording share a read when both are not cached.
    """
    source_rate = None if _is_path(source) else spec.waveform_rate
    return functools.cache(
        lambda rate: load_audio(source, sample_rate=rate, source_rate=source_rate)
    )


def _fingerprint(teacher) -> str:
    """A hash of a fitted teacher, equal for equal fits: the key of its cached scores."""
    try:
        return joblib.hash(teacher)
    except (RuntimeError, TypeError):  # torch tensors in dicts defeat joblib's sorting
        return hashlib.sha256(pickle.dumps(teacher)).hexdigest()


def _windows_of(front, source, window_frames: int, hop_frames: int):
    """One input's spectrogram windows (see :func:`_cut`) and their starts in seconds."""
    spec = get_audio_spec(front)
    cut, starts = _cut(np.asarray(front.transform([source]))[0], window_frames, hop_frames)
    return cut, [start * spec.hop_length / spec.sample_rate for start in starts]


def _cut(spectrogram: np.ndarray, window_frames: int, hop_frames: int):
    """Windows ``(n, channels, n_mels, window_frames)`` of one spectrogram, and their starts.

    NaN frames (padding) at the end are dropped first; a recording shorter than a window
    is one window padded with NaN, as the classifier pads.
    """
    valid = ~np.isnan(spectrogram[0, 0])
    n_frames = int(valid.sum()) if valid.any() else 0
    if n_frames == 0:
        raise ValueError("a recording without audio frames cannot be cut into windows.")
    starts = window_starts(n_frames, window_frames, hop_frames)
    out = np.full((len(starts), *spectrogram.shape[:2], window_frames), np.nan, np.float32)
    for row, start in enumerate(starts):
        stop = min(start + window_frames, n_frames)
        out[row, ..., : stop - start] = spectrogram[..., start:stop]
    return out, starts
