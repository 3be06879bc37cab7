"""The API test fixtures (tests/api/conftest.py), for the metrics test that scrapes it."""

from tests.api.conftest import api, keypair, make_api, oidc, oidc_key  # noqa: F401
