# Root conftest: pytester for the plugin's own tests; benchmarks are scripts, not tests.
pytest_plugins = ["pytester"]
collect_ignore = ["benchmarks"]
