"""Tests that need no cluster: the retry policy against stand-in gateways, the error
hierarchy, session-token merging and WebSocket framing."""
from __future__ import annotations

import asyncio
import base64
import time
import unittest

import aerolith
from aerolith import _ws
from aerolith._core import _bytes_field, _marks, _varint_field

from support import FakeGateway, FakeWsGateway, free_port

DOC = {"collection": "c", "id": "d", "version": "dc1@1:1", "updated_at": "2026-01-01T00:00:00.000Z",
       "origin": "dc1", "data": {"n": 1}}


def first_unknown(f: FakeGateway, h) -> None:  # type: ignore[no-untyped-def]
    """A gateway whose first answer says a write's outcome is unknown."""
    if len(f.requests) == 1:
        f.answer(h, 503, {"error": {"code": "unavailable", "message": "the outcome of the write is unknown"}})
    else:
        f.answer(h, 200, DOC)


def token(*marks: tuple[int, str, int, int]) -> str:
    body = _varint_field(1, 1) + b"".join(
        _bytes_field(2, _varint_field(1, s) + _bytes_field(2, dc.encode()) + _varint_field(3, e) + _varint_field(4, q))
        for s, dc, e, q in marks)
    return "s1." + base64.urlsafe_b64encode(body).rstrip(b"=").decode()


class ErrorsTest(unittest.TestCase):
    def test_one_class_per_code(self) -> None:
        codes = {"invalid_argument": 400, "unauthenticated": 401, "permission_denied": 403,
                 "not_found": 404, "already_exists": 412, "precondition_failed": 412,
                 "payload_too_large": 413, "rate_limited": 429, "resume_token_expired": 410,
                 "unavailable": 503, "deadline_exceeded": 504, "internal": 500}
        self.assertEqual(set(aerolith.errors.ERRORS), set(codes))
        for code, status in codes.items():
            e = aerolith.errors.from_error({"code": code, "message": "m"}, status)
            self.assertIsInstance(e, aerolith.AerolithError)
            self.assertEqual((e.code, e.status, e.message), (code, status, "m"))
            self.assertIs(type(e), aerolith.errors.ERRORS[code])
        # An unknown code keeps its code on the base class.
        e = aerolith.errors.from_error({"code": "brand_new", "message": "m"}, 418)
        self.assertEqual((type(e), e.code, e.status), (aerolith.AerolithError, "brand_new", 418))


class SessionTokenTest(unittest.TestCase):
    def test_merge_keeps_the_later_point_per_shard_and_dc(self) -> None:
        a = token((1, "dc1", 5, 10), (2, "dc1", 5, 3))
        b = token((1, "dc1", 5, 7), (1, "dc2", 9, 1))
        merged = _marks(aerolith.merge_session_tokens(a, b))
        self.assertEqual(merged, {(1, "dc1"): (5, 10), (2, "dc1"): (5, 3), (1, "dc2"): (9, 1)})
        # A newer epoch wins over a higher sequence.
        self.assertEqual(_marks(aerolith.merge_session_tokens(token((1, "dc1", 5, 99)), token((1, "dc1", 6, 1)))),
                         {(1, "dc1"): (6, 1)})

    def test_unknown_format_takes_the_newer(self) -> None:
        self.assertEqual(aerolith.merge_session_tokens(token((1, "dc1", 1, 1)), "s2.xyz"), "s2.xyz")


