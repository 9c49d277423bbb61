"""zonechief: city-management zone chief service for Dongguan (城管片长制)."""
__version__ = "0.1.0"
