"""Tests of pytest_trt/core/."""
