"""The stager worker: runs transfers as the user (see docs/pipeline.md)."""
