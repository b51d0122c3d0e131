"""Tests of pytest_trt/plugin/."""
