"""Code lists shipped as data (origins in NOTICE)."""
