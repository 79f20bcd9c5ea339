"""itas: inference-time architecture search."""

__version__ = "0.1.0"
