"""Tests of pytest_trt/backends/tensorrt/."""
