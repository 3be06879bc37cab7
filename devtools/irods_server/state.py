"""Server-wide state shared by every connection (the catalog, the vault, replica tokens)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import hash_scheme, vault

if TYPE_CHECKING:
    from .catalog import Catalog

ZONE = "tempZone"
ADMIN_USER = "rods"
ADMIN_PASSWORD = "rods"  # a fresh iRODS install's well-known default
DEFAULT_RESOURCE = "demoResc"
SERVER_VERSION = "rods4.3.4"
API_VERSION = "d"


@dataclass
class ServerState:
    """Everything a handler may need beyond its own connection."""

    data_dir: Path
    catalog: Catalog
    zone: str = ZONE
    default_resource: str = DEFAULT_RESOURCE
    # TLS context used when a client negotiates CS_NEG_USE_SSL (None: TLS refused)
    ssl_context: ssl.SSLContext | None = None
    # every open replica by its token: token -> api_streams.OpenReplica (parallel streams share it)
    replica_tokens: dict[str, Any] = field(default_factory=dict)
    # strict behaviours relaxed for this process (``leniency.py`` names); empty: strict
    lenient: frozenset[str] = frozenset()
    # the zone's ``default_hash_scheme`` (``hash_scheme.py``): SHA256 or MD5
    hash_scheme: str = hash_scheme.DEFAULT
    # tests only (``--request-log``): every API request's number, one line each
    request_log: TextIO | None = None

    def strict(self, name: str) -> bool:
        """Whether the behaviour ``name`` (a ``leniency`` name) is strict, as iRODS is."""
        return name not in self.lenient

    def checksum(self, path: str, original: str | None = None) -> str:
        """Hash the replica file ``path`` as the zone does: in the scheme of ``original``
        (the catalog's or the client's checksum) when it has one, else in the zone's
        default scheme (``rsFileChksum.cpp`` ``file_checksum``, policy ``compatible``)."""
        return vault.checksum(path, hash_scheme.choose(self.hash_scheme, original))

    @property
    def vault_root(self) -> Path:
        return self.data_dir / "vault"
