"""Checks of scalar parameters, one set for the whole package.

Every numeric parameter (of an estimator, a torch module or a function) is checked here,
on :func:`sklearn.utils.check_scalar`, so that all of them agree on what they accept:
Python and NumPy numbers alike (``np.int64(2)`` from a :class:`GridSearchCV` grid is as
good as ``2``), never a bool, never NaN or an infinity; and they all refuse the rest
with a :class:`ValueError` whose message names the parameter, what it got and what it
expects. The checks return plain Python ``int`` or ``float`` values, which torch layers
and string formatting take without surprise.
"""

from __future__ import annotations

import math
import numbers
import os

from sklearn.utils import check_scalar
from sklearn.utils.validation import check_memory as _sklearn_check_memory

__all__ = ["check_integer", "check_memory", "check_real", "is_integer", "is_real_number"]

_OPEN_LOW = {"left": False, "right": True, "both": False, "neither": True}
_OPEN_HIGH = {"left": True, "right": False, "both": False, "neither": True}


def is_integer(value) -> bool:
    """Whether ``value`` is an integer: a Python or NumPy one, not a bool.

    Parameters
    ----------
    value : object
        Anything.

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np
    >>> is_integer(3), is_integer(np.int64(3)), is_integer(True), is_integer(3.0)
    (True, True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real_number(value) -> bool:
    """Whether ``value`` is a finite real number: not a bool, a string, NaN or infinite.

    Parameters
    ----------
    value : object
        Anything.

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np
    >>> is_real_number(0.5), is_real_number(np.float32(2)), is_real_number(7)
    (True, True, True)
    >>> is_real_number(True), is_real_number(float("nan")), is_real_number("1")
    (False, False, False)
    """
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float (10**400 in a hostile file)
        return False


def _bounds(min_val, max_val, include_boundaries: str) -> str:
    """``" >= 0"``, ``" in (0, 1]"``, ... : the interval, as the default messages say it."""
    low = "(" if _OPEN_LOW[include_boundaries] else "["
    high = ")" if _OPEN_HIGH[include_boundaries] else "]"
    if min_val is not None and max_val is not None:
        return f" in {low}{min_val}, {max_val}{high}"
    if min_val is not None:
        return f" {'>' if low == '(' else '>='} {min_val}"
    if max_val is not None:
        return f" {'<' if high == ')' else '<='} {max_val}"
    return ""


def _refuse(value, name: str, expected: str, allow_none: bool, message: str | None, cause=None):
    if message is None:
        message = f"{name} must be {expected}{' or None' if allow_none else ''}, got {value!r}."
    raise ValueError(message) from cause


def check_integer(
    value,
    name: str,
    *,
    min_val: int | None = None,
    max_val: int | None = None,
    allow_none: bool = False,
    message: str | None = None,
) -> int | None:
    """Check an integer parameter and return it as a Python ``int``.

    Python and NumPy integers are accepted; bools, floats (even ``2.0``) and anything
    else are not.

    Parameters
    ----------
    value : object
        The parameter's value.
    name : str
        The parameter's name, for the message.
    min_val, max_val : int or None, default=None
        Smallest and largest values allowed (both included); None for no bound.
    allow_none : bool, default=False
        Accept (and return) None.
    message : str or None, default=None
        The message of the error, when a parameter has its own wording; by default
        ``"{name} must be a positive integer, got {value!r}."`` (for ``min_val=1``) or
        ``"{name} must be an integer >= {min_val}, got {value!r}."`` and the like.

    Returns
    -------
    int or None
        ``value`` as a Python int (None only with ``allow_none``).

    Raises
    ------
    ValueError
        If ``value`` is not an integer within the bounds.

    Examples
    --------
    >>> import numpy as np
    >>> check_integer(np.int64(4), "n_blocks", min_val=1)
    4
    >>> check_integer(0, "n_blocks", min_val=1)
    Traceback (most recent call last):
    ...
    ValueError: n_blocks must be a positive integer, got 0.
    >>> check_integer(True, "batch_size", min_val=1, allow_none=True)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be a positive integer or None, got True.
    """
    if value is None and allow_none:
        return None
    if min_val == 1 and max_val is None:
        expected = "a positive integer"
    else:
        expected = "an integer" + _bounds(min_val, max_val, "both")
    if isinstance(value, bool):
        _refuse(value, name, expected, allow_none, message)
    try:
        check_scalar(value, name, numbers.Integral, min_val=min_val, max_val=max_val)
    except (TypeError, ValueError) as error:
        _refuse(value, name, expected, allow_none, message, error)
    return int(value)


def check_real(
    value,
    name: str,
    *,
    min_val: float | None = None,
    max_val: float | None = None,
    include_boundaries: str = "both",
    allow_none: bool = False,
    message: str | None = None,
) -> float | None:
    """Check a real-valued parameter and return it as a Python ``float``.

    Python and NumPy integers and floats are accepted; bools, NaN, infinities and
    anything else are not.

    Parameters
    ----------
    value : object
        The parameter's value.
    name : str
        The parameter's name, for the message.
    min_val, max_val : float or None, default=None
        Bounds of the values allowed; None for no bound.
    include_boundaries : {"both", "left", "right", "neither"}, default="both"
        Which bounds are allowed values themselves, as in
        :func:`sklearn.utils.check_scalar`.
    allow_none : bool, default=False
        Accept (and return) None.
    message : str or None, default=None
        The message of the error, when a parameter has its own wording; by default
        ``"{name} must be a positive finite number, got {value!r}."`` (for ``min_val=0``
        excluded) or ``"{name} must be a finite number in [0, 1), got {value!r}."`` and
        the like.

    Returns
    -------
    float or None
        ``value`` as a Python float (None only with ``allow_none``).

    Raises
    ------
    ValueError
        If ``value`` is not a finite number within the bounds.

    Examples
    --------
    >>> import numpy as np
    >>> check_real(np.float32(0.25), "dropout", min_val=0, max_val=1, include_boundaries="left")
    0.25
    >>> check_real(float("inf"), "duration", min_val=0, include_boundaries="neither")
    Traceback (most recent call last):
    ...
    ValueError: duration must be a positive finite number, got inf.
    >>> check_real(1.0, "dropout", min_val=0, max_val=1, include_boundaries="left")
    Traceback (most recent call last):
    ...
    ValueError: dropout must be a finite number in [0, 1), got 1.0.
    """
    if value is None and allow_none:
        return None
    if min_val == 0 and max_val is None and _OPEN_LOW[include_boundaries]:
        expected = "a positive finite number"
    else:
        expected = "a finite number" + _bounds(min_val, max_val, include_boundaries)
    if not is_real_number(value):
        _refuse(value, name, expected, allow_none, message)
    try:
        check_scalar(
            value,
            name,
            numbers.Real,
            min_val=min_val,
            max_val=max_val,
            include_boundaries=include_boundaries,
        )
    except ValueError as error:
        _refuse(value, name, expected, allow_none, message, error)
    return float(value)


def check_memory(memory):
    """The cache a ``memory`` parameter describes, as :func:`sklearn.utils.check_memory`.

    Unlike scikit-learn's, it takes a path-like folder too, and its error names what it
    got.

    Parameters
    ----------
    memory : None, str, path-like or joblib.Memory
        None caches nothing; a folder is where a new :class:`joblib.Memory` caches.

    Returns
    -------
    joblib.Memory or an object with the same ``cache`` method
        One that caches nothing for None.

    Raises
    ------
    ValueError
        If ``memory`` is none of the above.

    Examples
    --------
    >>> check_memory(None).location is None
    True
    >>> check_memory(3)
    Traceback (most recent call last):
    ...
    ValueError: memory must be None, a folder (str or path) or a joblib.Memory, got 3.
    """
    location = os.fspath(memory) if isinstance(memory, os.PathLike) else memory
    try:
        return _sklearn_check_memory(location)
    except ValueError as error:
        raise ValueError(
            f"memory must be None, a folder (str or path) or a joblib.Memory, got {memory!r}."
        ) from error
