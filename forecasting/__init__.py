"""spendcast's library: pure functions over polars frames; I/O only in its edge modules."""

__version__ = "0.1.0"
