"""pytest-drcheck: prove a disaster-recovery drill worked, from the recovery instances."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pytest-drcheck")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