class RetryTest(unittest.TestCase):
    """The client's failover and retry rules, against stand-in gateways."""

    def setUp(self) -> None:
        self.fakes: list[FakeGateway] = []

    def tearDown(self) -> None:
        for f in self.fakes:
            f.close()

    def client(self, endpoints, **kw) -> aerolith.Client:  # type: ignore[no-untyped-def]
        c = aerolith.Client(endpoints, **kw)
        self.addCleanup(c.close)
        return c

    def fake(self, handle) -> FakeGateway:  # type: ignore[no-untyped-def]
        f = FakeGateway(handle)
        self.fakes.append(f)
        return f

    def test_unavailable_gateway_is_skipped(self) -> None:
        down = self.fake(lambda f, h: f.answer(h, 503, {"error": {"code": "unavailable", "message": "no replica"}}))
        up = self.fake(lambda f, h: f.answer(h, 200, DOC))
        c = self.client([down.url, up.url]).collection("c")
        self.assertEqual(c.get("d").data, {"n": 1})
        self.assertEqual((len(down.requests), len(up.requests)), (1, 1))
        # The next call starts at the gateway that answered.
        c.get("d")
        self.assertEqual((len(down.requests), len(up.requests)), (1, 2))

    def test_refused_connection_is_skipped(self) -> None:
        up = self.fake(lambda f, h: f.answer(h, 200, DOC))
        c = self.client([f"http://127.0.0.1:{free_port()}", up.url]).collection("c")
        self.assertEqual(c.put("d", {"n": 1}).version, "dc1@1:1")

    def test_outcome_unknown_write_is_retried_with_its_key_on_the_same_gateway(self) -> None:
        a = self.fake(first_unknown)
        b = self.fake(lambda f, h: f.answer(h, 200, DOC))
        c = self.client([a.url, b.url]).collection("c")
        c.patch("d", {"n": 1})
        self.assertEqual(len(a.requests), 2, "retried where it went")
        self.assertEqual(len(b.requests), 0)
        keys = [r[2]["idempotency-key"] for r in a.requests]
        self.assertTrue(keys[0] and keys[0] == keys[1], keys)
        # Each logical write has its own key.
        c.patch("d", {"n": 2})
        self.assertNotEqual(a.requests[-1][2]["idempotency-key"], keys[0])

    def test_write_whose_connection_broke_is_retried_with_its_key(self) -> None:
        def drop_first(f: FakeGateway, h) -> None:  # type: ignore[no-untyped-def]
            if len(f.requests) == 1:
                h.close_connection = True  # no answer at all
            else:
                f.answer(h, 201, DOC)
        a = self.fake(drop_first)
        doc = self.client(a.url).collection("c").insert({"n": 1})
        self.assertTrue(doc.created)
        keys = [r[2]["idempotency-key"] for r in a.requests]
        self.assertEqual(len(keys), 2)
        self.assertEqual(keys[0], keys[1])

    def test_headers_deadline_write_concern_token_session(self) -> None:
        a = self.fake(lambda f, h: f.answer(h, 200, DOC, {"X-Aerolith-Session": "s1.CAE"}))
        client = self.client(a.url, token="tok-0123456789abcdef", write_concern="all")
        s = client.session()
        s.collection("c").put("d", {"n": 1}, timeout=2.5, if_match="dc1@1:1")
        s.collection("c").get("d", timeout=70)
        (_, _, put), (_, _, get) = a.requests
        self.assertEqual(put["authorization"], "Bearer tok-0123456789abcdef")
        self.assertEqual(put["x-aerolith-write-concern"], "all")
        self.assertTrue(2500 >= int(put["x-aerolith-timeout-ms"]) > 2000, put)
        self.assertEqual(put["if-match"], '"dc1@1:1"')
        self.assertNotIn("x-aerolith-session", put)
        self.assertEqual(get["x-aerolith-session"], "s1.CAE")
        self.assertEqual(get["x-aerolith-timeout-ms"], "60000")
        self.assertNotIn("x-aerolith-write-concern", get)
        self.assertNotIn("idempotency-key", get)

    def test_errors_are_raised_with_code_status_message(self) -> None:
        a = self.fake(lambda f, h: f.answer(h, 412, {"error": {"code": "precondition_failed", "message": "stale"}}))
        with self.assertRaises(aerolith.PreconditionFailed) as e:
            self.client(a.url).collection("c").delete("d", if_match="x")
        self.assertEqual((e.exception.code, e.exception.status, e.exception.message), ("precondition_failed", 412, "stale"))
        self.assertEqual(len(a.requests), 1, "not retried")

    def test_no_gateway_reachable_within_the_deadline(self) -> None:
        started = time.monotonic()
        with self.assertRaises(aerolith.Unavailable):
            self.client([f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]).collection("c").get("d", timeout=0.5)
        self.assertLess(time.monotonic() - started, 3)

    def test_async_client_follows_the_same_rules(self) -> None:
        a = self.fake(first_unknown)

        async def run() -> None:
            async with aerolith.AsyncClient([f"http://127.0.0.1:{free_port()}", a.url]) as client:
                doc = await client.collection("c").put("d", {"n": 1})
                self.assertEqual(doc.data, {"n": 1})
        asyncio.run(run())
        keys = [r[2]["idempotency-key"] for r in a.requests]
        self.assertEqual(len(keys), 2)
        self.assertEqual(keys[0], keys[1])


