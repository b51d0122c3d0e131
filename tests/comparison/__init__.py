"""Tests of pytest_trt/comparison/."""
