"""``birdaudio predict``: detection tables of recordings, resumable, and their thresholds.

With a folder ``--out`` each file's table is written as the file finishes, then its run
record (:mod:`sklearn_birdaudio.runs`), so that ``--resume`` redoes only the files whose
record does not vouch for their table.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections import Counter
from pathlib import Path

from .errors import EXIT_OK, EXIT_PARTIAL, CommandError
from .models import load_fitted_model


def run(args) -> int:
    """Run ``birdaudio predict`` on its parsed command line ``args``.

    Returns the exit code: ``EXIT_OK``, or ``EXIT_PARTIAL`` when some inputs were skipped or
    read part-way.
    """
    from ..audio import audio_files
    from ..detection import detect, quiet_model
    from ..runs import PerFileRun, file_sha256
    from ..tables import write_detections

    missing = [str(path) for path in args.inputs if not path.exists()]
    if missing:  # before the model is loaded: nothing is scored or written
        raise CommandError(f"input(s) not found: {', '.join(missing)}.")
    # copied once, not per file
    model = quiet_model(load_fitted_model(args.model, allow_pickle=args.allow_pickle))
    thresholds = read_thresholds(args.thresholds) if args.thresholds else None
    if args.species:
        _check_species(model, args.species)
    combined = bool(args.out.suffix) and not args.out.is_dir()
    if args.resume and combined:
        raise CommandError("--resume needs a folder --out (one table per file).")
    run_files = [
        file
        for source in map(str, args.inputs)
        for file in (audio_files(source) if os.path.isdir(source) else [source])
    ]
    if not run_files:
        from ..audio_bounds import TESTED_FORMATS

        raise CommandError(
            f"{', '.join(map(str, args.inputs))}: no audio files in "
            f"{'it' if len(args.inputs) == 1 else 'them'}; expected {TESTED_FORMATS} files "
            "or folders holding some."
        )
    if not combined:
        _make_tables_folder(args.out)
    options = {
        "overlap_seconds": args.overlap,
        "min_confidence": args.min_confidence,
        "thresholds": thresholds,
        "batch_size": args.batch_size,
        # every core by default; a cluster's workers share the files out themselves
        "n_jobs": args.jobs if args.jobs is not None else (None if args.scheduler else -1),
        "verbose": args.verbose,
        "species": args.species or None,
    }
    if combined:
        with _dask_client(args.scheduler) as client:
            detections = detect(model, run_files, client=client, **options)
        written = [write_detections(detections, args.out, format=args.format)]
    else:
        # Each table is written as its file finishes, then its run record, which says what
        # the table covers: --resume redoes every file whose record does not vouch for it.
        settings = {key: options[key] for key in ("min_confidence", "overlap_seconds")}
        if args.species:  # tables of other species are redone by --resume
            settings["species"] = sorted(set(args.species))
        per_file = PerFileRun(
            run_files,
            args.out,
            args.format,
            model_sha256=file_sha256(args.model),
            settings={**settings, "thresholds": thresholds},
        )
        per_file.remove_leftovers()  # temporary files of a killed run
        sources = _files_to_redo(per_file, args.verbose) if args.resume else run_files
        if not sources:
            return EXIT_OK
        written = []
        with _dask_client(args.scheduler) as client:
            detections = detect(
                model,
                sources,
                client=client,
                on_file=lambda part: written.extend(per_file.write(part)),
                **options,
            )
    errors, durations = detections.errors, detections.durations
    print(
        f"{len(detections)} detections in {len(durations)} file(s); {len(written)} table(s) "
        f"written to {args.out}"
    )
    for entry in errors:
        file, error = entry["file"], entry["error"]
        if file in durations:
            print(
                f"birdaudio: incomplete {file}: only its first {durations[file]:g} s were "
                f"scored (kept, marked partial: --resume retries it): {error}",
                file=sys.stderr,
            )
        else:
            print(f"birdaudio: skipped {file}: {error}", file=sys.stderr)
    return EXIT_PARTIAL if errors else EXIT_OK


def read_thresholds(path: Path) -> dict[str, float]:
    """Per-species thresholds from JSON (``{"species": 0.6}``) or CSV.

    A CSV is either two columns, species and threshold (a first line that is not a number
    is a header), or has a header naming ``species`` and ``threshold`` columns among others,
    as ``birdaudio calibrate`` writes: the other columns are ignored, and a species cell
    loses one leading ``'`` (the mark that keeps spreadsheets from running it as a formula).

    Parameters
    ----------
    path : Path
        The thresholds file (``--thresholds``).

    Returns
    -------
    dict
        ``{species: threshold}``.

    Raises
    ------
    CommandError
        When the file is missing or is not such a table.
    """
    if not path.is_file():
        raise CommandError(f"{path}: thresholds file not found.")
    if path.suffix.lower() == ".json":
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise CommandError(f"{path}: expected a JSON object mapping species to thresholds.")
        return {str(label): float(value) for label, value in values.items()}
    import pandas as pd

    try:
        table = pd.read_csv(
            path, header=None, dtype=str, keep_default_na=False, skip_blank_lines=True
        )
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
        raise CommandError(f"{path}: not a CSV of species and thresholds ({error}).") from None
    header = [str(cell).strip().lower() for cell in table.iloc[0]] if len(table) else []
    if "species" in header and "threshold" in header:
        rows = table.iloc[1:, [header.index("species"), header.index("threshold")]]
        from ..text_cells import csv_cell_text  # calibrate marks the species it writes

        rows = [(csv_cell_text(label), value) for label, value in rows.itertuples(index=False)]
    elif table.shape[1] == 2:
        rows = list(table.itertuples(index=False))
        try:
            float(rows[0][1])
        except ValueError:  # only the first line may be a (non-numeric) header
            rows = rows[1:]
    else:
        raise CommandError(
            f"{path}: expected two columns, species and threshold, or a header naming "
            f"'species' and 'threshold' columns; got {table.shape[1]} columns."
        )
    thresholds = {}
    for label, value in rows:
        try:
            thresholds[label.strip()] = float(value)
        except ValueError:
            raise CommandError(
                f"{path}: threshold {value!r} of {label!r} is not a number."
            ) from None
    return thresholds


def _check_species(model, species: list[str]) -> None:
    """A one-line error naming the model's classes when a --species name is not one."""
    classes = [str(label) for label in model.classes_]
    unknown = [name for name in dict.fromkeys(species) if name not in classes]
    if unknown:
        raise CommandError(
            f"--species: {', '.join(unknown)} not among the model's {len(classes)} classes: "
            f"{', '.join(classes)}."
        )


