"""A real OpenID Connect provider (npm ``oidc-provider``, pinned) on loopback; see
:mod:`devtools.oidc.launcher`."""
