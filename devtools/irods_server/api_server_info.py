"""What a client may ask about the server itself: API 801 GET_LIBRARY_FEATURES and API
10215 CLIENT_HINTS.

- 801 (``server/api/src/rs_get_library_features.cpp``): a ``STR_PI`` with a JSON object
  ``{feature macro: version}``; the list depends on the presented release
  (:mod:`.presentation`).
- 10215 (``server/api/src/rsClientHints.cpp``, ``rsIESClientHints.cpp``): a
  ``BinBytesBuf_PI`` with JSON ``{strict_acls, specific_queries, hash_scheme,
  match_hash_policy, plugins, rules}``: this server's ACL policy is STRICT, its hash
  scheme the zone's ``default_hash_scheme`` (:mod:`.hash_scheme`) with the default
  ``compatible`` policy, it has no rule engine (no rules)
  and no loadable plugins; ``specific_queries`` lists the registered aliases.
"""

from __future__ import annotations

import json

from irods.message import STR_PI, BinBytesBuf

from . import presentation
from .dispatch import Reply, Request, Session, api

GET_LIBRARY_FEATURES_AN = 801
CLIENT_HINTS_AN = 10215


@api(GET_LIBRARY_FEATURES_AN)
async def library_features(session: Session, req: Request) -> Reply:
    session.require_user()
    features = dict(presentation.current().library_features)
    return Reply(msg=STR_PI(myStr=json.dumps(features)))


@api(CLIENT_HINTS_AN)
async def client_hints(session: Session, req: Request) -> Reply:
    session.require_user()
    queries = [
        str(r[0])
        for r in session.state.catalog.db.execute(
            "SELECT alias FROM r_specific_query WHERE alias IS NOT NULL ORDER BY alias"
        )
    ]
    hints = {
        "strict_acls": "on",
        "specific_queries": queries,
        "hash_scheme": session.state.hash_scheme,
        "match_hash_policy": "compatible",
        "plugins": [],
        "rules": [],
    }
    data = json.dumps(hints, indent=4).encode()
    return Reply(msg=BinBytesBuf(buflen=len(data), buf=data))
