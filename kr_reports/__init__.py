"""KR Online privacy-safe aggregate reporting."""

__version__ = "0.1.0"
