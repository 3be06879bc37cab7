"""Damages what a next module would inherit: deletes ``~/.irods/.irodsA``, leaves a user
and a data object behind, as some of python-irodsclient's modules do."""

from __future__ import annotations

import os
import unittest
from pathlib import Path

from irods.test import helpers


class BreaksEnvironment(unittest.TestCase):
    def test_leaves_debris_and_deletes_irodsA(self) -> None:
        with helpers.make_session() as ses:
            ses.users.create("leftover_user", "rodsuser")
            helpers.make_object(ses, f"{helpers.home_collection(ses)}/leftover", content="x")
        auth = Path(os.environ["HOME"]) / ".irods" / ".irodsA"
        auth.unlink()
        self.assertFalse(auth.exists())
