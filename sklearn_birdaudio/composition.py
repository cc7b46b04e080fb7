"""Walking composite estimators: a pipeline's steps and an ensemble's members.

The one place that knows how a model is composed: the audio spec (to find a model's front
end and classifier), detection (to silence progress bars and to find what predicts: a
distilled model's student) and the command (to describe a model) use it.
"""

from __future__ import annotations

__all__ = ["deployed_model", "estimators_in", "final_estimator"]


def estimators_in(model) -> list:
    """``model`` and the estimators inside it, depth first.

    Pipeline steps (``"passthrough"`` and ``None`` left out) and fitted ensemble members
    (``estimators_``), recursively.

    Parameters
    ----------
    model : estimator
        A pipeline, an ensemble or any estimator.

    Returns
    -------
    list
        ``model`` first, then what it holds.

    Examples
    --------
    >>> from sklearn.pipeline import Pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.linear_model import LogisticRegression
    >>> pipeline = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())])
    >>> [type(member).__name__ for member in estimators_in(pipeline)]
    ['Pipeline', 'StandardScaler', 'LogisticRegression']
    """
    children = []
    if hasattr(model, "steps"):
        children = [step for _, step in model.steps if step not in (None, "passthrough")]
    elif hasattr(model, "estimators_"):
        children = list(model.estimators_)
    return [model, *(member for child in children for member in estimators_in(child))]


def final_estimator(model):
    """A pipeline's last step (itself a pipeline's when nested), else ``model``."""
    while hasattr(model, "steps"):
        model = model.steps[-1][1]
    return model


def deployed_model(model):
    """What scores recordings for ``model``: its ``deployed_model()`` when it has one.

    A :class:`~sklearn_birdaudio.DistilledClassifier` predicts with its student alone, so
    detection, the audio spec and model files use the student; any other model is itself.

    Parameters
    ----------
    model : estimator
        A fitted model.

    Returns
    -------
    estimator
    """
    deployed = getattr(model, "deployed_model", None)
    return deployed() if callable(deployed) else model
