"""Gateway failures, against one DC run as separate processes with two gateways (`a`, `b`):
failover to the second gateway when the first is stopped, and a change stream that lives
through its gateway's restart."""
from __future__ import annotations

import asyncio
import threading
import time
import unittest
import uuid

import aerolith

from support import ProcessCluster, until

cluster: ProcessCluster


def setUpModule() -> None:
    global cluster
    cluster = ProcessCluster()


def tearDownModule() -> None:
    cluster.stop()


class GatewayFailureTest(unittest.TestCase):
    def tearDown(self) -> None:
        if "a" not in cluster.procs:
            cluster.start_gateway("a")

    def test_failover_to_the_second_gateway(self) -> None:
        name = f"fo{uuid.uuid4().hex[:8]}"
        client = aerolith.Client([cluster.url["a"], cluster.url["b"]])
        self.addCleanup(client.close)
        c = client.collection(name)
        c.put("before", {"n": 1})
        self.assertEqual(client._runner.settings.preferred, 0, "a answered")
        cluster.stop_gateway("a")
        # Every call goes on through b, within its deadline, the first one included.
        started = time.monotonic()
        c.put("after", {"n": 2}, timeout=5)
        self.assertEqual(c.get("before").data, {"n": 1})
        self.assertEqual([d.id for d in c.query()], ["after", "before"])
        self.assertEqual(client._runner.settings.preferred, 1, "b answered")
        self.assertLess(time.monotonic() - started, 5)

        async def via_async() -> None:
            async with aerolith.AsyncClient([cluster.url["a"], cluster.url["b"]]) as ac:
                self.assertEqual((await ac.collection(name).patch("after", {"m": 1})).data, {"n": 2, "m": 1})
        asyncio.run(via_async())

    def test_change_stream_survives_a_gateway_restart(self) -> None:
        """A stream on gateway a; a writer on b changes 4 documents 12 times each while a is
        stopped and started again. The stream must deliver every change at least once, in
        order per document, resuming from its last token."""
        name = f"cs{uuid.uuid4().hex[:8]}"
        writer = aerolith.Client(cluster.url["b"])
        self.addCleanup(writer.close)
        w = writer.collection(name)
        w.create()
        reader = aerolith.Client(cluster.url["a"])
        self.addCleanup(reader.close)
        stream = reader.collection(name).changes(idle_timeout=5)
        self.addCleanup(stream.close)
        seen: dict[str, list[int]] = {}
        done = threading.Event()
        failure: list[BaseException] = []

        def consume() -> None:
            try:
                while not done.is_set():
                    change = stream.next(0.2)
                    if change is not None:
                        assert change.data is not None
                        seen.setdefault(change.id, []).append(change.data["n"])
            except BaseException as e:  # noqa: BLE001 - reported by the test
                failure.append(e)
        until("the subscription", lambda: stream.next(0.2) is None and stream.token)
        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        ids = [f"d{i}" for i in range(4)]
        rounds = 12

        def write(n: int) -> None:
            for i in ids:
                w.put(i, {"n": n})
        for n in range(1, 5):
            write(n)
        until("the first changes arrive", lambda: all(len(seen.get(i, [])) >= 4 for i in ids))
        cluster.stop_gateway("a")
        for n in range(5, 9):
            write(n)
        cluster.start_gateway("a")
        for n in range(9, rounds + 1):
            write(n)
        until("every change delivered", lambda: failure or all(
            seen.get(i) and seen[i][-1] == rounds for i in ids), within=60)
        done.set()
        consumer.join(timeout=10)
        self.assertFalse(failure, failure)
        for i in ids:
            got = seen[i]
            self.assertEqual(sorted(set(got)), list(range(1, rounds + 1)), f"{i}: every change: {got}")
            self.assertEqual(got, sorted(got), f"{i}: in order: {got}")
        self.assertGreaterEqual(stream.reconnects, 1, "the stream reconnected")


if __name__ == "__main__":
    unittest.main()
