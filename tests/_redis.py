"""A real `redis-server` on a free loopback port, started and stopped by the tests themselves.

>>> server = RedisServer.start()      # raises if the binary is missing: check SERVER first
>>> server.url                        # "redis://127.0.0.1:PORT/0"
>>> server.stop(); server.restart()   # for outage tests
>>> cluster = RedisClusterServers.start(tmp_dir)   # 3 masters: "redis+cluster://..."
>>> RedisClusterServers.start(tmp_dir, replicas=True)   # and a replica for each
>>> watched = SentinelSet.start(tmp_dir)           # master, replica, sentinel
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

SERVER = shutil.which("redis-server")
SKIP_REASON = "redis-server is not installed (apt-get install redis-server; .ci/run does it)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process on 127.0.0.1 without persistence."""

    def __init__(
        self, port: int, *extra: str, config: Path | None = None, tls: Path | None = None
    ) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.extra = extra  # more redis-server options, e.g. cluster mode
        self.config = config  # a config file first (a sentinel needs one it can rewrite)
        self.tls = tls  # a certificate (make_certificate): `port` then speaks only TLS
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls) -> RedisServer:
        server = cls(free_port())
        server.restart()
        return server

    def client(self) -> Any:
        import redis

        tls = {"ssl": True, "ssl_ca_certs": str(self.tls)} if self.tls else {}
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=5, decode_responses=True, **tls
        )

    def restart(self) -> None:
        assert SERVER is not None, SKIP_REASON
        config = [str(self.config)] if self.config is not None else []
        port = ["--port", str(self.port)]
        if self.tls is not None:
            cert = str(self.tls)
            port = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert,
                    "--tls-key-file", cert.replace("cert.pem", "key.pem"),
                    "--tls-ca-cert-file", cert, "--tls-auth-clients", "no"]  # fmt: skip
        self.process = subprocess.Popen(
            [
                SERVER,
                *config,
                *port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.02)

    def fresh(self, db: int) -> str:
        """The URL of database `db`, emptied first: a test starts from nothing, whatever
        another test (or a database number chosen by hash) left there."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(f"SELECT {db}\r\nFLUSHDB\r\n".encode())
            reply = b""
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                reply += chunk
        assert reply == b"+OK\r\n+OK\r\n", reply
        return self.url.rsplit("/", 1)[0] + f"/{db}"

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None


def wait_until(condition: Any, what: str, timeout_s: float = 20.0) -> None:
    """Poll `condition()` (a server reaching a state, never a backoff) until true."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if condition():
                return
        except Exception:  # not up yet
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s} s for {what}")
        time.sleep(0.05)


def _cluster_port() -> int:
    # A cluster node also listens on port + 10000 (the cluster bus): both must be free.
    while True:
        port = free_port()
        if port + 10_000 > 65_535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


class RedisClusterServers:
    """A Redis Cluster of three masters, slots split evenly, on loopback; with
    `replicas=True` each master has one replica (CLUSTER REPLICATE), which the cluster
    promotes by itself when its master dies (node timeout 1 s).

    Built with CLUSTER ADDSLOTS and CLUSTER MEET, so only redis-server is needed (no
    redis-cli): cluster mode and sentinel mode are both in the one redis-server binary.
    """

    def __init__(self, nodes: list[RedisServer]) -> None:
        self.nodes = nodes
        self.replicas: list[RedisServer] = []  # replicas[i] copies nodes[i]
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in nodes)
        self.url = f"redis+cluster://{seeds}"

    @staticmethod
    def _node(directory: Path, tls: Path | None) -> RedisServer:
        port = _cluster_port()
        node = RedisServer(
            port,
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(directory / f"nodes-{port}.conf"),
            "--cluster-node-timeout", "1000",
            "--dir", str(directory),
            *(("--tls-cluster", "yes") if tls else ()),
            tls=tls,
        )  # fmt: skip
        node.restart()
        return node

    @classmethod
    def start(
        cls, directory: Path, tls: Path | None = None, replicas: bool = False
    ) -> RedisClusterServers:
        nodes = [cls._node(directory, tls) for _ in range(3)]
        cluster = cls(nodes)
        if tls is not None:
            cluster.url = cluster.url.replace("redis+", "rediss+") + f"?ssl_ca_certs={tls}"
        try:
            clients = [node.client() for node in nodes]
            bounds = [0, 5461, 10923, 16384]
            for i, client in enumerate(clients):
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
                # ADDSLOTS, not ADDSLOTSRANGE: the latter needs redis-server 7.
                client.execute_command("CLUSTER", "ADDSLOTS", *range(bounds[i], bounds[i + 1]))
            for node in nodes[1:]:
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
            for client in clients:
                wait_until(
                    lambda c=client: (
                        "cluster_state:ok" in c.execute_command("CLUSTER", "INFO")
                        and c.execute_command("CLUSTER", "INFO").count("cluster_known_nodes:3")
                    ),
                    "the cluster to agree",
                )
            if replicas:
                cluster._add_replicas(directory, tls)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _add_replicas(self, directory: Path, tls: Path | None) -> None:
        for master in self.nodes:
            replica = self._node(directory, tls)
            self.replicas.append(replica)
            client = replica.client()
            client.execute_command("CLUSTER", "MEET", "127.0.0.1", master.port)
            master_id = master.client().execute_command("CLUSTER", "MYID")
            wait_until(
                lambda c=client, m=master_id: m in str(c.execute_command("CLUSTER", "NODES")),
                "the replica to meet its master",
            )
            client.execute_command("CLUSTER", "REPLICATE", master_id)
        for replica in self.replicas:
            wait_until(
                lambda r=replica: r.client().info("replication").get("master_link_status")
                == "up",
                "the replica to sync",
            )

    def replica_of(self, master: RedisServer) -> RedisServer:
        return self.replicas[self.nodes.index(master)]

    def node_for(self, key: str) -> RedisServer:
        """The master holding `key`'s slot."""
        slot = int(self.nodes[0].client().execute_command("CLUSTER", "KEYSLOT", key))
        return self.nodes[0 if slot < 5461 else 1 if slot < 10923 else 2]

    def flush(self) -> None:
        for node in self.nodes:
            node.client().flushall()

    def stop(self) -> None:
        for node in self.nodes + self.replicas:
            node.stop()


