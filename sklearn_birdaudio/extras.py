"""Optional dependencies: import one, or say which extra of the package installs it."""

from __future__ import annotations

import importlib

__all__ = ["import_extra"]

EXTRAS = {
    "distributed": "dask",
    "dask": "dask",
    "accelerate": "accelerate",
    "ai_edge_litert": "birdnet",
}


def import_extra(module: str):
    """Import an optional dependency, or say which extra of the package installs it.

    Parameters
    ----------
    module : str
        ``"distributed"``, ``"dask"``, ``"accelerate"`` or ``"ai_edge_litert"`` (or one of
        their submodules).

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    ImportError
        If it is not installed, naming the extra, e.g.
        ``pip install "sklearn-birdaudio[dask]"``.
    """
    extra = EXTRAS[module.split(".")[0]]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{module} is not installed: it comes with the {extra!r} extra, "
            f'pip install "sklearn-birdaudio[{extra}]".'
        ) from error