def _make_tables_folder(out: Path) -> None:
    """Create the folder of per-file tables, or say in one line why ``out`` cannot be one."""
    expected = (
        "expected --out to be a folder (one table per audio file) or a file name with an "
        "extension (e.g. detections.csv) for one combined table"
    )
    if out.exists() and not out.is_dir():
        raise CommandError(f"{out}: exists and is not a folder; {expected}.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        message = f"{out}: cannot create this folder ({error.strerror}); {expected}."
        raise CommandError(message) from error


def _files_to_redo(per_file, verbose: int) -> list[str]:
    """The files ``--resume`` scores: one line says how many are skipped and why the others
    are redone; ``-v`` lists each of them with its reason."""
    reasons = per_file.redo_reasons()
    redo = [file for file, reason in reasons.items() if reason is not None]
    counts = Counter(reasons[file] for file in redo)
    line = f"Resuming: {len(reasons) - len(redo)} of {len(reasons)} file(s) complete, skipped"
    if redo:
        why = ", ".join(f"{count} {reason}" for reason, count in counts.items())
        line += f"; {len(redo)} to score ({why})"
    print(f"{line}.")
    if verbose > 1:
        for file in redo:
            print(f"  redo {file}: {reasons[file]}")
    return redo


@contextlib.contextmanager
def _dask_client(address: str | None):
    """A Dask client connected to the scheduler at ``address``; None when not given."""
    if address is None:
        yield None
        return
    from ..extras import import_extra

    distributed = import_extra("distributed")
    try:
        client = distributed.Client(address, timeout="30s")
    except OSError as error:
        raise CommandError(f"cannot reach the Dask scheduler at {address}: {error}") from error
    with client:
        yield client
