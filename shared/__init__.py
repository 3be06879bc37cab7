"""Shared code of the data stager services: models, settings, crypto, store, auth."""
