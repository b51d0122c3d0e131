"""Comparing outputs: report records and their messages, the scan (numpy, C kernel, threads), statistics."""
