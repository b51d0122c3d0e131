"""Stored goldens: the file format and atomic writes (``store``), and what a check does with them (``policy``)."""
