"""scikit-learn's estimator checks, run on every estimator of the package.

Checks that cannot apply to audio are listed once, with the reason, in EXPECTED_FAILED_CHECKS.
"""

from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_birdaudio import MelSpectrogramTransformer, VotingClassifier

# Small spectral sizes: the checks feed tiny random "waveforms" of a few samples.
SMALL_MEL = MelSpectrogramTransformer(
    sample_rate=8000, duration=0.05, n_fft=64, hop_length=32, n_mels=8, fmax=None
)

# Fast multi-label-capable members: the checks exercise the ensemble, not its members.
VOTING = VotingClassifier(
    [
        ("strong", OneVsRestClassifier(LogisticRegression())),
        ("weak", OneVsRestClassifier(LogisticRegression(C=0.1))),
    ]
)

# AttentionCNNClassifier is not here yet: it takes 4-D spectrograms, and the checks feed
# 2-D tabular data (the reliability issue will make it earn them or list why not).
EXPECTED_FAILED_CHECKS = {
    "MelSpectrogramTransformer": {
        "check_n_features_in_after_fitting": (
            "recordings of any length are valid input by design: transform accepts waveforms "
            "of a length other than the one seen in fit, where this check expects an error."
        ),
        **dict.fromkeys(
            ["check_methods_sample_order_invariance", "check_methods_subset_invariance"],
            "clips are computed in float32 batches, and vectorised FFTs and matrix products "
            "round a clip differently depending on its position in the batch: results agree "
            "to ~1e-5 dB (tests: batch-size invariance within 1e-4 dB), but these checks "
            "demand rtol=1e-7. Sometimes they pass, hence xfail without strict.",
        ),
    },
}


def expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks([SMALL_MEL, VOTING], expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
