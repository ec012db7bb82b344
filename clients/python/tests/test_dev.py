"""Every operation over the wire, against one `aerolith dev --dcs 2`: blocking and asyncio."""
from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import unittest
import uuid

import aerolith
from aerolith import BulkOp

from support import DevCluster, FakeGateway, admin, until

dev: DevCluster


def setUpModule() -> None:
    global dev
    dev = DevCluster(dcs=2)


def tearDownModule() -> None:
    dev.stop()


def fresh(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@dataclasses.dataclass
class User:
    name: str
    age: int
    tags: list[str] = dataclasses.field(default_factory=list)


class DevTest(unittest.TestCase):
    def setUp(self) -> None:
        self.client = aerolith.Client(dev.http[0])
        self.addCleanup(self.client.close)

    def test_collections(self) -> None:
        name = fresh("coll")
        c = self.client.collection(name)
        info = c.create("siblings")
        self.assertEqual((info.name, info.conflict_strategy, info.created), (name, "siblings", True))
        self.assertFalse(c.create().created, "a second create changes nothing")
        with self.assertRaises(aerolith.InvalidArgument):
            c.create("lww")
        self.assertEqual(c.info().conflict_strategy, "siblings")
        self.assertIn(name, [x.name for x in self.client.list_collections()])
        c.drop()
        with self.assertRaises(aerolith.NotFound) as e:
            c.info()
        self.assertEqual((e.exception.code, e.exception.status), ("not_found", 404))
        self.assertIn(name, e.exception.message)
        self.assertEqual(self.client.cluster()["dc"], "dc1")
        both = aerolith.Client.from_endpoints_file(dev.endpoints_file)
        self.addCleanup(both.close)
        self.assertEqual(both.endpoints, dev.http)

    def test_documents_and_preconditions(self) -> None:
        c = self.client.collection(fresh("docs"))
        first = c.put("ada", {"name": "Ada", "n": 1})
        self.assertTrue(first.created)
        self.assertEqual((first.id, first.data, first.origin), ("ada", {"name": "Ada", "n": 1}, "dc1"))
        with self.assertRaises(aerolith.AlreadyExists) as e:
            c.put("ada", {"n": 0}, if_none_match="*")
        self.assertEqual((e.exception.code, e.exception.status), ("already_exists", 412))
        second = c.put("ada", {"name": "Ada", "n": 2}, if_match=first.version)
        self.assertFalse(second.created)
        with self.assertRaises(aerolith.PreconditionFailed):
            c.put("ada", {"n": 3}, if_match=first.version)
        got = c.get("ada")
        self.assertEqual((got.version, got.data), (second.version, {"name": "Ada", "n": 2}))
        self.assertIsNone(c.get_if_changed("ada", second.version))
        self.assertEqual(c.get_if_changed("ada", first.version).version, second.version)  # type: ignore[union-attr]
        merged = c.patch("ada", {"n": 3, "city": "London"}, if_match=second.version)
        self.assertEqual(merged.data, {"name": "Ada", "n": 3, "city": "London"})
        patched = c.patch("ada", [{"op": "remove", "path": "/city"}, {"op": "add", "path": "/tags", "value": ["x"]}])
        self.assertEqual(patched.data, {"name": "Ada", "n": 3, "tags": ["x"]})
        with self.assertRaises(aerolith.PreconditionFailed):
            c.patch("ada", [{"op": "test", "path": "/n", "value": 99}])
        with self.assertRaises(aerolith.PreconditionFailed):
            c.delete("ada", if_match=first.version)
        c.delete("ada", if_match=patched.version)
        with self.assertRaises(aerolith.NotFound):
            c.get("ada")
        with self.assertRaises(aerolith.NotFound):
            c.delete("ada")
        made = c.insert({"generated": True})
        self.assertTrue(made.created and len(made.id) > 10)
        self.assertEqual(c.get(made.id).data, {"generated": True})

    def test_typed_collection(self) -> None:
        users = self.client.collection(fresh("users"), User)
        users.put("u1", User("Ada", 36, ["math"]))
        got = users.get("u1")
        self.assertIsInstance(got.data, User)
        self.assertEqual(got.data, User("Ada", 36, ["math"]))
        self.assertEqual([d.data.name for d in users.query({"age": {"$gte": 30}})], ["Ada"])

    def test_queries_with_cursors(self) -> None:
        c = self.client.collection(fresh("q"))
        results = c.bulk(BulkOp.put(f"d{i:02}", {"n": i, "even": i % 2 == 0}) for i in range(25))
        self.assertTrue(all(r.ok and r.status == 201 for r in results), results)
        it = c.query({"even": True}, sort=["-n"], page_size=4, projection=["n"])
        docs = list(it)
        self.assertEqual([d.data["n"] for d in docs], list(range(24, -1, -2)))
        self.assertEqual(docs[0].data, {"n": 24}, "projection")
        self.assertTrue(it.done)
        # A cursor resumes where a page left off.
        first = c.query({"even": True}, sort=["-n"], page_size=4)
        page = next(first.pages())
        self.assertEqual(len(page.documents), 4)
        rest = list(c.query({"even": True}, sort=["-n"], page_size=4, cursor=first.cursor))
        self.assertEqual([d.data["n"] for d in page.documents + rest], list(range(24, -1, -2)))
        self.assertEqual([d.id for d in c.list(page_size=10)], [f"d{i:02}" for i in range(25)])
        self.assertEqual(c.count({"n": {"$lt": 10}}), 10)
        plan = next(c.query({"n": 1}, explain=True).pages()).plan
        self.assertTrue(plan and all("examined" in step for step in plan), plan)
        with self.assertRaises(aerolith.InvalidArgument):
            list(c.query({"n": {"$bogus": 1}}))

    def test_bulk_and_indexes(self) -> None:
        c = self.client.collection(fresh("bulk"))
        v = c.put("a", {"n": 1}).version
        results = c.bulk([BulkOp.put("b", {"n": 2}), BulkOp.patch("a", {"m": 1}, if_match=v),
                          BulkOp.delete("a", if_match=v), BulkOp.put(None, {"n": 3})])
        self.assertEqual([r.status for r in results], [201, 200, 412, 201])
        self.assertIsInstance(results[2].error, aerolith.PreconditionFailed)
        self.assertTrue(results[3].id and results[3].version)
        self.assertEqual(c.get("a").data, {"n": 1, "m": 1})
        index = c.create_index("by_n", ["-n"])
        self.assertEqual(index.name, "by_n")
        self.assertEqual([i.name for i in c.indexes()], ["by_n"])
        c.drop_index("by_n")
        self.assertEqual(c.indexes(), [])

    def test_errors(self) -> None:
        c = self.client.collection(fresh("err"))
        with self.assertRaises(aerolith.PayloadTooLarge) as e:
            c.put("big", {"x": "y" * (1 << 20)})
        self.assertEqual((e.exception.code, e.exception.status), ("payload_too_large", 413))
        with self.assertRaises(aerolith.InvalidArgument):
            c.put("bad id!", {})
        with self.assertRaises(aerolith.InvalidArgument):
            list(c.list(page_size=5000))

    def test_change_stream_and_polled_feed(self) -> None:
        c = self.client.collection(fresh("feed"))
        c.create()
        start = c.poll_changes().next
        with c.changes() as stream:
            until("the subscription", lambda: stream.next(0.2) is None and stream.token)
            c.put("a", {"n": 1})
            c.patch("a", {"n": 2})
            c.delete("a")
            seen = [stream.next(10) for _ in range(3)]
        self.assertEqual([(x.op, x.id, x.data) for x in seen if x],
                         [("put", "a", {"n": 1}), ("put", "a", {"n": 2}), ("delete", "a", None)])
        polled = c.poll_changes(start)
        self.assertEqual([ch.op for ch in polled.changes], ["put", "put", "delete"])
        # A stream started from a token resumes after it.
        with c.changes(since=seen[0].token) as resumed:  # type: ignore[union-attr]
            later = [resumed.next(10) for _ in range(2)]
        self.assertEqual([x.version for x in later if x], [x.version for x in seen[1:] if x])

    def test_change_stream_ends_when_its_collection_is_deleted(self) -> None:
        """Also a stream that has seen no change yet (the server once kept those open)."""
        c = self.client.collection(fresh("gone"))
        c.put("a", {"n": 1})
        with c.changes() as stream:
            until("the subscription", lambda: stream.next(0.2) is None and stream.token)
            c.drop()
            with self.assertRaises(aerolith.NotFound):
                change = stream.next(20)
                self.fail(f"the stream went on: {change}")

    def test_session_reads_its_writes_through_another_dcs_gateway(self) -> None:
        name = fresh("ryw")
        self.client.collection(name).create()
        other = aerolith.Client(dev.http[1])
        self.addCleanup(other.close)
        until("the collection in dc2", lambda: other.collection(name).info())
        admin(dev.admin[0], "POST", "/admin/peers/dc2/pause")
        try:
            session = self.client.session()
            session.collection(name).put("k", {"v": 1})
            token = session.session_token
            self.assertTrue(token)
            # Without the session, dc2 has not seen the write (shipping is paused) ...
            with self.assertRaises(aerolith.NotFound):
                other.collection(name).get("k")
            # ... with it, dc2 waits for it, here until the 1 s deadline the client sends.
            carried = other.session(token)
            started = time.monotonic()
            with self.assertRaises(aerolith.DeadlineExceeded):
                carried.collection(name).get("k", timeout=1)
            self.assertLess(time.monotonic() - started, 5)
            # Write concern all: not confirmed while dc2 cannot apply it; the write stands.
            with self.assertRaises(aerolith.DeadlineExceeded):
                self.client.collection(name).put("w", {"v": 1}, write_concern="all", timeout=1)
        finally:
            admin(dev.admin[0], "POST", "/admin/peers/dc2/resume")
        self.assertEqual(carried.collection(name).get("k").data, {"v": 1})
        self.client.collection(name).put("w2", {"v": 2}, write_concern="all")
        self.assertEqual(other.collection(name).get("w2").data, {"v": 2}, "applied in dc2 once acknowledged")

    def test_retried_write_is_applied_once(self) -> None:
        """A proxy in front of the gateway drops the answer to the first attempt of each write
        (the write was applied); the client retries with the same key, and the server
        answers the first outcome without applying it again."""
        dropped: list[str] = []

        def drop_first_answer(f: FakeGateway, h) -> None:  # type: ignore[no-untyped-def]
            answer = f.forward(h, dev.http[0])
            key = h.headers.get("Idempotency-Key")
            if key and key not in dropped:
                dropped.append(key)
                h.close_connection = True
                return
            f.relay(h, answer)
        proxy = FakeGateway(drop_first_answer)
        self.addCleanup(proxy.close)
        name = fresh("once")
        via = aerolith.Client(proxy.url)
        self.addCleanup(via.close)
        c = via.collection(name)
        c.put("log", {"entries": []})
        doc = c.patch("log", [{"op": "add", "path": "/entries/-", "value": "x"}])
        self.assertEqual(doc.data, {"entries": ["x"]})
        made = c.insert({"one": True})
        self.assertEqual(len(dropped), 3, "every write's first answer was dropped")
        keys = [r[2].get("idempotency-key") for r in proxy.requests]
        self.assertEqual(keys, [k for k in dropped for _ in range(2)], "each retry reused its key")
        direct = self.client.collection(name)
        self.assertEqual(direct.get("log").data, {"entries": ["x"]}, "the patch applied once")
        self.assertEqual([d.id for d in direct.query({"one": True})], [made.id], "one document created")

    def test_async_client(self) -> None:
        asyncio.run(self.async_scenario())

    async def async_scenario(self) -> None:
        name = fresh("aio")
        async with aerolith.AsyncClient(dev.http) as client:
            c = client.collection(name)
            self.assertTrue((await c.create()).created)
            stream = c.changes()
            self.assertIsNone(await stream.next(0.5))
            first = await c.put("a", {"n": 1})
            with self.assertRaises(aerolith.PreconditionFailed):
                await c.put("a", {"n": 2}, if_match="dc9@1:1")
            await c.patch("a", {"m": 1}, if_match=first.version)
            self.assertEqual((await c.get("a")).data, {"n": 1, "m": 1})
            results = await c.bulk([BulkOp.put(f"b{i}", {"n": i}) for i in range(9)])
            self.assertTrue(all(r.ok for r in results))
            it = c.query({"n": {"$gte": 0}}, sort=["n", "_id"], page_size=2)
            self.assertEqual([d.id async for d in it], ["b0", "a", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8"])
            self.assertEqual(len(await c.list(page_size=3).all()), 10)
            self.assertEqual(await c.count(), 10)
            await c.delete("a")
            with self.assertRaises(aerolith.NotFound) as e:
                await c.get("a")
            self.assertEqual(e.exception.status, 404)
            changes = [await stream.next(10) for _ in range(2)]
            self.assertEqual([(x.op, x.id, x.data) for x in changes if x],
                             [("put", "a", {"n": 1}), ("put", "a", {"n": 1, "m": 1})])
            await stream.close()
            session = client.session()
            await session.collection(name).put("s", {"v": 1}, write_concern="all")
            self.assertTrue(session.session_token)
            self.assertEqual((await session.collection(name).get("s")).data, {"v": 1})
            made = await c.insert({"made": 1})
            self.assertTrue(made.created)
            self.assertIsNone(await c.get_if_changed(made.id, made.version))
            polled = await c.poll_changes(limit=1000)
            self.assertIn(made.id, [ch.id for ch in polled.changes])
            self.assertEqual((await c.info()).name, name)
            self.assertIn(name, [x.name for x in await client.list_collections()])
            self.assertEqual((await client.cluster())["dc"], "dc1")
            self.assertEqual((await c.create_index("by_n", ["n"])).name, "by_n")
            self.assertEqual([i.name for i in await c.indexes()], ["by_n"])
            await c.drop_index("by_n")
            await c.drop()
            with self.assertRaises(aerolith.NotFound):
                await c.info()


class ConcurrentSessionTest(unittest.TestCase):
    def test_concurrent_writes_of_one_session_keep_every_mark(self) -> None:
        """Writes from threads of one session: its token must keep every write's mark (each
        answer carries only the token its request sent plus its own write). With shipping
        to dc2 paused, a dc2 read of each key with the token waits (deadline_exceeded); one
        whose mark was lost would answer not_found at once."""
        name = fresh("conc")
        client = aerolith.Client(dev.http[0])
        self.addCleanup(client.close)
        client.collection(name).create()
        other = aerolith.Client(dev.http[1])
        self.addCleanup(other.close)
        until("the collection in dc2", lambda: other.collection(name).info())
        session = client.session()
        admin(dev.admin[0], "POST", "/admin/peers/dc2/pause")
        try:
            threads = [threading.Thread(target=lambda i=i: session.collection(name).put(f"k{i}", {"i": i}))
                       for i in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            carried = other.session(session.session_token)
            for i in range(6):
                with self.assertRaises(aerolith.DeadlineExceeded, msg=f"k{i}"):
                    carried.collection(name).get(f"k{i}", timeout=0.5)
        finally:
            admin(dev.admin[0], "POST", "/admin/peers/dc2/resume")
        for i in range(6):
            self.assertEqual(carried.collection(name).get(f"k{i}").data, {"i": i})


if __name__ == "__main__":
    unittest.main()
