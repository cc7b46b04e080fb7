"""The deprecation period of arguments that became keyword-only.

Public functions take their data positionally and every other argument by keyword only,
as scikit-learn and librosa do. Where a released signature accepted those arguments by
position, :func:`deprecate_positional` keeps the old calls working for a while, with a
:class:`FutureWarning` that says what to write instead (scikit-learn's
``_deprecate_positional_args``).
"""

from __future__ import annotations

import functools
import inspect
import reprlib
import warnings
from collections.abc import Callable
from typing import TypeVar

__all__ = ["POSITIONAL_REMOVED_IN", "deprecate_positional"]

# The release from which keyword-only arguments passed by position raise a TypeError.
POSITIONAL_REMOVED_IN = "0.2"

_POSITIONAL_KINDS = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
# Values are named in the warning, not printed whole: a long list stays one line.
_short_repr = reprlib.Repr()
_short_repr.maxstring = _short_repr.maxother = 40

Function = TypeVar("Function", bound=Callable)


def deprecate_positional(func: Function) -> Function:
    """Let ``func`` take its keyword-only arguments by position, with a FutureWarning.

    A call with more positional arguments than ``func`` has positional parameters maps
    the extra values, in order, onto its keyword-only parameters, warns (naming the
    function and the ``name=value`` pairs to write) and calls ``func`` with them as
    keywords. Other calls go straight through. The wrapper has ``func``'s name, docstring
    and signature (the keyword-only one, as :func:`inspect.signature` shows it).

    Parameters
    ----------
    func : callable
        A function or method (``__init__`` too) with keyword-only parameters and no
        ``*args``.

    Returns
    -------
    callable
        The wrapper.

    Raises
    ------
    TypeError
        If ``func`` has ``*args`` or no keyword-only parameter; and, at call time, as
        Python would: for more positional values than ``func`` has parameters to take
        them, or a value given both by position and by keyword.

    Examples
    --------
    >>> import warnings
    >>> @deprecate_positional
    ... def load(source, *, sample_rate=32000, mono=True):
    ...     return source, sample_rate, mono
    >>> load("a.wav", sample_rate=16000)
    ('a.wav', 16000, True)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     load("a.wav", 16000, False)
    ('a.wav', 16000, False)
    >>> print(caught[0].message)
    Pass sample_rate=16000, mono=False as keyword args to load(). From version 0.2 passing these as positional arguments will result in an error.
    """  # noqa: E501
    parameters = inspect.signature(func).parameters.values()
    if any(parameter.kind is inspect.Parameter.VAR_POSITIONAL for parameter in parameters):
        raise TypeError(f"{func.__qualname__} takes *args; no argument can be keyword-only.")
    n_positional = sum(parameter.kind in _POSITIONAL_KINDS for parameter in parameters)
    keyword_only = [
        parameter.name
        for parameter in parameters
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    if not keyword_only:
        raise TypeError(f"{func.__qualname__} has no keyword-only parameter to deprecate.")
    name = func.__qualname__.removesuffix(".__init__")

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        extra = args[n_positional:]
        if not extra or len(extra) > len(keyword_only):
            return func(*args, **kwargs)  # Python's own TypeError for too many
        moved = dict(zip(keyword_only, extra, strict=False))
        twice = sorted(moved.keys() & kwargs.keys())
        if twice:
            raise TypeError(f"{name}() got multiple values for argument {twice[0]!r}")
        pairs = ", ".join(
            f"{keyword}={_short_repr.repr(value)}" for keyword, value in moved.items()
        )
        warnings.warn(
            f"Pass {pairs} as keyword args to {name}(). From version "
            f"{POSITIONAL_REMOVED_IN} passing these as positional arguments will result in an "
            "error.",
            FutureWarning,
            stacklevel=2,
        )
        return func(*args[:n_positional], **moved, **kwargs)

    return wrapper
