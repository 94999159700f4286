"""The domain errors: every error spendcast raises on purpose derives from SpendcastError."""

from __future__ import annotations

import os

__all__ = ["SpendcastError", "InputError"]


class SpendcastError(Exception):
    """Base class of every error spendcast raises on purpose."""


class InputError(SpendcastError, ValueError):
    """Bad input: says which file, line and column, and what to do.

    Args:
        message: what is wrong.
        file: the file that holds the bad input, if any.
        line: 1-based line number in that file (header = line 1), where known.
        column: the column or field at fault, where known.
        hint: what the user should do about it.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | os.PathLike[str] | None = None,
        line: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column:
            where.append(f"column {self.column}")
        text = (", ".join(where) + ": " if where else "") + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text