class SentinelSet:
    """A master, its replica and one sentinel watching them as "mymaster" (quorum 1)."""

    def __init__(self, master: RedisServer, replica: RedisServer, sentinel: RedisServer) -> None:
        self.master, self.replica, self.sentinel = master, replica, sentinel
        self.dead_port = free_port()  # listed first in the URL: a sentinel that is down

    def url(self, db: int = 0, service: str = "mymaster") -> str:
        sentinels = f"127.0.0.1:{self.dead_port},127.0.0.1:{self.sentinel.port}"
        if self.sentinel.tls is not None:
            return f"rediss+sentinel://{sentinels}/{service}/{db}?ssl_ca_certs={self.sentinel.tls}"
        return f"redis+sentinel://{sentinels}/{service}/{db}"

    @classmethod
    def start(
        cls, directory: Path, down_after_ms: int = 1000, tls: Path | None = None
    ) -> SentinelSet:
        # A replica saves the copy it syncs to a file in its --dir: keep that in `directory`.
        here = ("--dir", str(directory), *(("--tls-replication", "yes") if tls else ()))
        master = RedisServer(free_port(), "--repl-diskless-sync-delay", "0", *here, tls=tls)
        master.restart()
        replica = RedisServer(
            free_port(), "--replicaof", "127.0.0.1", str(master.port), *here, tls=tls
        )
        replica.restart()
        config = directory / "sentinel.conf"
        config.write_text(
            f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds mymaster {down_after_ms}\n"
            "sentinel failover-timeout mymaster 5000\n"
        )
        sentinel = RedisServer(free_port(), "--sentinel", *here, config=config, tls=tls)
        watched = cls(master, replica, sentinel)
        try:
            sentinel.restart()
            wait_until(
                lambda: replica.client().info("replication")["master_link_status"] == "up",
                "the replica to sync",
            )
            # Listed is not enough: until the sentinel has its own link to the replica and
            # the replica's INFO, SENTINEL FAILOVER refuses it (NOGOODSLAVE; seen under load).
            wait_until(lambda: watched.replica_ready(), "the sentinel to know the replica")
        except BaseException:
            watched.stop()
            raise
        return watched

    def replica_ready(self) -> bool:
        """Whether the sentinel could promote the replica now: linked, answering, its INFO
        fresh and its own link to the master up."""
        for replica in self.sentinel.client().sentinel_slaves("mymaster"):
            if (
                not replica["is_disconnected"]
                and not replica["is_sdown"]
                and int(replica["info-refresh"]) < 5_000
                and replica["master-link-status"] == "ok"
            ):
                return True
        return False

    def failover(self) -> None:
        """Promote the replica now (SENTINEL FAILOVER), asking again while the sentinel says
        it has no replica good enough yet."""

        def asked() -> bool:
            try:
                self.sentinel.client().execute_command("SENTINEL", "FAILOVER", "mymaster")
            except Exception as error:
                if "NOGOODSLAVE" in str(error):
                    return False
                raise
            return True

        wait_until(asked, "the sentinel to take the failover", 30)

    def master_port(self) -> int:
        """The master's port as clients see it: SENTINEL MASTERS (what redis-py asks), which
        changes only when the failover ends (get-master-addr-by-name changes earlier)."""
        return int(self.sentinel.client().sentinel_masters()["mymaster"]["port"])

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.master):
            server.stop()


OPENSSL = shutil.which("openssl")


def make_certificate(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 (`cert.pem`, its key in `key.pem`)."""
    assert OPENSSL is not None
    cert = directory / "cert.pem"
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(directory / "key.pem"), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert
