"""The researcher web UI: OIDC login, repository login, two panes, jobs (``docs/ui.md``)."""
