"""Passes only when run as the account the runner was told to use, with a /tmp of its own:
it must not see what the test left in the machine's /tmp, and what it leaves there must
not reach the machine's /tmp; it may write python-irodsclient's ``test-data`` as pool_test
does, and that must not reach the installed package (see test_conformance.py)."""

from __future__ import annotations

import os
import pwd
import unittest
from pathlib import Path

import irods.test
from irods.test import helpers


class ChecksAccount(unittest.TestCase):
    def test_unprivileged_with_a_tmp_of_its_own(self) -> None:
        account = pwd.getpwuid(os.geteuid()).pw_name
        self.assertEqual(account, os.environ["CONFORMANCE_PROBE_ACCOUNT"])
        self.assertNotIn(os.environ["CONFORMANCE_PROBE_FOREIGN"], os.listdir("/tmp"))
        (Path("/tmp") / os.environ["CONFORMANCE_PROBE_LEFTOVER"]).mkdir()
        test_data = Path(irods.test.__file__).parent / "test-data"
        (test_data / os.environ["CONFORMANCE_PROBE_LEFTOVER"]).write_text("{}")
        with helpers.make_session() as ses:  # .irodsA obfuscated for this account's uid
            self.assertTrue(ses.collections.exists(helpers.home_collection(ses)))
