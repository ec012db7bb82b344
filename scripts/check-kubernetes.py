#!/usr/bin/env python3
"""Validates the Kubernetes manifests offline (deploy/kubernetes): renders every overlay with
`kubectl kustomize`, validates every object against the Kubernetes API schemas
(kubernetes-validate, pinned in deploy/kubernetes/requirements.txt, installed into a venv),
and checks what a schema cannot see:

- every flag a container or probe passes, and every environment variable it sets, is one the
  `aerolith` binary's `--help` for that subcommand names;
- every port a container, Service or probe names is one the process listens on (from its
  `--listen`-style flags), with the same protocol;
- each DC's replicator gets exactly the other DCs' replicator Services as peers;
- cluster.toml (the same in every overlay) lists exactly each DC's StatefulSet pods, at
  their stable DNS names and the port the nodes listen on, and every process mounts the
  certificate and key cluster.toml names for its role.

Then it breaks a rendered manifest in several ways and checks that each break is caught, so
a check that silently stopped checking fails too.

    scripts/check-kubernetes.py [PATH_TO_AEROLITH]   # default: $CARGO_TARGET_DIR/debug/aerolith
"""
import copy
import functools
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

from pyvenv import in_venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.32.0"
VENV = pathlib.Path(os.environ.get("AEROLITH_VENV", "/var/tmp/aerolith-venv"))
# A process's role in cluster.toml's [tls], by its subcommand.
ROLE_OF = {"node": "storagenode", "gateway": "gateway", "replicator": "replicator"}
# Flags that bind a port, by subcommand: (flag, protocol).
LISTEN_FLAGS = {
    "node": [("--listen", "UDP")],
    "gateway": [("--http-listen", "TCP"), ("--grpc-listen", "TCP")],
    "replicator": [("--listen", "UDP"), ("--admin-listen", "TCP")],
}


def render():
    """{overlay name: [objects]} of every overlay."""
    import yaml
    if shutil.which("kubectl") is None:
        sys.exit("check-kubernetes: kubectl (with its built-in kustomize) is needed to render "
                 "deploy/kubernetes; install it (https://kubernetes.io/docs/tasks/tools/)")
    out = {}
    for overlay in sorted((DEPLOY / "overlays").iterdir()):
        text = subprocess.run(["kubectl", "kustomize", str(overlay)], check=True,
                              capture_output=True, text=True).stdout
        out[overlay.name] = [d for d in yaml.safe_load_all(text) if d]
    return out


@functools.lru_cache(maxsize=None)
def help_text(aerolith, *subcommand):
    return subprocess.run([aerolith, *subcommand, "--help"], check=True, capture_output=True,
                          text=True).stdout


def of_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def config_maps(docs):
    return {d["metadata"]["name"]: d.get("data", {}) for d in of_kind(docs, "ConfigMap")}


def workloads(docs):
    return of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet")


def env_of(container, maps):
    """Every environment variable the container gets: its own and its ConfigMaps'."""
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        env.update(maps.get(source.get("configMapRef", {}).get("name"), {}))
    return env


def flag_value(args, flag):
    return next((args[i + 1] for i, a in enumerate(args[:-1]) if a == flag), None)


def listens(container):
    """{(port, protocol)} the container's process binds, from its flags."""
    args = container.get("args", [])
    ports = set()
    for flag, protocol in LISTEN_FLAGS.get(args[0] if args else "", []):
        value = flag_value(args, flag)
        if value:
            ports.add((int(value.rsplit(":", 1)[1]), protocol))
    return ports


def probes(container):
    return [container[p]["exec"]["command"] for p in ("readinessProbe", "livenessProbe",
                                                       "startupProbe")
            if "exec" in container.get(p, {})]


def check_flags_and_env(docs, aerolith, errors):
    maps = config_maps(docs)
    for w in workloads(docs):
        for c in w["spec"]["template"]["spec"]["containers"]:
            where = f"{w['kind']}/{w['metadata']['name']}"
            args = c.get("args", [])
            helps = [help_text(aerolith, args[0])]
            for flag in (a for a in args if a.startswith("--")):
                if not re.search(rf"(^|\s){re.escape(flag)}[\s=<,]", helps[0], re.M):
                    errors.append(f"{where}: `aerolith {args[0]}` has no flag {flag}")
            for command in probes(c):
                sub = [a for a in command[1:3] if not a.startswith("-")]
                text = help_text(aerolith, *sub)
                helps.append(text)
                for flag in (a for a in command if a.startswith("--")):
                    if not re.search(rf"(^|\s){re.escape(flag)}[\s=<,]", text, re.M):
                        errors.append(f"{where}: `aerolith {' '.join(sub)}` has no flag {flag}")
            for name in env_of(c, maps):
                if not any(name in h for h in helps):
                    errors.append(f"{where}: no `aerolith {args[0]}` or probe reads {name}")


