"""The project's tests: each folder tests the package folder of the same name (see conftest.py)."""