def change(n: int, token: str) -> dict:  # type: ignore[type-arg]
    return {"type": "change", "sub": "s", "op": "put", "collection": "c", "id": "a",
            "version": f"dc1@1:{n}", "updated_at": "", "origin": "dc1", "data": {"n": n}, "token": token}


def resuming(n: int, subscribe: dict) -> list[dict]:  # type: ignore[type-arg]
    """A change, then silence; then a slow-consumer error; then the next change."""
    if n == 1:
        return [{"type": "subscribed", "sub": "s", "token": "t0"}, change(1, "t1")]
    if n == 2:
        return [{"type": "error", "error": {"code": "rate_limited", "message": "slow consumer"}}]
    return [{"type": "subscribed", "sub": "s", "token": subscribe.get("since")}, change(2, "t2")]


class ChangeStreamTest(unittest.TestCase):
    """Reconnecting and resuming, against a stand-in WebSocket endpoint."""

    def check(self, fake: FakeWsGateway, got: list, stream) -> None:  # type: ignore[no-untyped-def,type-arg]
        self.assertEqual([c.data for c in got if c], [{"n": 1}, {"n": 2}])
        self.assertNotIn("since", fake.subscribes[0])
        self.assertEqual([s.get("since") for s in fake.subscribes[1:]], ["t1", "t1"], "resumed from the last token")
        # Connection 2 refused the subscription: one reconnect, to connection 3.
        self.assertEqual((stream.reconnects, stream.token), (1, "t2"))

    def test_silent_or_slow_connection_is_resumed_from_the_last_token(self) -> None:
        fake = FakeWsGateway(resuming)
        self.addCleanup(fake.close)
        client = aerolith.Client(fake.url)
        with client.collection("c").changes(idle_timeout=0.3) as stream:
            got = [stream.next(5), stream.next(5)]
            self.check(fake, got, stream)

    def test_async_stream_resumes_too(self) -> None:
        fake = FakeWsGateway(resuming)
        self.addCleanup(fake.close)

        async def run() -> None:
            async with aerolith.AsyncClient(fake.url) as client:
                stream = client.collection("c").changes(idle_timeout=0.3)
                got = [await stream.next(5), await stream.next(5)]
                await stream.close()
                self.check(fake, got, stream)
        asyncio.run(run())

    def test_next_keeps_its_timeout_while_no_gateway_answers(self) -> None:
        stream = aerolith.Client(f"http://127.0.0.1:{free_port()}").collection("c").changes(reconnect_timeout=1)
        started = time.monotonic()
        self.assertIsNone(stream.next(0.5))
        self.assertLess(time.monotonic() - started, 1.0)
        with self.assertRaises(aerolith.Unavailable):
            next(stream)  # no gateway within reconnect_timeout
        self.assertLess(time.monotonic() - started, 5)

    def test_token_of_another_dc_goes_to_the_next_gateway(self) -> None:
        other_dc = [{"type": "error", "sub": "s", "error": {"code": "invalid_argument", "message":
                     'this resume token belongs to DC "dc1"; this gateway serves DC "dc2"'}}]
        dc2 = FakeWsGateway(lambda n, sub: other_dc)
        dc1 = FakeWsGateway(lambda n, sub: [{"type": "subscribed", "sub": "s", "token": "t1"}, change(1, "t2")])
        for f in (dc1, dc2):
            self.addCleanup(f.close)
        with aerolith.Client([dc2.url, dc1.url]).collection("c").changes(since="t1") as stream:
            got = stream.next(5)
        self.assertEqual(got.token if got else None, "t2")
        self.assertEqual([s.get("since") for s in dc1.subscribes], ["t1"])
        # Refused by every gateway: the error ends the stream.
        with self.assertRaises(aerolith.InvalidArgument):
            aerolith.Client([dc2.url]).collection("c").changes(since="t1").next(5)

    def test_a_refused_subscription_is_retried_after_pauses_until_the_timeout(self) -> None:
        capped = [{"type": "error", "sub": "s", "error": {"code": "rate_limited", "message":
                   "this token holds its cap of 1 subscriptions (--max-subscriptions-per-token)"}}]
        fake = FakeWsGateway(lambda n, sub: capped)
        self.addCleanup(fake.close)
        stream = aerolith.Client(fake.url).collection("c").changes(reconnect_timeout=1)
        with self.assertRaises(aerolith.Unavailable) as raised:
            stream.next(10)
        self.assertIn("--max-subscriptions-per-token", str(raised.exception))
        self.assertLess(len(fake.subscribes), 20, "it pauses between attempts")

        async def run() -> None:
            before = len(fake.subscribes)
            async with aerolith.AsyncClient(fake.url) as client:
                s = client.collection("c").changes(reconnect_timeout=1)
                with self.assertRaises(aerolith.Unavailable):
                    await s.next(10)
            self.assertLess(len(fake.subscribes) - before, 20, "the asyncio stream pauses too")
        asyncio.run(run())

    def test_a_slow_confirmation_is_waited_for_across_short_polls(self) -> None:
        def slow(n: int, sub: dict) -> list[dict]:  # type: ignore[type-arg]
            time.sleep(0.5)
            return [{"type": "subscribed", "sub": "s", "token": "t0"}, change(1, "t1")]
        fake = FakeWsGateway(slow)
        self.addCleanup(fake.close)
        got = None
        with aerolith.Client(fake.url).collection("c").changes() as stream:
            for _ in range(25):
                got = stream.next(0.2)
                if got is not None:
                    break
        self.assertEqual(got.token if got else None, "t1")
        self.assertEqual(len(fake.subscribes), 1, "one subscription, kept across polls")

    def test_expired_token_ends_the_stream(self) -> None:
        fake = FakeWsGateway(lambda n, sub: [{"type": "error", "sub": "s", "error": {
            "code": "resume_token_expired", "message": "trimmed"}}])
        self.addCleanup(fake.close)
        with self.assertRaises(aerolith.ResumeTokenExpired):
            aerolith.Client(fake.url).collection("c").changes(since="t9").next(5)
        self.assertEqual(len(fake.subscribes), 1, "not retried")


