"""A development WebDAV server whose logins are checked against iRODS (``docs/ui.md``)."""
