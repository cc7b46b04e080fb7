"""The table :func:`~sklearn_birdaudio.detect` returns, with the metadata of its files.

A :class:`Detections` is a :class:`pandas.DataFrame` (one row per detection) that also
says, per file, how long it was and why it failed: a file without detections is still in
:attr:`~Detections.durations`, and an unreadable one in :attr:`~Detections.errors`. Plain
``DataFrame.attrs`` are dropped by :func:`pandas.concat` when two runs differ; these are
merged instead, so the tables of several runs combine into one whose Raven timeline is
still right.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["Detections"]

METADATA = ("durations", "errors", "frequency_range")


class Detections(pd.DataFrame):
    """Detection rows (``file, start_s, end_s, label, confidence``) and per-file metadata.

    Use it as any DataFrame. Filtering rows keeps the metadata (the files were still
    scored); :func:`pandas.concat` of several ``Detections`` merges it: the union of the
    durations and of the frequency ranges, and every error once.

    Attributes
    ----------
    durations : dict of str to float
        Seconds scored of every recording, even those without detections.
    errors : list of dict
        ``{"file": ..., "error": ...}`` of the recordings that could not be read or
        scored (a file that failed part-way is in both).
    frequency_range : tuple of float or None
        ``(low Hz, high Hz)`` of the model's band, for Raven tables.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_birdaudio import Detections
    >>> rows = {"file": ["a.wav"], "start_s": [0.0], "end_s": [5.0], "label": ["owl"],
    ...         "confidence": [0.9]}
    >>> first = Detections.from_rows(pd.DataFrame(rows), durations={"a.wav": 60.0})
    >>> second = Detections.from_rows(pd.DataFrame(rows).iloc[:0], durations={"b.wav": 30.0})
    >>> combined = pd.concat([first, second], ignore_index=True)
    >>> combined.durations
    {'a.wav': 60.0, 'b.wav': 30.0}
    """

    @property
    def _constructor(self):
        return Detections

    @classmethod
    def from_rows(
        cls,
        rows: pd.DataFrame,
        *,
        durations: dict | None = None,
        errors: list | None = None,
        frequency_range: tuple[float, float] | None = None,
    ) -> Detections:
        """A ``Detections`` of ``rows`` with this metadata."""
        detections = cls(rows)
        detections.attrs["durations"] = dict(durations or {})
        detections.attrs["errors"] = list(errors or [])
        detections.attrs["frequency_range"] = frequency_range
        return detections

    @property
    def durations(self) -> dict:
        return self.attrs.get("durations", {})

    @property
    def errors(self) -> list:
        return self.attrs.get("errors", [])

    @property
    def frequency_range(self) -> tuple[float, float] | None:
        return self.attrs.get("frequency_range")

    def __finalize__(self, other, method: str | None = None, **kwargs):
        inputs = getattr(other, "input_objs", None)  # pandas 3 names concat's inputs so,
        if inputs is None and method == "concat":  # pandas 2 "objs"
            inputs = getattr(other, "objs", None)
        if inputs is None:
            return super().__finalize__(other, method=method, **kwargs)
        super().__finalize__(other, method=method, **kwargs)
        self.attrs.update(merged_metadata([getattr(item, "attrs", {}) for item in inputs]))
        return self


def merged_metadata(parts: list[dict]) -> dict:
    """The metadata of several runs' tables as one table's: what ``pd.concat`` keeps."""
    parts = [attrs for attrs in parts if any(key in attrs for key in METADATA)]
    if not parts:
        return {}
    durations, errors, seen = {}, [], set()
    for attrs in parts:
        durations.update(attrs.get("durations") or {})
        for error in attrs.get("errors") or []:
            key = (str(error.get("file")), str(error.get("error")))
            if key not in seen:
                seen.add(key)
                errors.append(dict(error))
    bands = [attrs["frequency_range"] for attrs in parts if attrs.get("frequency_range")]
    band = None
    if bands:
        band = (min(low for low, _ in bands), max(high for _, high in bands))
    return {"durations": durations, "errors": errors, "frequency_range": band}
