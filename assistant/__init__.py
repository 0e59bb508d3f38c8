"""s2r: speech-to-retrieval spoken assistant runtime."""

__version__ = "0.1.0"
