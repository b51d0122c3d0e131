"""Comparing outputs: compare.py (entry points, each output's report), report.py (records, messages, numbers as
text), scan.py (the element scan: numpy, C kernel, threads), stats.py (decade histogram, statistics), kernel.py."""
