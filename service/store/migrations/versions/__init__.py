"""One module per schema revision, oldest first; a new one copies the latest's shape."""