def check_ports(docs, errors):
    pods = []
    for w in workloads(docs):
        spec = w["spec"]["template"]
        for c in spec["spec"]["containers"]:
            where = f"{w['kind']}/{w['metadata']['name']}"
            bound = listens(c)
            named = {}
            for p in c.get("ports", []):
                key = (p["containerPort"], p.get("protocol", "TCP"))
                named[p.get("name")] = key
                if key not in bound:
                    errors.append(f"{where}: containerPort {key} is not a port it listens on {sorted(bound)}")
            for command in probes(c):
                for url in (a for a in command if "://" in a):
                    port = int(re.match(r"\w+://[^/:]+:(\d+)", url).group(1))
                    if (port, "TCP") not in bound:
                        errors.append(f"{where}: probe {url} names a port it does not listen on")
            pods.append((spec["metadata"]["labels"], named, bound))
    for svc in of_kind(docs, "Service"):
        selector = svc["spec"].get("selector", {})
        targets = [(named, bound) for labels, named, bound in pods
                   if all(labels.get(k) == v for k, v in selector.items())]
        if not targets:
            errors.append(f"Service/{svc['metadata']['name']}: selects no pod")
        for p in svc["spec"]["ports"]:
            protocol = p.get("protocol", "TCP")
            target = p.get("targetPort", p["port"])
            for named, bound in targets:
                key = named.get(target) if isinstance(target, str) else (target, protocol)
                if key is None or key not in bound or key[1] != protocol:
                    errors.append(f"Service/{svc['metadata']['name']}: port {p.get('name')} "
                                  f"({target}/{protocol}) is not one its pods listen on")


def dc_of(docs):
    maps = config_maps(docs)
    return next(v["AEROLITH_DC"] for v in maps.values() if "AEROLITH_DC" in v)


def replicator_address(docs):
    sts = next(s for s in of_kind(docs, "StatefulSet")
               if s["spec"]["template"]["spec"]["containers"][0]["args"][0] == "replicator")
    svc = next(s for s in of_kind(docs, "Service")
               if s["metadata"]["name"] == sts["spec"]["serviceName"])
    port = next(p["port"] for p in svc["spec"]["ports"] if p.get("protocol") == "UDP")
    ns = sts["metadata"]["namespace"]
    return f"{sts['metadata']['name']}-0.{svc['metadata']['name']}.{ns}.svc.cluster.local:{port}"


def check_peers(rendered, errors):
    address = {dc_of(docs): replicator_address(docs) for docs in rendered.values()}
    for name, docs in rendered.items():
        dc = dc_of(docs)
        peers = next(v["AEROLITH_PEERS"] for v in config_maps(docs).values() if "AEROLITH_PEERS" in v)
        got = dict(p.split("=", 1) for p in peers.split(",") if p)
        want = {d: a for d, a in address.items() if d != dc}
        if got != want:
            errors.append(f"{name}: the replicator's peers are {got}, not the other DCs' "
                          f"replicator Services {want}")


def check_cluster_toml(rendered, errors):
    tomls = {name: next(v["cluster.toml"] for v in config_maps(docs).values()
                        if "cluster.toml" in v) for name, docs in rendered.items()}
    if len(set(tomls.values())) != 1:
        errors.append("the overlays' cluster.toml differ: every process must read the same one")
    for name, docs in rendered.items():
        cluster = tomllib.loads(tomls[name])
        dc = dc_of(docs)
        listed = {d["id"]: d["nodes"] for d in cluster["dcs"]}
        if set(listed) != {dc_of(d) for d in rendered.values()}:
            errors.append(f"{name}: cluster.toml's DCs {sorted(listed)} are not the overlays'")
        if dc not in listed:
            continue
        sts = next(s for s in of_kind(docs, "StatefulSet")
                   if s["spec"]["template"]["spec"]["containers"][0]["args"][0] == "node")
        node = sts["spec"]["template"]["spec"]["containers"][0]
        port = next(p for p, proto in listens(node) if proto == "UDP")
        ns, base = sts["metadata"]["namespace"], sts["metadata"]["name"]
        want = [{"id": f"{base}-{i}",
                 "rpc": f"{base}-{i}.{sts['spec']['serviceName']}.{ns}.svc.cluster.local:{port}"}
                for i in range(sts["spec"]["replicas"])]
        if listed[dc] != want:
            errors.append(f"{name}: cluster.toml lists {listed[dc]} for {dc}, but the StatefulSet "
                          f"runs {[w['id'] for w in want]} at {[w['rpc'] for w in want]}")
        # Every process mounts the CA and its role's pair where [tls] names them.
        tls = cluster.get("tls", {})
        for w in workloads(docs):
            pod = w["spec"]["template"]["spec"]
            for c in pod["containers"]:
                role = ROLE_OF.get(c["args"][0])
                need = [tls.get("ca")] + ([tls[role]["cert"], tls[role]["key"]] if role in tls else [None])
                mounted = set()
                for m in c.get("volumeMounts", []):
                    vol = next((v for v in pod["volumes"] if v["name"] == m["name"]), {})
                    for item in vol.get("secret", {}).get("items", []):
                        mounted.add(f"{m['mountPath']}/{item['path']}")
                for path in need:
                    if path not in mounted:
                        errors.append(f"{name}: {w['kind']}/{w['metadata']['name']} does not "
                                      f"mount {path}, which cluster.toml's [tls] names for {role}")


