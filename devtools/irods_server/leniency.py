"""Strict by default: the iRODS 4.3 behaviours a test may relax, one name each.

The test server behaves as a default iRODS 4.3.4 zone answers (issue 14). A test that
needs the old lenient answer of one behaviour names it, and only it:
``python -m devtools.irods_server --lenient NAME[,NAME]``, ``ServerProcess(...,
lenient="NAME")`` or ``IRODS_TEST_SERVER_LENIENT=NAME`` in the server's environment (the
flag wins). Unknown names are refused at start.

- ``api-allowlist``: a non-admin client may call every API, as a zone whose
  ``server_config.json`` says ``"client_api_allowlist_policy": "disabled"``
  (``server/core/src/client_api_allowlist.cpp``); strict: ``SYS_NO_API_PRIV`` for an API
  off the list, e.g. 622 modDataObjMeta.
- ``path-registration``: any user may register any file the server can read, as a zone
  whose ``acSetChkFilePathPerm`` rule allows it (``msiSetChkFilePathPerm("doChkPathPerm")``);
  strict: ``PATH_REG_NOT_ALLOWED`` unless the client is a rodsadmin or a rodsadmin proxy
  sends ``noChkFilePerm`` (the shipped ``disallowPathReg``, ``packaging/core.re.template``).
- ``error-text``: every error reply carries its message in an ``RError_PI``; strict: only
  the errors iRODS itself adds text to (``IrodsError(..., sends_text=True)``), as a real
  agent packs an ``RError_PI`` only when its error stack is not empty (``sendApiReply``,
  ``server/core/src/rsApiHandler.cpp``).
- ``resource-snapshot``: a connection sees every resource in the catalog; strict: only the
  ones that existed when it connected (not even one it created itself), as a real agent
  loads the resource list once when it starts (``resc_mgr.init_from_catalog`` in
  ``initServerInfo``, ``server/core/src/initServer.cpp``): a resource made later is
  ``SYS_RESC_DOES_NOT_EXIST`` to it (python-irodsclient's ``resources.create`` closes the
  session's connections afterwards for that reason).
"""

from __future__ import annotations

import os

ENV_VAR = "IRODS_TEST_SERVER_LENIENT"
API_ALLOWLIST = "api-allowlist"
PATH_REGISTRATION = "path-registration"
ERROR_TEXT = "error-text"
RESOURCE_SNAPSHOT = "resource-snapshot"
NAMES = frozenset({API_ALLOWLIST, PATH_REGISTRATION, ERROR_TEXT, RESOURCE_SNAPSHOT})


def parse(text: str | None) -> frozenset[str]:
    """``"a,b"`` -> the names; ``ValueError`` naming any unknown one."""
    names = frozenset(n.strip() for n in (text or "").split(",") if n.strip())
    unknown = sorted(names - NAMES)
    if unknown:
        raise ValueError(
            f"unknown --lenient name(s) {', '.join(unknown)}; known: {', '.join(sorted(NAMES))}"
        )
    return names


def from_environment() -> frozenset[str]:
    """What ``IRODS_TEST_SERVER_LENIENT`` asks for (empty: strict)."""
    return parse(os.environ.get(ENV_VAR))
