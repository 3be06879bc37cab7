"""Tiny unittest modules the conformance runner runs as if they were PRC modules,
to show that one module's damage does not reach the next, who runs them, and as which
release the server presents (see test_conformance.py)."""
