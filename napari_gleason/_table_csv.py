"""A widget table as CSV text, and saving it (headless, no Qt: :mod:`._qt.tables` reads the cells).

Every table of the plugin's widgets (agreement, grades, the dataset browser, the confusion
matrices) can be copied and saved as CSV: the cells as shown (the numbers as rounded on screen,
"—" where a value is not available), a header row, and the row labels as a first column where the
table has them (the confusion matrices' "true class"). The ``csv`` module quotes what needs it
(names with commas, quotes, line breaks), so a spreadsheet or ``csv.reader`` reads back the same cells.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from trainer.atomic import atomic_write


def table_csv(headers: Sequence[str], rows: Sequence[Sequence[str]], row_headers: Sequence[str] | None = None,
              corner: str = "") -> str:
    """CSV text of a table: ``headers``, then ``rows`` (cell texts); with ``row_headers``, each row
    starts with its label and the header row with ``corner``. Lines end with ``\\n``."""
    if row_headers is not None and len(row_headers) != len(rows):
        raise ValueError(f"{len(row_headers)} row labels for {len(rows)} rows")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([corner, *headers] if row_headers is not None else list(headers))
    for i, row in enumerate(rows):
        writer.writerow([row_headers[i], *row] if row_headers is not None else list(row))
    return out.getvalue()


def save_csv(path: str | Path, text: str) -> Path:
    """Write CSV ``text`` to ``path`` atomically (a failure raises :class:`~trainer.errors.InputError`
    naming the file; nothing partial is left)."""
    path = Path(path)
    with atomic_write(path, "w", what="the CSV table") as f:
        f.write(text)
    return path
