"""Cells of delimited text tables (CSV, tab-separated): written safely, read back exactly.

Every table the package writes (detection tables, ``review.csv``, thresholds) holds text
(file names, labels) that may be anything. This module owns the one set of rules that makes
such a cell safe, and its inverse:

- A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, which a
  spreadsheet could run as a formula ("CSV injection"), gets one ``'`` in front, as OWASP
  advises; so does one that starts with ``'``, so that the reader can remove exactly one
  leading ``'`` from every text cell (:func:`spreadsheet_safe`, :func:`csv_cell_text`).
- CSV puts a text cell in double quotes (doubling its double quotes) when it holds a comma,
  a double quote or a control character: C0 and C1 controls, DEL, and the Unicode line and
  paragraph separators, line breaks included (:func:`csv_cell`).
- Tab-separated tables cannot quote, so there a text cell holding a control character gets
  the leading ``'`` too, and in a cell with a leading ``'`` a backslash is written ``\\\\``, a
  tab ``\\t``, a line feed ``\\n``, a carriage return ``\\r`` and any other control character
  ``\\xNN`` or ``\\uNNNN`` (:func:`tab_cell`, :func:`tab_cell_text`).

Other text is written as it is, backslashes included (Windows paths stay paths), so tables
of ordinary labels and file names are unchanged. Cells written by other tools are read the
same way: there, too, a text cell that starts with ``'`` loses it. Numbers are never marked:
:func:`csv_number_cells` writes them exactly. :func:`delimited_text` joins cells into a
table's text; :func:`read_table_text` and :func:`read_delimited` read a table's cells back
as text, and :func:`labels_from_text` reads a column of labels.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "CONTROL_CHARACTER",
    "csv_cell",
    "csv_cell_text",
    "csv_number_cells",
    "delimited_text",
    "labels_from_text",
    "read_delimited",
    "read_table_text",
    "spreadsheet_safe",
    "tab_cell",
    "tab_cell_text",
    "texts",
]

# A label that reads back as an int: an integer written plainly ("3", not "03" or "+3").
_CANONICAL_INTEGER = r"-?(?:0|[1-9][0-9]*)"
# Text cells that a spreadsheet could run as a formula (OWASP, "CSV injection"), and the
# mark that neutralises them; a cell that starts with the mark gets it too, so that the
# reader can strip exactly one.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_MARK = "'"
_MARKED_STARTS = (*_FORMULA_STARTS, _MARK)
# Characters a tool may take for the end of a field or a line (str.splitlines breaks at
# \x0b, \x0c, \x1c-\x1e, \x85, \u2028 and \u2029 too) or that do not show: C0 controls,
# DEL, C1 controls, and the Unicode line and paragraph separators.
_CONTROLS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
#: One control character: C0 and C1 controls, DEL, the Unicode line and paragraph separators.
CONTROL_CHARACTER = re.compile(f"[{_CONTROLS}]")
_CSV_NEEDS_QUOTES = re.compile(f'[,"{_CONTROLS}]')
_TO_ESCAPE = re.compile(f"[\\\\{_CONTROLS}]")
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {escape[1]: character for character, escape in _ESCAPES.items()}
_ESCAPE_SEQUENCE = re.compile(r"\\(?:([\\tnr])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4}))")


def _escaped(match: re.Match) -> str:
    character = match.group()
    if character in _ESCAPES:
        return _ESCAPES[character]
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _unescaped(match: re.Match) -> str:
    named, byte, code = match.groups()
    return _UNESCAPES[named] if named else chr(int(byte or code, 16))


def spreadsheet_safe(text: str) -> str:
    """Text that no spreadsheet runs as a formula: marked with a leading ``'`` where needed.

    Text that starts with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or ``'`` gets
    one ``'`` in front; other text is returned as it is. :func:`csv_cell_text` removes the
    mark. Quoting is left to the writer (:func:`csv_cell` does both).

    Parameters
    ----------
    text : str
        The text of one cell.

    Returns
    -------
    str
        The text, marked if it needs to be.

    Examples
    --------
    >>> spreadsheet_safe("=SUM(A1)"), spreadsheet_safe("'quoted"), spreadsheet_safe("wren")
    ("'=SUM(A1)", "''quoted", 'wren')
    """
    return _MARK + text if text.startswith(_MARKED_STARTS) else text


def csv_cell(text: str) -> str:
    """A text cell of a CSV table: marked if a spreadsheet could run it, quoted if needed.

    Parameters
    ----------
    text : str
        The text of the cell.

    Returns
    -------
    str
        The cell as written between the commas of a row: :func:`spreadsheet_safe` text, in
        double quotes (its double quotes doubled) if it holds a comma, a double quote or a
        control character (:data:`CONTROL_CHARACTER`).

    Examples
    --------
    >>> csv_cell("wren"), csv_cell('say "hi", =1'), csv_cell("-1 dB")
    ('wren', '"say ""hi"", =1"', "'-1 dB")
    """
    text = spreadsheet_safe(text)
    if _CSV_NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_cell_text(cell: str) -> str:
    """The text of a CSV cell, as a CSV parser gives it (quotes removed): without its mark.

    The inverse of :func:`csv_cell` after parsing, and of :func:`spreadsheet_safe`: one
    leading ``'`` is removed, whoever wrote the cell.

    Parameters
    ----------
    cell : str
        The cell's value.

    Returns
    -------
    str
        The text.

    Examples
    --------
    >>> csv_cell_text("'=SUM(A1)"), csv_cell_text("''quoted"), csv_cell_text("wren")
    ('=SUM(A1)', "'quoted", 'wren')
    """
    return cell.removeprefix(_MARK)


def tab_cell(text: str) -> str:
    """A text field of a tab-separated table: marked, and then escaped, where it must be.

    Text that starts a formula or with ``'`` (:func:`spreadsheet_safe`), or that holds a
    control character (:data:`CONTROL_CHARACTER`), gets a leading ``'``, and then its
    backslashes and control characters are written as escapes (``\\\\``, ``\\t``, ``\\n``,
    ``\\r``, ``\\xNN``, ``\\uNNNN``). Other text is written as it is, backslashes included.

    Parameters
    ----------
    text : str
        The text of the field.

    Returns
    -------
    str
        The field: never holds a tab, a line break or another control character.

    Examples
    --------
    >>> tab_cell("am\\terob"), tab_cell("C:\\\\birds"), tab_cell("=1\\\\2")
    ("'am\\\\terob", 'C:\\\\birds', "'=1\\\\\\\\2")
    """
    if text.startswith(_MARKED_STARTS) or CONTROL_CHARACTER.search(text):
        return _MARK + _TO_ESCAPE.sub(_escaped, text)
    return text


def tab_cell_text(field: str) -> str:
    """The text of a tab-separated field: a marked one loses its mark and is unescaped.

    The inverse of :func:`tab_cell`. A backslash that starts no escape is kept, as it is in
    text that other tools wrote; an unmarked field is returned as it is.

    Parameters
    ----------
    field : str
        The field, as split from its line.

    Returns
    -------
    str
        The text.

    Examples
    --------
    >>> tab_cell_text("'am\\\\terob"), tab_cell_text("C:\\\\new"), tab_cell_text("'C:\\\\p")
    ('am\\terob', 'C:\\\\new', 'C:\\\\p')
    """
    if field.startswith(_MARK):
        return _ESCAPE_SEQUENCE.sub(_unescaped, field[1:])
    return field


def texts(values: pd.Series) -> list[str]:
    """Values as text; a missing one (None, NaN) is empty text, as pandas writes it to CSV.

    Parameters
    ----------
    values : pandas.Series
        A column of labels or file names, of any type.

    Returns
    -------
    list of str
        ``str(value)`` for each value, ``""`` for a missing one.

    Examples
    --------
    >>> texts(pd.Series(["wren", None, float("nan"), 3]))
    ['wren', '', '', '3']
    """
    missing = values.isna()
    return ["" if gap else str(value) for value, gap in zip(values, missing, strict=True)]


def csv_number_cells(values: pd.Series) -> np.ndarray:
    """Numbers as pandas writes them to CSV: the shortest decimal that reads back exactly,
    and an empty cell for NaN.

    Examples
    --------
    >>> csv_number_cells(pd.Series([0.1, 2, float("nan")])).tolist()
    ['0.1', '2.0', '']
    """
    numbers = values.to_numpy(dtype=float)
    cells = numbers.astype(str).astype(object)
    cells[np.isnan(numbers)] = ""
    return cells


def delimited_text(
    header: Iterable[str] | None, records: Iterable[Iterable[str]], separator: str = "\t"
) -> str:
    """The text of a delimited table: the header (if any), then one line per record.

    Fields are joined by ``separator`` as they are (escape them first: :func:`csv_cell`,
    :func:`tab_cell`), every line ends with a line feed.

    Examples
    --------
    >>> delimited_text(["a", "b"], [["1", "2"]], ",")
    'a,b\\n1,2\\n'
    """
    lines = [] if header is None else [separator.join(header)]
    lines += [separator.join(record) for record in records]
    return "".join(line + "\n" for line in lines)


def read_table_text(path: Path) -> str:
    """The text of a table file, as UTF-8 (a byte-order mark skipped), line ends as they are.

    Raises
    ------
    ValueError
        If the file is not UTF-8 text; the message names it.
    """
    try:
        # newline="": a line break inside a quoted CSV cell is text, kept as it is.
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: is not UTF-8 text ({error}).") from error


def read_delimited(text: str, path: Path, separator: str, required: Iterable[str]) -> pd.DataFrame:
    """Read a table with a header row, every field as str, and check its columns.

    ``path`` names the table in errors. A tab-separated table is read without quoting (its
    text cells are escaped: :func:`tab_cell_text`), a CSV one with it. Cells keep their
    ``'`` mark: :func:`csv_cell_text` removes it.

    Raises
    ------
    ValueError
        If the text is empty, or a ``required`` column is missing.
    """
    try:
        table = pd.read_csv(
            io.StringIO(text),
            sep=separator,
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_NONE if separator == "\t" else csv.QUOTE_MINIMAL,
        )
    except pd.errors.EmptyDataError as error:
        raise ValueError(f"{path}: is empty; expected a table with a header row.") from error
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: lacks the column(s) {missing}; its header is {list(table.columns)}."
        )
    return table


def labels_from_text(labels: pd.Series) -> pd.Series:
    """Labels as read from a table: ``int`` when every one is an integer written plainly.

    ``"3"`` is an integer, ``"03"`` and ``"+3"`` are not; integers beyond 64 bits stay text.

    Examples
    --------
    >>> labels_from_text(pd.Series(["3", "-1"])).tolist(), labels_from_text(
    ...     pd.Series(["3", "03"])).tolist()
    ([3, -1], ['3', '03'])
    """
    labels = labels.astype(str)
    if len(labels) and labels.str.fullmatch(_CANONICAL_INTEGER).all():
        with contextlib.suppress(OverflowError):  # integers beyond 64 bits stay text
            return labels.astype("int64")
    return labels
