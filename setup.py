"""Builds the comparator's optional C kernel (pytest_trt/comparison/_scan.c); all other metadata is in pyproject.toml.

The kernel is optional: without a C compiler the install still succeeds and pytest_trt.comparison.scan
uses its numpy path, which gives the same reports, only slower on large outputs.
"""
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    """Compiler flags by compiler: bounds must round as numpy's do, so no fused multiply-add."""

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        for extension in self.extensions:
            extension.extra_compile_args = ["/O2", "/fp:precise"] if msvc else ["-O3", "-ffp-contract=off"]
        super().build_extensions()


setup(
    ext_modules=[Extension("pytest_trt.comparison._scan", ["pytest_trt/comparison/_scan.c"], optional=True)],
    cmdclass={"build_ext": BuildExt},
)
