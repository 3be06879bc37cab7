"""Developer scripts (``python -m scripts.up`` is ``make up``)."""
