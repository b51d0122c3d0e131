"""The commands of ``python -m pytest_trt`` (``pytest_trt/__main__.py`` dispatches to them), one module each."""
