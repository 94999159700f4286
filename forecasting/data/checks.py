"""Checks of user input shared by the readers, ingest and synth: one list per option, one check.

Each option's allowed values live here once (:data:`MEASURES`, :data:`BASES`, :data:`SCOPES`,
:data:`ON_BAD_ROWS`, :data:`FILL_MISSING`) and are checked where the value enters with
:func:`check_choice`; :func:`check_columns` names the first missing column of a file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from forecasting.errors import InputError

__all__ = [
    "MEASURES",
    "BASES",
    "SCOPES",
    "ON_BAD_ROWS",
    "FILL_MISSING",
    "one_of",
    "check_choice",
    "check_measure",
    "check_basis",
    "check_columns",
]

MEASURES = ("reimbursed", "presented", "acts")
"""What a panel counts: amounts reimbursed, amounts presented, or acts."""
BASES = ("flux", "care")
"""Which month an amount belongs to: processing (flux) or care month."""
SCOPES = ("all", "monthly-statistic", "ondam")
"""Open DAMIR rows kept: all, the monthly statistic's (TOP_PS5_TRG=1), ONDAM (CPT_ENV_TYP 1, 2)."""
ON_BAD_ROWS = ("error", "skip")
"""What a reader does with a bad row: raise, or set it aside in the quarantine."""
FILL_MISSING = ("zero",)
"""How missing months inside a series may be filled (None: they are an error)."""


def one_of(values: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``: the allowed values in a hint."""
    if len(values) < 2:
        return "".join(values)
    return ", ".join(values[:-1]) + " or " + values[-1]


def check_choice(
    value: str, allowed: Sequence[str], *, what: str, column: str, hint: str | None = None
) -> None:
    """Raise ``unknown <what> <value>`` unless ``value`` is allowed.

    Args:
        value: the value given.
        allowed: the allowed values.
        what: the option's name in the message (``measure``, ``--on-bad-rows``...).
        column: the option's name in the error's ``column``.
        hint: what to do (default ``use`` + :func:`one_of` the allowed values).

    Raises:
        InputError: the value is not allowed.
    """
    if value not in allowed:
        raise InputError(
            f"unknown {what} {value!r}", column=column, hint=hint or "use " + one_of(allowed)
        )


def check_measure(measure: str) -> None:
    """Raise unless ``measure`` is one of :data:`MEASURES`."""
    hint = "use " + ", ".join(MEASURES)
    check_choice(measure, MEASURES, what="measure", column="measure", hint=hint)


def check_basis(basis: str) -> None:
    """Raise unless ``basis`` is one of :data:`BASES`."""
    check_choice(basis, BASES, what="basis", column="basis")


def check_columns(
    needed: Sequence[str],
    have: Sequence[str],
    *,
    file: str | os.PathLike[str],
    hint: str,
    detail: str | None = None,
) -> None:
    """Raise on the header line naming the needed columns a file lacks (in ``needed`` order).

    Args:
        needed: the columns the reader needs.
        have: the columns the file has.
        file: the file (messages).
        hint: what to do.
        detail: text after the missing names (default ``(have: <columns>)``).

    Raises:
        InputError: some needed column is missing.
    """
    missing = [c for c in needed if c not in have]
    if missing:
        tail = f" (have: {', '.join(have)})" if detail is None else detail
        raise InputError(
            f"missing column(s) {', '.join(missing)}{tail}",
            file=file,
            line=1,
            column=missing[0],
            hint=hint,
        )
