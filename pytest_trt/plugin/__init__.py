"""The pytest face: hooks (the entry module ``hooks.py``), options, session state, the marker, golden locations,
the fixtures and verdicts, the terminal summary."""
