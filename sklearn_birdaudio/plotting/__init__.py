"""Matplotlib figures: spectrograms with detections, training, precision-recall and
calibration curves, and models' accuracy against their speed.

Every function builds a new :class:`matplotlib.figure.Figure` with :mod:`matplotlib.pyplot`
and returns it without showing it: save it with ``fig.savefig(path)``, or let a notebook
display it, and release it with ``plt.close(fig)`` when making many. Matplotlib is imported
when a function is first called, so importing the package stays fast.

Spectrograms are drawn on a mel-scaled frequency axis whose data coordinates are in Hz:
each mel band takes the same height, as in the spectrogram the model sees, and anything
added to the axes (the detection boxes, your own annotations) is placed in Hz.
"""

from .calibration import plot_calibration
from .curves import plot_precision_recall, plot_training_curves
from .spectrograms import plot_detections
from .tradeoff import pareto_front, plot_accuracy_speed

__all__ = [
    "pareto_front",
    "plot_accuracy_speed",
    "plot_calibration",
    "plot_detections",
    "plot_precision_recall",
    "plot_training_curves",
]
