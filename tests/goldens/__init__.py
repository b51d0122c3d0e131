"""Tests of pytest_trt/goldens/."""
