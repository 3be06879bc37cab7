"""Fuzzing of the data stager (``make fuzz``; docs/testing.md).

``fuzz.api``
    schemathesis against ``/v1/openapi.json`` of the real running stack (``fuzz.stack``:
    ``make up --ephemeral`` with a real OIDC provider), as a service account and as a user.
``fuzz.targets``
    coverage-guided (atheris) harnesses of the parsers that read untrusted bytes: the iRODS
    test server's frame and message parser, isync's reply parser, the API's JSON and YAML
    intake; ``fuzz.run`` runs them for a time or for a fixed number of inputs, and each
    target's seed and regression inputs live in ``fuzz/corpus/<target>/``.
"""
