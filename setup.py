"""Builds the native instruction counter at install time.

The counter is a plain C library loaded with ctypes (it links against nothing:
Unicorn's functions are handed to it as pointers), so it is built as an
extension module only to get setuptools to compile and ship it.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rrtool.machine._icount",
            sources=["rrtool/machine/_icount.c"],
            extra_compile_args=["-O2"],
        )
    ]
)
