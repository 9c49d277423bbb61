"""zonechief: city-management zone chief service for Dongguan (城管片长制)."""
from importlib.metadata import version

__version__ = version("zonechief")  # written once, in pyproject.toml
