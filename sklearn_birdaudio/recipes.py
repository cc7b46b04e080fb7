"""Training recipes: classifier settings measured to work, by the data and hardware they suit.

The classifier's defaults are the original design's (64 filters, dropout 0.5, learning rate
1e-3, up to 50 epochs with early stopping). :func:`small_data_recipe` is what won on a few
hundred labelled recordings trained on a 2-core CPU in minutes
(``benchmarks/accuracy.py``; the ablation in ``docs/benchmarks.md`` says what each setting
is worth).
"""

from __future__ import annotations

from sklearn.pipeline import Pipeline

from ._deprecation import deprecate_positional

__all__ = ["make_small_data_pipeline", "small_data_recipe"]

_SMALL_DATA = {
    # front end of the network: 7x cheaper training, recorder-independent input
    "module__stem_stride": 2,
    "module__subtract_band_median": True,
    # a small network, lightly regularised: it underfits the random crops, not overfits
    "module__base_filters": 16,
    "module__dropout": 0.2,
    # many fresh random crops, augmented, on every recording; a cosine schedule to zero
    "crops_per_recording": 6,
    "augment": "default",
    "max_epochs": 30,
    "lr": 2e-3,
    # no held-out split: early stopping on the validation loss stops too soon under mixup
    "validation_fraction": None,
    "aggregation": "mean",
    # the small network is fastest on batches (the default network on single windows)
    "predict_batch_size": 64,
}


def small_data_recipe() -> dict:
    """Classifier parameters for a few hundred recordings on a CPU.

    Measured on 225 xeno-canto recordings of 23 species (``benchmarks/accuracy.py``):
    see ``docs/benchmarks.md`` for the scores, the training time and the ablation.

    Returns
    -------
    params : dict
        :class:`~sklearn_birdaudio.AttentionCNNClassifier` parameters (a new dict each
        call), for ``AttentionCNNClassifier(**params)`` or, prefixed, ``set_params``.

    Examples
    --------
    >>> from sklearn_birdaudio import AttentionCNNClassifier
    >>> from sklearn_birdaudio.recipes import small_data_recipe
    >>> cnn = AttentionCNNClassifier(**small_data_recipe(), random_state=0)
    >>> cnn.module__subtract_band_median, cnn.crops_per_recording
    (True, 6)
    """
    return dict(_SMALL_DATA)


@deprecate_positional
def make_small_data_pipeline(*, memory=None, random_state=None, verbose: int = 1, **params):
    """Log-mel front end + :class:`AttentionCNNClassifier` with :func:`small_data_recipe`.

    Parameters
    ----------
    memory : str, path-like or None, default=None
        The transformer's spectrogram cache (whole recordings, ``duration=None``).
    random_state : int, RandomState or None, default=None
        Seeds the network.
    verbose : int, default=1
        Epoch log of the network; 0 is silent.
    **params
        Classifier parameters that replace the recipe's.

    Returns
    -------
    pipeline : Pipeline
        Steps ``"mel"`` and ``"cnn"``.

    Examples
    --------
    >>> from sklearn_birdaudio.recipes import make_small_data_pipeline
    >>> pipeline = make_small_data_pipeline(max_epochs=40, random_state=0)
    >>> pipeline.named_steps["cnn"].max_epochs, pipeline.named_steps["mel"].duration
    (40, None)
    """
    from .classifier import AttentionCNNClassifier
    from .features import MelSpectrogramTransformer

    classifier = AttentionCNNClassifier(
        **{**small_data_recipe(), **params}, random_state=random_state, verbose=verbose
    )
    # A float32 FFT: 1.5x faster features, within 0.002 dB of float64; the 3-seed recipe
    # trained on float64 features scores the test split identically on float32 ones
    # (probabilities within 3e-6, docs/benchmarks.md).
    mel = MelSpectrogramTransformer(duration=None, memory=memory, fft_precision="float32")
    return Pipeline([("mel", mel), ("cnn", classifier)])
