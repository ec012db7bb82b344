#!/usr/bin/env python3
"""The web console's tests in a real browser: headless Chromium (Debian's chromium and
chromium-driver, installed by scripts/ensure-chromium.sh) driven through WebDriver
(selenium, pinned in scripts/console/requirements.txt, installed into a venv) against a fresh
`aerolith dev` with tokens on.

It signs in (a wrong token first), creates a collection, adds documents (one whose content
is an XSS payload, which must render as text and run nothing), edits one while the same
document changes underneath (the save is refused with a clear 412, a reload and save then
work), runs a query (and its plan), watches a change arrive live, sees the cluster view,
deletes a document, and checks the pages' security headers. With an admin token, the
replication view (the replicator admin API, across origins) charts the lag per peer, pauses
and resumes a peer after a confirmation, lists a conflict, runs a resync and marks a DC down
and up; a read token does not get it, and a foreign web page is refused by the admin API.
Last, against a cluster of separate processes (where one storage node can be stopped alone),
the cluster view marks a stopped node unhealthy; and over TLS, the page, its API calls, its
live socket and its admin view work.

    scripts/test-console.py [PATH_TO_AEROLITH] [--screenshots DIR]
"""
import json
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import devcluster
from pyvenv import in_venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "scripts" / "console" / "requirements.txt"
VENV = pathlib.Path(os.environ.get("AEROLITH_CONSOLE_VENV", "/var/tmp/aerolith-venv-console"))
ADMIN = "console-admin-token-0123456789abcdef"
READ = "console-read-token-0123456789abcdef"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
WAIT = 20


def admin_port(base, dc):
    """DC `dc`'s (from 0) replicator admin port in a dev cluster on `--port-base base`."""
    return base - 8080 + 9090 + dc


