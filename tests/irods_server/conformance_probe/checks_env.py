"""Passes only in a fresh environment: ``.irodsA`` present, no debris of another module."""

from __future__ import annotations

import os
import unittest
from pathlib import Path

from irods.exception import UserDoesNotExist
from irods.test import helpers


class ChecksEnvironment(unittest.TestCase):
    def test_fresh_home_and_fresh_server(self) -> None:
        self.assertTrue((Path(os.environ["HOME"]) / ".irods" / ".irodsA").exists())
        with helpers.make_session() as ses:  # logs in through .irodsA
            with self.assertRaises(UserDoesNotExist):
                ses.users.get("leftover_user")
            path = f"{helpers.home_collection(ses)}/leftover"
            self.assertFalse(ses.data_objects.exists(path))
