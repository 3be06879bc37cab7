"""Tests of the iRODS-protocol test server (devtools/irods_server)."""
