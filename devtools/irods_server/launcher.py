"""Start and stop the test server as a subprocess; used by the pytest fixtures, the
conformance runner and the benchmarks.

    with ServerProcess(data_dir) as srv:
        with srv.session() as s:          # an iRODSSession as rods
            ...
        srv.restart()                     # same data dir, same port
"""

from __future__ import annotations

import datetime
import json
import os
import pwd
import stat
import subprocess
import sys
import sysconfig
from collections import Counter
from pathlib import Path
from typing import Any

from devtools.processes import first_line, stop

from .state import ADMIN_PASSWORD, ADMIN_USER, ZONE

READY = "irods-test-server ready on "
REPO_ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """One ``python -m devtools.irods_server`` process on a free (or given) port."""

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        log_level: str = "WARNING",
        presents: str | None = None,
        cost: str | None = None,
        lenient: str | None = None,
        run_as: str | None = None,
        hash_scheme: str | None = None,
        request_log: bool = False,
        hash_policy: str | None = None,
    ) -> None:
        """``presents``: the iRODS release to present as ("4.3.4", "5.0.2"; None: the
        server's default). ``cost``: per-operation delay ("real-zone" or
        "AGENT_MS,CATALOG_MS"; None: whatever ``IRODS_TEST_SERVER_COST`` says, else off).
        ``lenient``: strict behaviours to relax ("api-allowlist,...", ``leniency.py``; None:
        whatever ``IRODS_TEST_SERVER_LENIENT`` says, else none). ``run_as``: an unprivileged
        account to run the server as when this process is root (the data directory is
        handed to it; its parents must let it through), as a real server runs as ``irods``;
        None: as this process, with ``--allow-root`` when that is root (the server refuses
        root otherwise). ``hash_scheme``: the zone's ``default_hash_scheme`` ("SHA256",
        "MD5"; None: whatever ``IRODS_TEST_SERVER_HASH_SCHEME`` says, else SHA256).
        ``hash_policy``: its ``match_hash_policy`` ("compatible", "strict"; None: whatever
        ``IRODS_TEST_SERVER_HASH_POLICY`` says, else compatible).
        ``request_log``: log every request's API number (:meth:`api_counts`)."""
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.zone = ZONE
        self.admin_user = ADMIN_USER
        self.admin_password = ADMIN_PASSWORD
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.log_level = log_level
        self.presents = presents
        self.cost = cost
        self.lenient = lenient
        self.run_as = run_as
        self.hash_scheme = hash_scheme
        self.hash_policy = hash_policy
        self.request_log = (
            self.data_dir.parent / f"{self.data_dir.name}.requests" if request_log else None
        )
        self.proc: subprocess.Popen[str] | None = None
        self.stderr_path = self.data_dir.parent / f"{self.data_dir.name}.server.log"

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> ServerProcess:
        """Start the server and wait for its ready line."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        account: dict[str, Any] = {}
        python = [sys.executable]
        if os.geteuid() == 0 and self.run_as is not None:
            account = self._hand_over(self.run_as)
            python = interpreter_for_others(account)
        cmd = [*python, "-m", "devtools.irods_server", "--data", str(self.data_dir)]
        cmd += ["--host", self.host, "--port", str(self.port), "--log-level", self.log_level]
        if self.tls_cert is not None and self.tls_key is not None:
            cmd += ["--tls-cert", str(self.tls_cert), "--tls-key", str(self.tls_key)]
        if self.presents is not None:
            cmd += ["--presents", self.presents]
        if self.cost is not None:
            cmd += ["--cost", self.cost]
        if self.lenient is not None:
            cmd += ["--lenient", self.lenient]
        if self.hash_scheme is not None:
            cmd += ["--hash-scheme", self.hash_scheme]
        if self.hash_policy is not None:
            cmd += ["--hash-policy", self.hash_policy]
        if self.request_log is not None:
            cmd += ["--request-log", str(self.request_log)]
        if os.geteuid() == 0 and self.run_as is None:
            cmd.append("--allow-root")
        with open(self.stderr_path, "a") as err:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=err, text=True, **account
            )
        line = self._ready_line(timeout)
        hostport = line[len(READY) :].split()[0]
        self.port = int(hostport.rsplit(":", 1)[1])
        return self

    def _hand_over(self, name: str) -> dict[str, Any]:
        """Give the data directory to account ``name``; Popen's arguments to run as it."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise RuntimeError(f"no such account to run the iRODS test server as: {name}") from None
        if entry.pw_uid == 0:
            raise RuntimeError(f"run_as={name!r} is root; name an unprivileged account")
        for top, dirs, files in os.walk(self.data_dir):
            for item in [top, *(os.path.join(top, n) for n in dirs + files)]:
                os.lchown(item, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _ready_line(self, timeout: float) -> str:
        assert self.proc is not None
        line = first_line(self.proc, timeout)
        if not line.startswith(READY):
            self.stop()
            log = self.stderr_path.read_text() if self.stderr_path.exists() else ""
            raise RuntimeError(f"iRODS test server did not start: {line!r}\n{log[-4000:]}")
        return line.strip()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
        self.proc = None

    def restart(self) -> ServerProcess:
        """Stop and start again on the same data directory and port."""
        self.stop()
        return self.start()

    def __enter__(self) -> ServerProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api_counts(self) -> Counter[int]:
        """How many requests of each API number the server has answered (or is answering)
        since it started with ``request_log=True``."""
        if self.request_log is None:
            raise RuntimeError("start the server with request_log=True to count requests")
        try:
            text = self.request_log.read_text()
        except FileNotFoundError:
            return Counter()
        return Counter(int(line) for line in text.split())

    def unclean_disconnects(self) -> int:
        """How many logged-in connections ended without ``RODS_DISCONNECT`` (a client that
        closed its socket without logging out), from the server's log."""
        from .server import UNCLEAN_END  # the server's modules, only when asked

        try:
            return self.stderr_path.read_text(errors="replace").count(UNCLEAN_END)
        except FileNotFoundError:
            return 0

    # -- clients --------------------------------------------------------------------------------

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def session_options(self, user: str, password: str | None) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": user,
            "zone": self.zone,
        }
        if password is not None:
            opts["password"] = password
        return opts

    def tls_options(self) -> dict[str, Any]:
        """iRODSSession keyword options for a TLS connection to this server."""
        return {
            "irods_client_server_negotiation": "request_server_negotiation",
            "irods_client_server_policy": "CS_NEG_REQUIRE",
            "irods_ssl_ca_certificate_file": str(self.tls_cert),
            "irods_ssl_verify_server": "cert",
            "irods_encryption_algorithm": "AES-256-CBC",
            "irods_encryption_key_size": 32,
            "irods_encryption_num_hash_rounds": 16,
            "irods_encryption_salt_size": 8,
        }

    def session(self, user: str = ADMIN_USER, password: str | None = None, **options: Any) -> Any:
        """An ``iRODSSession`` (close it, or use ``with``). ``rods`` gets its password."""
        from irods.session import iRODSSession

        if password is None and user == ADMIN_USER:
            password = self.admin_password
        return iRODSSession(**self.session_options(user, password), **options)

    def write_env(
        self,
        home: Path,
        user: str = ADMIN_USER,
        password: str | None = None,
        host: str | None = None,
        client_uid: int | None = None,
        **extra: Any,
    ) -> Path:
        """Write ``home/.irods/irods_environment.json`` and an obfuscated ``.irodsA``;
        returns the environment file path. ``host`` overrides the address written
        (e.g. ``localhost``, which python-irodsclient's tests treat as a local server).
        ``client_uid``: the account the client will run as, when not this process's (the
        obfuscation of ``.irodsA`` mixes in the reader's uid, as iRODS's ``obf`` does)."""
        from irods.password_obfuscation import encode

        if password is None and user == ADMIN_USER:
            password = self.admin_password
        irods_dir = Path(home) / ".irods"
        irods_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "irods_host": host or self.host,
            "irods_port": self.port,
            "irods_user_name": user,
            "irods_zone_name": self.zone,
            "irods_default_resource": "demoResc",
            "irods_home": f"/{self.zone}/home/{user}",
            **extra,
        }
        env_file = irods_dir / "irods_environment.json"
        env_file.write_text(json.dumps(env, indent=2))
        auth = irods_dir / ".irodsA"
        auth.write_text(encode(password or "", uid=client_uid))
        os.chmod(auth, 0o600)
        return env_file


