"""Skipped below iRODS 5, passes from 5 on, as python-irodsclient's access-time test:
shows which release the server presented (see test_conformance.py)."""

from __future__ import annotations

import unittest

from irods.test import helpers


class NeedsFive(unittest.TestCase):
    def test_access_time_from_five_on(self) -> None:
        with helpers.make_session() as ses:
            if ses.server_version < (5,):
                self.skipTest("iRODS servers < 5.0.0 do not provide an access_time")
            obj = helpers.make_object(ses, f"{helpers.home_collection(ses)}/at", content="x")
            self.assertEqual(obj.access_time, obj.modify_time)
