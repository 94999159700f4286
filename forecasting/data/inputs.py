"""The inputs of ``spendcast ingest``: files named or found in folders, and their format."""

from __future__ import annotations

import re
from pathlib import Path

from forecasting.data import legacy_tables, open_damir
from forecasting.data.checks import check_choice
from forecasting.errors import InputError

__all__ = ["FORMATS", "list_inputs", "detect_format", "file_month"]

FORMATS = ("open-damir", "legacy", "tidy")

_OD_RE = re.compile(r"^A(\d{4})(\d{2})\.csv(\.gz)?$", re.IGNORECASE)


def list_inputs(inputs: list[Path]) -> list[Path]:
    """Files named, plus the recognised monthly files inside folders (sorted)."""
    files: list[Path] = []
    for p in inputs:
        p = Path(p)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and file_month(f) is not None)
            if not found:
                raise InputError(
                    "no A{YYYYMM}.csv(.gz) or N/R{YYYYMM}.CSV file in this folder",
                    file=p,
                    hint="name the files, or point at the folder that holds them",
                )
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise InputError("no such file or folder", file=p, hint="check the path")
    return files


def _sniff(path: Path) -> str:
    """The ';'-separated header of a file, or "" if it has none."""
    try:
        return ";".join(open_damir.read_header(path))
    except InputError:
        return ""


def _kind(path: Path) -> str:
    """The format of one file: from its name, else its header."""
    if _OD_RE.match(path.name):
        return "open-damir"
    if legacy_tables.NAME_RE.match(path.name):
        return "legacy"
    if path.suffix.lower() == ".parquet":
        return "tidy"
    head = _sniff(path)
    if "FLX_ANN_MOI" in head:
        return "open-damir"
    if "rem_mon" in head.lower() and "serie" in head.lower():
        return "legacy"
    return "tidy"


def detect_format(files: list[Path], fmt: str = "auto") -> tuple[str, str]:
    """The format of the files and why: from names, else headers.

    Raises:
        InputError: unknown or mixed formats.
    """
    if fmt != "auto":
        allowed = ("auto", *FORMATS)
        check_choice(fmt, allowed, what="format", column="format", hint="use " + ", ".join(allowed))
        return fmt, "--format"
    found = sorted({_kind(f) for f in files})
    if len(found) != 1:
        raise InputError(
            f"the inputs mix formats ({', '.join(found)})",
            hint="ingest one format at a time, or pass --format",
        )
    how = "file names A{YYYYMM}" if found[0] == "open-damir" else "file names and headers"
    return found[0], how


def file_month(path: Path) -> str | None:
    """``YYYY-MM`` from a monthly file's name (``A202401.csv.gz``, ``N202401.CSV``), else None."""
    m = _OD_RE.match(path.name) or legacy_tables.NAME_RE.match(path.name)
    return f"{m.group(1)}-{m.group(2)}" if m else None
