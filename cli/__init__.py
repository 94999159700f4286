"""`spendcast`, the command line: thin commands over ``forecasting`` and ``service``."""
