#!/usr/bin/env python3
"""Loads every Sallyport container's configuration with Sallyport's own loader.

The environment and the mounted TOML file of each container are resolved the way the platform
resolves them (compose: the output of `docker-compose config`; Kubernetes: envFrom ConfigMaps,
secretKeyRef and configMapKeyRef, configMap volumes) and handed to the `sallyport` binary, which
rejects unknown keys and invalid values and names the key (server::config). A container whose
command is `migrate` runs exactly that against a scratch database; the others run
`migrate --pending`, which loads and validates the same Settings and only reads the database.

usage: check_config.py --sallyport BIN --database-url URL [--compose FILE.json] [--k8s NAME=FILE.yaml]...
"""

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

IMAGE = re.compile(r"(^|/)sallyport/[a-z-]+(:|$)")


def compose_containers(path):
    """(label, env, args) for each Sallyport service of a `docker-compose config --format json`."""
    project = json.load(open(path))
    configs = project.get("configs", {})
    for name, svc in sorted(project["services"].items()):
        if not IMAGE.search(svc.get("image", "")):
            continue
        env = {k: v for k, v in (svc.get("environment") or {}).items() if v is not None}
        for ref in svc.get("configs", []):
            if env.get("SALLYPORT_CONFIG") == ref.get("target"):
                env["SALLYPORT_CONFIG"] = configs[ref["source"]]["file"]
        yield f"compose/{name}", env, svc.get("command") or []


def k8s_containers(spec, scratch):
    """(label, env, args) for each Sallyport container of the workloads in a kustomize build."""
    name, path = spec.split("=", 1)
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    secrets = {
        d["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()}
        for d in docs
        if d["kind"] == "Secret"
    }
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        pod = d["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            if not IMAGE.search(c["image"]):
                continue
            label = f"{name}/{d['kind'].lower()}/{c['name']}"
            env = {}
            for src in c.get("envFrom", []):
                if "configMapRef" in src:
                    env.update(maps[src["configMapRef"]["name"]])
                if "secretRef" in src:
                    env.update(secrets[src["secretRef"]["name"]])
            for e in c.get("env", []):
                if "value" in e:
                    env[e["name"]] = e["value"]
                elif "secretKeyRef" in e.get("valueFrom", {}):
                    ref = e["valueFrom"]["secretKeyRef"]
                    env[e["name"]] = secrets[ref["name"]][ref["key"]]
                elif "configMapKeyRef" in e.get("valueFrom", {}):
                    ref = e["valueFrom"]["configMapKeyRef"]
                    env[e["name"]] = maps[ref["name"]][ref["key"]]
                else:
                    raise SystemExit(f"{label}: cannot resolve env {e['name']}")
            # configMap volumes become directories here; paths under their mount points follow.
            for m in c.get("volumeMounts", []):
                vol = volumes[m["name"]]
                if "configMap" not in vol:
                    continue
                local = tempfile.mkdtemp(dir=scratch)
                for key, text in maps[vol["configMap"]["name"]].items():
                    with open(os.path.join(local, key), "w") as f:
                        f.write(text)
                mount = m["mountPath"].rstrip("/") + "/"
                cfg = env.get("SALLYPORT_CONFIG", "")
                if cfg.startswith(mount):
                    env["SALLYPORT_CONFIG"] = os.path.join(local, cfg[len(mount) :])
            yield label, env, c.get("args") or []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sallyport", required=True)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--compose", action="append", default=[])
    ap.add_argument("--k8s", action="append", default=[])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        found = [c for p in a.compose for c in compose_containers(p)]
        found += [c for p in a.k8s for c in k8s_containers(p, scratch)]
        # the demo MCP server reads no Sallyport configuration
        found = [c for c in found if c[2][:1] != ["demo-mcp"]]
        # the migration steps first, as on the platforms: the others then find nothing pending
        found.sort(key=lambda c: c[2][:1] != ["migrate"])
        failed = 0
        for label, env, args in found:
            cmd = [a.sallyport, *args] if args[:1] == ["migrate"] else [a.sallyport, "migrate", "--pending"]
            run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
            run_env["SALLYPORT__DATABASE__URL"] = a.database_url
            run_env["SALLYPORT__LOG__FILTER"] = "warn"
            p = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=120)
            shown = " ".join(cmd[1:])
            if p.returncode == 0:
                first = (p.stdout.strip().splitlines() or [""])[0]
                print(f"ok    {label}: `sallyport {shown}` -> {first}")
            else:
                failed += 1
                print(f"FAIL  {label}: `sallyport {shown}` exited {p.returncode}\n{p.stderr.strip()}")
        if not found:
            raise SystemExit("no Sallyport containers found")
        print(f"configuration check: {len(found) - failed} of {len(found)} containers load")
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
