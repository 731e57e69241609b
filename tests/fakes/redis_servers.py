"""Private redis-server processes on free loopback ports: TLS and a password, a Sentinel,
a three-node Redis Cluster, a Redis 8 with or without the query engine. Each test gets
servers of its own, stopped afterwards."""

from __future__ import annotations

import datetime
import ipaddress
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fakes.gateway import free_port


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


# Unpacked by scripts/ensure-redis-vector.sh (make test).
REDIS_VECTOR = Path(__file__).resolve().parents[2] / ".cache" / "redis-vector"


def _redis8() -> Path:
    server = REDIS_VECTOR / "redis-server"
    if not server.exists():
        reason = "no Redis 8 test server: run scripts/ensure-redis-vector.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return server


def _cli(port: int, *args: str, tls: Path | None = None, password: str | None = None) -> str:
    command = [_binary("redis-cli"), "-h", "127.0.0.1", "-p", str(port)]
    if tls is not None:
        command += ["--tls", "--cacert", str(tls / "ca.pem")]
    if password is not None:
        command += ["--no-auth-warning", "-a", password]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=10)
    return done.stdout.strip()


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free and below 65536 too;
    an ephemeral port from the kernel is often above 55535, where Redis cannot start."""
    for _ in range(200):
        port = random.randint(20000, 50000)
        if _free(port) and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis cluster node")


def _wait(check: object, what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up")
        time.sleep(0.05)


class Servers:
    """Starts redis-server processes and stops them all at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, name: str = "redis", binary: str | None = None) -> None:
        log = (self.folder / f"{name}.log").open("ab")
        base = [
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
        ]
        server = binary or _binary("redis-server")
        proc = subprocess.Popen([server, *args, *base], stdout=log, stderr=log)
        self.procs.append(proc)

    def standalone(
        self, port: int, *args: str, binary: str | None = None
    ) -> subprocess.Popen[bytes]:
        """A Redis on ``port`` that answers by the time this returns."""
        self.start("--port", str(port), *args, name=f"redis-{port}", binary=binary)
        _wait(lambda: _cli(port, "ping") == "PONG", f"the Redis on {port}")
        return self.procs[-1]

    def redis8(self, search: bool) -> int:
        """A Redis 8 (vector sets built in), with the query engine (``FT.*``) when ``search``."""
        server = _redis8()
        port = free_port()
        extra = ["--enable-debug-command", "local"]  # DEBUG SET-ACTIVE-EXPIRE in tests
        if search:
            extra += ["--loadmodule", str(REDIS_VECTOR / "redisearch.so")]
        self.standalone(port, *extra, binary=str(server))
        return port

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait(10)

    def tls_files(self) -> Path:
        """A CA and a server certificate for 127.0.0.1 signed by it (ca.pem, server.pem/.key)."""
        now = datetime.datetime.now(datetime.UTC)

        def cert(
            subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None = None
        ) -> x509.CertificateBuilder:
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
            return (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(issuer or name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(hours=1))
            )

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            cert("sluicegate test CA", ca_key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        server = (
            cert("127.0.0.1", key, ca.subject)
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        (self.folder / "ca.pem").write_bytes(ca.public_bytes(pem))
        (self.folder / "server.pem").write_bytes(server.public_bytes(pem))
        (self.folder / "server.key").write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        return self.folder

    def tls(self, password: str) -> int:
        """A Redis that takes only TLS connections, and only with ``password``."""
        files = self.tls_files()
        port = free_port()
        self.start(
            "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(files / "server.pem"),
            "--tls-key-file", str(files / "server.key"),
            "--tls-ca-cert-file", str(files / "ca.pem"),
            "--tls-auth-clients", "no",
            "--requirepass", password,
            name="tls",
        )  # fmt: skip
        _wait(lambda: _cli(port, "ping", tls=files, password=password) == "PONG", "TLS Redis")
        return port

    def sentinel(self, password: str, service: str) -> tuple[int, int]:
        """A master with ``password`` and one Sentinel watching it: (master port, sentinel port)."""
        master = free_port()
        self.start("--port", str(master), "--requirepass", password, name="master")
        _wait(lambda: _cli(master, "ping", password=password) == "PONG", "the master")
        port = free_port()
        conf = self.folder / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\n"
            f"sentinel monitor {service} 127.0.0.1 {master} 1\n"
            f"sentinel auth-pass {service} {password}\n"
        )
        proc_args = [str(conf), "--sentinel"]
        log = (self.folder / "sentinel.log").open("ab")
        proc = subprocess.Popen([_binary("redis-server"), *proc_args], stdout=log, stderr=log)
        self.procs.append(proc)
        _wait(
            lambda: str(master) in _cli(port, "sentinel", "get-master-addr-by-name", service),
            "the Sentinel",
        )
        return master, port

    def cluster(self, size: int = 3) -> list[int]:
        """``size`` masters sharing the 16384 slots, no replicas."""
        ports = [_cluster_port() for _ in range(size)]
        for port in ports:
            self.start(
                "--port", str(port), "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "2000",
                name=f"node-{port}",
            )  # fmt: skip
        for port in ports:
            _wait(lambda p=port: _cli(p, "ping") == "PONG", f"cluster node {port}")
        done = subprocess.run(
            [_binary("redis-cli"), "--cluster", "create"]
            + [f"127.0.0.1:{p}" for p in ports]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        for port in ports:
            _wait(  # gossip settles slowly on a busy machine
                lambda p=port: "cluster_state:ok" in _cli(p, "cluster", "info"),
                f"cluster node {port}",
                seconds=30,
            )
        return ports


@contextmanager
def redis_servers(folder: Path) -> Iterator[Servers]:
    servers = Servers(folder)
    try:
        yield servers
    finally:
        servers.stop()
