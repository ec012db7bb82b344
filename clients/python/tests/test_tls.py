"""TLS (a private CA given as `ca_file`) and bearer tokens, against `aerolith dev` with
`--tls-cert` and `--auth-tokens`: REST and the change stream (wss) with a token, the
refusals without one or with a read-only one, blocking and asyncio."""
from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import unittest

import aerolith

from support import AEROLITH, dev_port_base, until

ADMIN = "pyclient-admin-token-0123456789"
READ = "pyclient-read-token-0123456789"


class TlsTokenTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.work = pathlib.Path(tempfile.mkdtemp(prefix="aerolith-pyclient-tls-"))
        certs = cls.work / "certs"
        subprocess.run([AEROLITH, "certs", "--out", str(certs), "--public-names", "127.0.0.1,localhost"],
                       check=True, stdout=subprocess.DEVNULL)
        cls.ca = str(certs / "public-ca.pem")
        (cls.work / "tokens").write_text(f"admin {ADMIN}\nread {READ}\n")
        port = dev_port_base(14080, 1)
        cls.log = open(cls.work / "dev.log", "w")
        cls.dev = subprocess.Popen(
            [AEROLITH, "dev", "--data-dir", str(cls.work / "data"), "--dcs", "1", "--nodes-per-dc", "1",
             "--port-base", str(port), "--auth-tokens", str(cls.work / "tokens"),
             "--tls-cert", str(certs / "public.pem"), "--tls-key", str(certs / "public.key")],
            stdout=cls.log, stderr=subprocess.STDOUT, start_new_session=True)
        until("the TLS cluster ready", lambda: (cls.work / "data" / "endpoints.json").exists(), within=120)
        cls.url = f"https://localhost:{port}"

    @classmethod
    def tearDownClass(cls) -> None:
        os.killpg(cls.dev.pid, signal.SIGTERM)
        cls.dev.wait(timeout=30)
        cls.log.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    def client(self, **kw) -> aerolith.Client:  # type: ignore[no-untyped-def]
        c = aerolith.Client(self.url, **kw)
        self.addCleanup(c.close)
        return c

    def test_token_over_tls(self) -> None:
        c = self.client(token=ADMIN, ca_file=self.ca).collection("secure")
        with c.changes() as stream:
            until("the subscription over wss", lambda: stream.next(0.2) is None and stream.token)
            c.put("s1", {"secret": 1})
            change = stream.next(10)
        self.assertEqual((change.id, change.data) if change else None, ("s1", {"secret": 1}))
        self.assertEqual(c.get("s1").data, {"secret": 1})
        with self.assertRaises(aerolith.Unauthenticated) as e:
            self.client(ca_file=self.ca).collection("secure").get("s1")
        self.assertEqual((e.exception.code, e.exception.status), ("unauthenticated", 401))
        reader = self.client(token=READ, ca_file=self.ca).collection("secure")
        self.assertEqual(reader.get("s1").data, {"secret": 1})
        with self.assertRaises(aerolith.PermissionDenied) as e2:
            reader.put("s2", {})
        self.assertEqual(e2.exception.status, 403)
        with self.assertRaises(aerolith.Unauthenticated):
            next(self.client(token="not-a-token-of-this-cluster", ca_file=self.ca).collection("secure").changes())

    def test_unknown_ca_is_refused(self) -> None:
        with self.assertRaises(aerolith.Unavailable) as e:
            self.client(token=ADMIN).collection("secure").get("s1", timeout=1)
        self.assertIn("CERTIFICATE_VERIFY_FAILED", e.exception.message)

    def test_async_over_tls(self) -> None:
        async def run() -> None:
            async with aerolith.AsyncClient(self.url, token=ADMIN, ca_file=self.ca) as client:
                c = client.collection("secure_aio")
                stream = c.changes()
                self.assertIsNone(await stream.next(0.5))
                await c.put("a", {"n": 1})
                change = await stream.next(10)
                self.assertEqual(change.id if change else None, "a")
                self.assertEqual((await c.get("a")).data, {"n": 1})
                await stream.close()
        asyncio.run(run())


if __name__ == "__main__":
    unittest.main()
