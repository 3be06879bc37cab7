"""The API fixtures of ``tests/api`` (the app through ``create_app`` on the real broker)."""

from tests.api.conftest import api, keypair, make_api, oidc, oidc_key  # noqa: F401