class FramingTest(unittest.TestCase):
    def read(self, data: bytes) -> tuple[bool, int, bytes]:
        for cut in (0, 1, 3, len(data) - 1):
            if 0 <= cut < len(data):
                self.assertIsNone(_ws.parse_frame(data[:cut]), "a partial frame waits")
        frame = _ws.parse_frame(data + b"next")
        assert frame is not None
        fin, opcode, payload, used = frame
        self.assertEqual(used, len(data))
        return fin, opcode, payload

    def test_masked_frames_round_trip_at_every_length_form(self) -> None:
        for n in (0, 5, 125, 126, 65535, 65536, 200000):
            payload = bytes(i % 251 for i in range(n))
            frame = _ws.encode(_ws.TEXT, payload)
            self.assertTrue(frame[1] & 0x80, "client frames are masked")
            self.assertEqual(self.read(frame), (True, _ws.TEXT, payload))

    def test_ping_answered_with_pong_and_close_raises(self) -> None:
        a = _ws.Assembler()
        text, reply = a.feed(True, _ws.PING, b"hi")
        self.assertIsNone(text)
        assert reply is not None
        self.assertEqual(self.read(reply), (True, _ws.PONG, b"hi"))
        self.assertEqual(a.feed(False, _ws.TEXT, b'{"a"'), (None, None))
        self.assertEqual(a.feed(True, _ws.CONT, b":1}"), ('{"a":1}', None))
        with self.assertRaises(_ws.Closed) as e:
            a.feed(True, _ws.CLOSE, b"\x03\xe9bye")
        self.assertEqual((e.exception.code, e.exception.reason), (1001, "bye"))


if __name__ == "__main__":
    unittest.main()
