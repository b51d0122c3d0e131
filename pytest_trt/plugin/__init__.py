"""The pytest face: hooks (the entry module ``hooks.py``), options, golden locations, the fixture, the summary."""
