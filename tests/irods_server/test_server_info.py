"""API 801 GET_LIBRARY_FEATURES (``server/api/src/rs_get_library_features.cpp``) and
API 10215 CLIENT_HINTS (``server/api/src/rsClientHints.cpp``), per presented release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devtools.irods_server.launcher import ServerProcess


def test_library_features_of_4_3_4(irods_session: Any) -> None:
    features = irods_session.library_features()
    assert features["IRODS_HAS_LIBRARY_TICKET_ADMINISTRATION"] == 202209
    assert features["IRODS_LIBRARY_FEATURE_REPLICA_TRUNCATE"] == 202403
    assert "IRODS_LIBRARY_FEATURE_DELAY_RULE_LOCKING" not in features


def test_library_features_of_5_0_2(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data", presents="5.0.2") as srv, srv.session() as s:
        assert s.library_features()["IRODS_LIBRARY_FEATURE_DELAY_RULE_LOCKING"] == 202411


def test_client_hints(irods_session: Any, irods_user: Any) -> None:
    _, user = irods_user()
    for s in (irods_session, user):  # any authenticated user may ask
        hints = s.client_hints
        assert hints["strict_acls"] == "on"
        assert hints["hash_scheme"] == "SHA256"
        assert hints["match_hash_policy"] == "compatible"
        assert hints["rules"] == [] and hints["plugins"] == []
        assert {"ls", "lsl", "ShowCollAcls"} <= set(hints["specific_queries"])