def schema_errors(rendered):
    import kubernetes_validate
    errors = []
    for name, docs in rendered.items():
        for d in docs:
            try:
                kubernetes_validate.validate(d, KUBERNETES_VERSION, strict=True)
            except Exception as e:  # the validator's errors have several types
                first = str(e).splitlines()[0]
                errors.append(f"{name}: {d.get('kind')}/{d.get('metadata', {}).get('name')}: {first}")
    return errors


def all_errors(rendered, aerolith):
    errors = schema_errors(rendered)
    for docs in rendered.values():
        check_flags_and_env(docs, aerolith, errors)
        check_ports(docs, errors)
    check_peers(rendered, errors)
    check_cluster_toml(rendered, errors)
    return errors


def breaks():
    """(what, mutation of a copy of the rendered overlays) the checks must each catch."""
    def find(rendered, kind, component):
        return next(d for d in rendered["dc1"] if d["kind"] == kind
                    and d["metadata"]["labels"].get("app.kubernetes.io/component") == component)

    def container(rendered, kind, component):
        return find(rendered, kind, component)["spec"]["template"]["spec"]["containers"][0]

    def misspelled_flag(r):
        args = container(r, "Deployment", "gateway")["args"]
        args[args.index("--http-listen")] = "--http-listn"

    def unknown_env(r):
        container(r, "StatefulSet", "storagenode")["env"].append(
            {"name": "AEROLITH_BACKUPS", "value": "/data/backups"})

    def service_port(r):
        find(r, "Service", "gateway")["spec"]["ports"][0]["targetPort"] = 8081

    def probe_port(r):
        probe = container(r, "StatefulSet", "replicator")["readinessProbe"]["exec"]["command"]
        probe[-1] = "https://127.0.0.1:9091/healthz"

    def wrong_peer(r):
        for d in r["dc1"]:
            if d["kind"] == "ConfigMap" and "AEROLITH_PEERS" in d.get("data", {}):
                d["data"]["AEROLITH_PEERS"] = d["data"]["AEROLITH_PEERS"].replace("aerolith-dc2", "aerolith-dc3")

    def scaled_without_cluster_toml(r):
        for docs in r.values():
            for d in docs:
                if d["kind"] == "StatefulSet" and d["spec"]["serviceName"].endswith("node"):
                    d["spec"]["replicas"] = 4

    def missing_key(r):
        vol = next(v for v in find(r, "StatefulSet", "storagenode")["spec"]["template"]["spec"]["volumes"]
                   if v["name"] == "certs")
        vol["secret"]["items"] = [i for i in vol["secret"]["items"] if i["key"] != "storagenode.key"]

    def schema(r):
        find(r, "Deployment", "gateway")["spec"]["replicas"] = "two"

    return [("a misspelled flag", misspelled_flag), ("an environment variable nothing reads", unknown_env),
            ("a Service port nobody listens on", service_port), ("a probe on the wrong port", probe_port),
            ("a peer that is not the other DC's replicator", wrong_peer),
            ("nodes added without cluster.toml", scaled_without_cluster_toml),
            ("a role's key not mounted", missing_key), ("a schema violation", schema)]


def main():
    in_venv(VENV, DEPLOY / "requirements.txt")
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    aerolith = sys.argv[1] if len(sys.argv) > 1 else f"{target}/debug/aerolith"
    if not pathlib.Path(aerolith).exists():
        sys.exit(f"check-kubernetes: {aerolith} is missing; build it first")
    rendered = render()
    print(f"check-kubernetes: rendered {', '.join(f'{k} ({len(v)} objects)' for k, v in rendered.items())}")
    errors = all_errors(rendered, aerolith)
    for e in errors:
        print(f"FAILED: {e}")
    if errors:
        sys.exit(f"check-kubernetes: {len(errors)} problems")
    print("ok: every object fits the Kubernetes " + KUBERNETES_VERSION + " schemas; flags, environment, "
          "ports, peers, cluster.toml and certificates agree with the binary and each other")
    missed = []
    for what, mutate in breaks():
        broken = copy.deepcopy(rendered)
        mutate(broken)
        caught = all_errors(broken, aerolith)
        if caught:
            print(f"ok: {what} is caught: {caught[0]}")
        else:
            missed.append(what)
    if missed:
        sys.exit(f"check-kubernetes: not caught: {', '.join(missed)}")


if __name__ == "__main__":
    main()
