"""An iRODS-protocol server for tests and demos.

It speaks the real iRODS wire protocol well enough that the unmodified
python-irodsclient (and other clients) run against it: handshake, native and PAM
authentication, TLS, collections, data objects with parallel streams, checksums,
AVUs, ACLs, resources and GenQuery. The catalog is an SQLite database and the vault a
directory tree, both under the ``--data`` directory, so state survives a restart.

Start it with ``python -m devtools.irods_server --data DIR [--host H] [--port P]``.
"""
