"""Two tiny unittest modules the conformance runner runs as if they were PRC modules,
to show that one module's damage does not reach the next (see test_conformance.py)."""