def _reachable_by_others(path: str) -> bool:
    """Whether an account that is neither owner nor group can reach and run ``path``."""
    real = Path(os.path.realpath(path))
    try:
        modes = [os.stat(p).st_mode for p in [*real.parents, real]]
    except OSError:
        return False
    return all(m & stat.S_IXOTH for m in modes)


def interpreter_for_others(account: dict[str, Any]) -> list[str]:
    """A command that runs this Python, with these packages, for an unprivileged account.

    This interpreter may live where others cannot go (pyenv under ``/root``); then the
    system's interpreter of the same version runs with this environment's site-packages
    on ``PYTHONPATH`` (set in ``account["env"]``)."""
    if _reachable_by_others(sys.executable):
        return [sys.executable]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    paths = sysconfig.get_paths()
    site = [paths["purelib"], paths["platlib"]]
    for candidate in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if _reachable_by_others(candidate) and all(_reachable_by_others(d) for d in site):
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(REPO_ROOT), *site]))
            account["env"] = env
            return [candidate, "-s"]
    raise RuntimeError(
        f"no Python {version} that an unprivileged account can run (this one is"
        f" {sys.executable}); run the server as root (run_as=None)"
    )


def make_self_signed_cert(directory: Path, host: str = "localhost") -> tuple[Path, Path]:
    """A throwaway self-signed certificate for ``host``/127.0.0.1: ``(cert.pem, key.pem)``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path