def call(base, method, path, body=None, headers=None, context=None, token=ADMIN):
    """One REST call with the admin token (over TLS trusting `context`'s CA for https):
    (status, headers, parsed body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            text = r.read()
            return r.status, r.headers, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, e.headers, None


def until(what, check, within=WAIT):
    """Retries `check` until it returns something truthy, or fails saying `what`."""
    deadline = time.time() + within
    last = None
    while time.time() < deadline:
        try:
            got = check()
            if got:
                return got
        except Exception as e:  # a stale element, a page still loading
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {within} s (last: {last})")


def click(what, find, within=WAIT):
    """Clicks what `find` returns once it is there, retrying while the page re-renders (an
    element found just before a view redraws itself goes stale)."""
    def attempt():
        el = find()
        if not el:
            return False
        el.click()
        return True
    until(what, attempt, within)


class Console:
    """The browser on the console page, with the few actions the tests need."""

    def __init__(self, base, shots):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        # The TLS scenario's certificate comes from a CA the browser does not know.
        options.accept_insecure_certs = True
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--ignore-certificate-errors",
                    "--window-size=1280,900", "--disable-gpu"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
        self.driver = webdriver.Chrome(options=options, service=service)
        self.base = base
        self.shots = shots

    def by_id(self, id_):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.ID, id_)

    def css(self, selector):
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def type(self, id_, text):
        el = self.by_id(id_)
        el.clear()
        el.send_keys(text)

    def message(self, contains):
        return until(f"the message line says {contains!r}",
                     lambda: contains in self.by_id("message").text and self.by_id("message").text)

    def shot(self, name):
        if self.shots:
            self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def quit(self):
        self.driver.quit()


def scenario(c, base):
    d = c.driver
    d.get(base + "/console")
    c.shot("signin")

    # A wrong token is refused; the right one signs in.
    c.type("token", "not-a-token-of-this-cluster")
    c.by_id("signin-button").click()
    c.message("Sign-in failed")
    c.type("token", ADMIN)
    c.by_id("signin-button").click()
    c.message("Signed in.")
    print("ok: sign-in refuses a wrong token and takes the right one")

    # A collection, created from the console.
    c.type("new-collection", "people")
    c.by_id("create-collection-button").click()
    c.message("Created collection people")
    until("people listed", lambda: any(r.text.startswith("people") for r in c.css("#collection-table tbody tr")))
    print("ok: a collection created")

    # Documents: one plain, one whose content is an XSS payload.
    click("a Browse button", lambda: c.css("#collection-table tbody button")[0])
    until("the documents view", lambda: not c.by_id("documents").is_displayed() is False and c.by_id("documents").is_displayed())
    for id_, data in (("ada", {"name": "Ada", "born": 1815}), ("xss", {"name": XSS})):
        c.type("new-doc-id", id_)
        c.type("new-doc-data", json.dumps(data))
        c.by_id("new-doc-button").click()
        c.message(f"Added document {id_}")
    until("both documents listed", lambda: len(c.css("#doc-table tbody tr")) == 2)
    table = c.by_id("doc-table").text
    assert "<img src=x" in table and "<script>" in table, table
    assert not c.css("#doc-table img") and not c.css("#doc-table script"), "the payload became markup"
    assert d.execute_script("return window.__xss === undefined"), "the payload ran"
    c.shot("documents")
    print("ok: documents added; an XSS payload renders as text and runs nothing")

    # The editor: a concurrent change makes the save a clear 412; reload and save work.
    click("ada's link", lambda: next((b for b in c.css("#doc-table tbody button") if b.text == "ada"), None))
    until("the editor", lambda: c.by_id("editor").is_displayed())
    status, _, _ = call(base, "PUT", "/v1/collections/people/docs/ada", {"name": "Ada", "born": 1815, "by": "someone else"})
    assert status == 200, status
    c.type("edit-data", json.dumps({"name": "Ada Lovelace", "born": 1815}))
    c.by_id("save-doc").click()
    c.message("412")
    c.shot("editor-conflict")
    c.by_id("reload-doc").click()
    until("the reloaded document", lambda: "someone else" in c.by_id("edit-data").get_attribute("value"))
    c.type("edit-data", json.dumps({"name": "Ada Lovelace", "born": 1815}))
    c.by_id("save-doc").click()
    c.message("Saved ada")
    _, _, doc = call(base, "GET", "/v1/collections/people/docs/ada")
    assert doc["data"] == {"name": "Ada Lovelace", "born": 1815}, doc
    c.shot("editor")
    print("ok: a concurrent edit is refused with a clear 412; reload and save work")

    # A query, as a table.
    d.find_element("css selector", "#tabs button[data-view=query]").click()
    c.type("query-collection", "people")
    c.type("query-filter", json.dumps({"born": {"$lt": 1900}}))
    c.by_id("query-run").click()
    c.message("1 documents")
    rows = c.css("#query-table tbody tr")
    assert len(rows) == 1 and "ada" in rows[0].text and "Ada Lovelace" in rows[0].text, [r.text for r in rows]
    c.shot("query")
    c.by_id("query-explain").click()
    c.by_id("query-run").click()
    steps = until("the plan", lambda: c.css("#plan-table tbody tr"))
    assert all(r.text.split()[-1].isdigit() for r in steps), [r.text for r in steps]
    print("ok: a query's results as a table, and its plan with explain")

    # A change arrives live.
    d.find_element("css selector", "#tabs button[data-view=live]").click()
    c.type("live-collection", "people")
    c.by_id("live-start").click()
    until("the live view connected", lambda: c.by_id("live-status").text.startswith("live"))
    until("a change arrives live", lambda: (call(base, "PUT", "/v1/collections/people/docs/lin", {"name": "Lin", "born": 1990}),
                                            any("lin" in li.text for li in c.css("#live-events li")))[1], within=WAIT)
    assert c.by_id("live-token").text, "the position is shown"
    # The socket drops; a change made meanwhile arrives once it reconnects, and nothing seen
    # before comes again: it resumed from its last token.
    d.execute_script("state.live.ws.close(4000, 'dropped by the test')")
    call(base, "PUT", "/v1/collections/people/docs/kay", {"name": "Kay", "born": 1940})
    until("the live view resumed", lambda: c.by_id("live-status").text == "live (resumed)")
    until("the change made while disconnected arrives", lambda: any(
        " kay " in li.text for li in c.css("#live-events li")))
    events = [li.text for li in c.css("#live-events li")]
    # (lin may have been written more than once while the subscription started: each is a
    # version of its own.)
    assert len(events) == len(set(events)) and sum(" kay " in e for e in events) == 1, events
    assert not any(e.startswith("checkpoint") for e in events), events
    c.shot("live")
    c.by_id("live-stop").click()
    print("ok: a change arrives live, and the view resumes from its token after a drop")

    # The cluster view.
    d.find_element("css selector", "#tabs button[data-view=cluster]").click()
    until("the cluster's nodes", lambda: c.css("#cluster-table tbody tr") and all(
        "healthy" in r.text for r in c.css("#cluster-table tbody tr")))
    c.shot("cluster")
    print("ok: the cluster view lists every node healthy")

    # Delete, with the confirmation.
    d.find_element("css selector", "#tabs button[data-view=collections]").click()
    click("a Browse button", lambda: c.css("#collection-table tbody button")[0])
    click("ada's link", lambda: next((b for b in c.css("#doc-table tbody button") if b.text == "ada"), None))
    until("the editor", lambda: c.by_id("editor").is_displayed())
    c.by_id("delete-doc").click()
    until("the confirmation", lambda: d.switch_to.alert).accept()
    c.message("Deleted ada")
    status, _, _ = call(base, "GET", "/v1/collections/people/docs/ada")
    assert status == 404, status
    print("ok: a document deleted after a confirmation")

    errors = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"
              and "Content Security Policy" in e.get("message", "")]
    assert not errors, f"CSP violations: {errors}"


def sign_in(c, base, token):
    d = c.driver
    # A fresh page with no kept token (a reload would sign in with the last one).
    d.execute_script("sessionStorage.clear()")
    d.get(base + "/console")
    c.type("token", token)
    c.by_id("signin-button").click()
    c.message("Signed in.")


def replication(c, base, port):
    """The replication view: only for an admin token; lag per peer as a live chart; pause,
    resume, resync and failover each after a confirmation; a conflict listed."""
    d = c.driver
    dc1, dc2 = (f"http://127.0.0.1:{admin_port(port, i)}" for i in (0, 1))

    # A read token gets no replication view: the admin API refuses it.
    sign_in(c, base, READ)
    until("the refusal noted", lambda: "replication view: permission_denied" in c.by_id("who").text)
    assert not c.by_id("tab-replication").is_displayed(), "a read token sees the replication tab"

    # The admin API answers this console's origin and refuses every other web page, even a
    # simple POST a browser would send without asking first.
    for origin, want in ((base, 204), ("http://evil.example", 403)):
        req = urllib.request.Request(dc1 + "/admin/status", method="OPTIONS", headers={
            "Origin": origin, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, allowed = r.status, r.headers.get("Access-Control-Allow-Origin")
        except urllib.error.HTTPError as e:
            status, allowed = e.code, e.headers.get("Access-Control-Allow-Origin")
        assert status == want and (allowed == origin) == (want == 204), (origin, status, allowed)
    status, _, _ = call(dc1, "POST", "/admin/peers/dc2/pause", headers={"Origin": "http://evil.example"})
    assert status == 403, status
    _, _, st = call(dc1, "GET", "/admin/status")
    assert st["peers"][0]["state"] != "paused", st
    print("ok: a read token gets no replication view; the admin API refuses a foreign page")

    sign_in(c, base, ADMIN)
    click("the replication tab", lambda: c.by_id("tab-replication").is_displayed() and c.by_id("tab-replication"))

    def peer_row():
        return next((r for r in c.css("#peer-table tbody tr") if r.get_attribute("data-peer") == "dc2"), None)

    def peer_state():
        row = peer_row()
        return row.find_elements("css selector", "td")[1].text if row else None
    until("dc2 listed as a peer", lambda: peer_state() in ("connected", "disconnected"))

    # A dismissed confirmation does nothing.
    click("Pause", lambda: next((b for b in peer_row().find_elements("css selector", "button") if b.text == "Pause"), None))
    until("the confirmation", lambda: d.switch_to.alert).dismiss()
    _, _, st = call(dc1, "GET", "/admin/status")
    assert st["peers"][0]["state"] != "paused", st

    # Pause after the confirmation: a write then waits, and the chart shows the lag.
    click("Pause", lambda: next((b for b in peer_row().find_elements("css selector", "button") if b.text == "Pause"), None))
    until("the confirmation", lambda: d.switch_to.alert).accept()
    c.message("Paused shipping to dc2")
    until("dc2 shown paused", lambda: peer_state() == "paused")
    # Both directions paused, the same document written in each DC: a conflict on resume.
    status, _, _ = call(dc2, "POST", "/admin/peers/dc1/pause")
    assert status == 200, status
    dc2_base = f"http://127.0.0.1:{port + 1}"
    assert call(base, "PUT", "/v1/collections/people/docs/both", {"in": "dc1"})[0] in (200, 201)
    assert call(dc2_base, "PUT", "/v1/collections/people/docs/both", {"in": "dc2"})[0] in (200, 201)

    def lag_line():
        return next((p for p in c.css("#lag-chart polyline") if p.get_attribute("data-peer") == "dc2"), None)
    until("the chart shows dc2's lag", lambda: lag_line() and int(lag_line().get_attribute("data-latest")) > 0)
    until("the table shows changes waiting", lambda: int(peer_row().find_elements("css selector", "td")[2].text) > 0)
    assert len(lag_line().get_attribute("points").split()) >= 2, "a chart over time"
    if c.shots:  # a screenshot worth looking at: the lag growing over a few polls
        until("a few polls charted", lambda: len(lag_line().get_attribute("points").split()) >= 6)
    print("ok: pausing a peer after a confirmation; the lag shows in the table and the chart")

    status, _, _ = call(dc2, "POST", "/admin/peers/dc1/resume")
    assert status == 200, status
    click("Resume", lambda: next((b for b in peer_row().find_elements("css selector", "button") if b.text == "Resume"), None))
    until("the confirmation", lambda: d.switch_to.alert).accept()
    c.message("Resumed shipping to dc2")
    until("dc2 caught up", lambda: peer_state() == "connected" and peer_row().find_elements("css selector", "td")[2].text == "0",
          within=60)
    until("the conflict listed", lambda: any(
        r.find_elements("css selector", "td")[3].text == "both" for r in c.css("#conflict-table tbody tr")), within=60)
    c.shot("replication")
    print("ok: resumed after a confirmation; the peer caught up and the conflict is listed")

    # Resync against dc2.
    c.type("resync-collection", "people")
    c.by_id("resync-run").click()
    until("the confirmation", lambda: d.switch_to.alert).accept()
    c.message("Resync with dc2 done.")
    summary = json.loads(c.by_id("resync-result").text)
    assert isinstance(summary, dict) and summary, summary
    print("ok: a resync after a confirmation, its summary shown")

    # Failover: dc2 down, then up again; every gateway sees it.
    from selenium.webdriver.support.ui import Select
    for to in ("down", "up"):
        Select(c.by_id("failover-dc")).select_by_value("dc2")
        Select(c.by_id("failover-state")).select_by_value(to)
        c.by_id("failover-run").click()
        until("the confirmation", lambda: d.switch_to.alert).accept()
        c.message(f"Marked dc2 {to}.")

        def dc2_state():
            _, _, cluster = call(base, "GET", "/v1/cluster")
            return next(x["state"] for x in cluster["dcs"] if x["id"] == "dc2")
        until(f"the gateway sees dc2 {to}", lambda: dc2_state() == to, within=60)
    print("ok: a DC marked down and up again after a confirmation")


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cluster(aerolith, work):
    """One DC of two storage nodes, a gateway and a replicator as separate processes, with
    tokens (`aerolith dev` runs in one process, where no node can be stopped alone): the
    processes by name and the gateway's base URL, once it is ready."""
    certs = work / "certs"
    subprocess.run([aerolith, "certs", "--out", str(certs)], check=True, stdout=subprocess.DEVNULL)
    nodes = {n: free_port(socket.SOCK_DGRAM) for n in ("n1", "n2")}

    def pair(role):
        return f'{{ cert = "{certs}/{role}.pem", key = "{certs}/{role}.key" }}'
    listed = ", ".join(f'{{ id = "{n}", rpc = "127.0.0.1:{p}" }}' for n, p in nodes.items())
    (work / "cluster.toml").write_text(
        f'name = "console"\nshards = 16\n[tls]\nca = "{certs}/ca.pem"\n'
        f'storagenode = {pair("storagenode")}\ngateway = {pair("gateway")}\n'
        f'replicator = {pair("replicator")}\n[[dcs]]\nid = "dc1"\nnodes = [{listed}]\n')
    common = ["--config", str(work / "cluster.toml"), "--dc", "dc1"]
    tokens = ["--auth-tokens", str(work / "tokens")]
    http = free_port(socket.SOCK_STREAM)
    procs = {}
    log = open(work / "procs.log", "w")

    def start(name, args):
        procs[name] = subprocess.Popen([aerolith, *args], stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
    for n in nodes:
        start(n, ["node", *common, "--node", n, "--data-dir", str(work / n), "--new-store", "genesis"])
    start("replicator", ["replicator", *common, *tokens, "--data-dir", str(work / "replicator"),
                         "--listen", f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
                         "--admin-listen", f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"])
    start("gateway", ["gateway", *common, *tokens, "--http-listen", f"127.0.0.1:{http}",
                      "--grpc-listen", f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"])
    base = f"http://127.0.0.1:{http}"

    def ready():
        try:
            return urllib.request.urlopen(base + "/readyz", timeout=2).status == 200
        except OSError:
            return False
    until("the process cluster ready", ready, within=120)
    return procs, base


def stopped_node(c, aerolith, work):
    """The cluster view marks a node unhealthy once its process stops."""
    procs, base = process_cluster(aerolith, work)
    try:
        d = c.driver
        d.get(base + "/console")
        c.type("token", ADMIN)
        c.by_id("signin-button").click()
        c.message("Signed in.")
        d.find_element("css selector", "#tabs button[data-view=cluster]").click()

        def row():
            return next((r for r in c.css("#cluster-table tbody tr")
                         if r.get_attribute("data-node") == "dc1/n2"), None)
        until("n2 healthy", lambda: row() and "unhealthy" not in row().text and "healthy" in row().text)
        procs["n2"].kill()
        procs["n2"].wait(timeout=10)
        until("n2 marked unhealthy after it stopped", lambda: row() and "unhealthy" in row().text,
              within=60)
        c.shot("cluster-unhealthy")
        print("ok: the cluster view marks a stopped node unhealthy")
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs.values():
            p.wait(timeout=30)


def over_tls(c, aerolith, work):
    """The console served over TLS: the page is https, its API calls and its live socket
    (wss) follow the page's scheme."""
    certs = work / "tls"
    subprocess.run([aerolith, "certs", "--out", str(certs), "--public-names", "127.0.0.1,localhost"],
                   check=True, stdout=subprocess.DEVNULL)
    context = ssl.create_default_context(cafile=str(certs / "public-ca.pem"))
    port = devcluster.free_base(20080)
    data = work / "tls-data"
    log = open(work / "tls-dev.log", "w")
    dev = subprocess.Popen([aerolith, "dev", "--data-dir", str(data), "--dcs", "1", "--nodes-per-dc", "1",
                            "--port-base", str(port), "--auth-tokens", str(work / "tokens"),
                            "--tls-cert", str(certs / "public.pem"), "--tls-key", str(certs / "public.key")],
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"https://127.0.0.1:{port}"
    try:
        until("the TLS cluster ready", lambda: (data / "endpoints.json").exists(), within=120)
        status, _, _ = call(base, "PUT", "/v1/collections/secure", {}, context=context)
        assert status == 201, status
        d = c.driver
        d.get(base + "/console")
        c.type("token", ADMIN)
        c.by_id("signin-button").click()
        c.message("Signed in.")
        until("secure listed", lambda: any(r.text.startswith("secure") for r in c.css("#collection-table tbody tr")))
        click("the replication tab", lambda: c.by_id("tab-replication").is_displayed() and c.by_id("tab-replication"))
        until("the admin API answers over https", lambda: c.by_id("repl-dc").text == "dc1")
        assert c.by_id("repl-admin").text.startswith("https://"), c.by_id("repl-admin").text
        d.find_element("css selector", "#tabs button[data-view=live]").click()
        c.type("live-collection", "secure")
        c.by_id("live-start").click()
        # A browser opens this socket over HTTP/1.1 beside the page's HTTP/2 connection;
        # it failed while the TLS port offered WebSockets inside HTTP/2 (RFC 8441), which
        # the GET-only WebSocket routes refused.
        until("the live view connected over wss", lambda: c.by_id("live-status").text.startswith("live"))
        until("a change arrives over wss", lambda: (
            call(base, "PUT", "/v1/collections/secure/docs/s1", {"n": 1}, context=context),
            any(" s1 " in li.text for li in c.css("#live-events li")))[1])
        assert d.execute_script("return location.protocol") == "https:"
        c.by_id("live-stop").click()
        print("ok: the console works over TLS (https page, API calls and a wss live view)")
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        dev.wait(timeout=30)


def check_headers(base, port):
    admin = f"http://127.0.0.1:{admin_port(port, 0)}"
    for path in ("/console", "/console/console.js", "/console/console.css", "/", "/console/config.json"):
        with urllib.request.urlopen(base + path, timeout=10) as r:
            csp = r.headers.get("Content-Security-Policy", "")
            assert "default-src 'none'" in csp and "script-src 'self'" in csp, (path, csp)
            # The page may call this gateway and its DC's admin API, nothing else.
            assert f"connect-src 'self' {admin};" in csp, (path, csp)
            assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, (path, csp)
            assert r.headers.get("X-Content-Type-Options") == "nosniff", path
    html = urllib.request.urlopen(base + "/console", timeout=10).read().decode()
    assert "<script>" not in html and " on" not in html.replace(" only", ""), "no inline script"
    config = json.loads(urllib.request.urlopen(base + "/console/config.json", timeout=10).read())
    assert config == {"admin": admin}, config
    print("ok: every console asset has the strict Content-Security-Policy; no inline script")


def main():
    in_venv(VENV, REQUIREMENTS)
    args = sys.argv[1:]
    shots = None
    if "--screenshots" in args:
        i = args.index("--screenshots")
        shots = pathlib.Path(args[i + 1])
        shots.mkdir(parents=True, exist_ok=True)
        del args[i:i + 2]
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    aerolith = args[0] if args else f"{target}/debug/aerolith"
    subprocess.run([str(ROOT / "scripts" / "ensure-chromium.sh")], check=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="aerolith-console-"))
    dev, base = devcluster.start(aerolith, work, 1, f"admin {ADMIN}\nread {READ}\n", 20080, dcs=2)
    port = int(base.rsplit(":", 1)[1])
    console = None
    try:
        until("aerolith dev ready", lambda: (work / "data" / "endpoints.json").exists(), within=120)
        check_headers(base, port)
        console = Console(base, shots)
        scenario(console, base)
        replication(console, base, port)
        stopped_node(console, aerolith, work)
        over_tls(console, aerolith, work)
        print("test-console: passed")
    except BaseException:
        if console:
            console.shot("failure") if shots else None
        sys.stderr.write((work / "dev.log").read_text()[-4000:])
        raise
    finally:
        if console:
            console.quit()
        devcluster.stop(dev)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
