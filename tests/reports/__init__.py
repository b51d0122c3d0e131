"""Tests of pytest_trt/reports/."""
