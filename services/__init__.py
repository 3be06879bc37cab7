"""Service packages of the data stager."""
