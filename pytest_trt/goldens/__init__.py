"""Stored goldens: the file format and atomic writes (``store``), its pickle-free reader (``npz``), and what
a check does with them (``policy``)."""
