"""Readers of the raw formats (Open DAMIR, legacy monthly tables, tidy files) and synth."""
