"""Kubernetes workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod): each
container's `command` + `args` with `$(VAR)` from its `env`, and hostPath volume mounts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probes.common.yamlsafe import line_of
from probes.serving.readers.argv import from_argv
from probes.serving.readers.common import argv_of, env_of, interp_tokens
from probes.serving.server import ParsedConfig

K8S_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod", "CronJob"})


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "Pod":
        return spec if isinstance(spec, dict) else None
    if doc.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    tmpl = (spec.get("template") or {}).get("spec") if isinstance(spec, dict) else None
    return tmpl if isinstance(tmpl, dict) else None


def parse_k8s(path: Path, docs: list[Any], text: str, env: dict[str, str]) -> ParsedConfig:
    pc = ParsedConfig(path, "k8s", text=text)
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") not in K8S_KINDS:
            continue
        pod = _pod_spec(doc)
        if not pod:
            continue
        vols = {}
        for v in pod.get("volumes") or []:
            if isinstance(v, dict) and v.get("name"):
                hp = (v.get("hostPath") or {}).get("path") if isinstance(v.get("hostPath"), dict) else None
                vols[v["name"]] = hp
        for c in pod.get("containers") or []:
            if not isinstance(c, dict):
                continue
            cname = str(c.get("name") or "container")
            line = line_of(text, f"name: {cname}")
            problems: list[dict[str, Any]] = []
            cenv = env_of(c.get("env"), env, problems, text, k8s=True)
            argv = argv_of(c.get("command"), problems, line) + argv_of(c.get("args"), problems, line)
            argv = interp_tokens(argv, {**env, **cenv}, problems, line, k8s=True)
            srv = from_argv(
                argv, source="k8s", line=line, name=cname, env=cenv, image=str(c.get("image") or "") or None, text=text
            )
            if srv is None:
                continue
            srv.problems[:0] = problems
            for m in c.get("volumeMounts") or []:
                if isinstance(m, dict) and m.get("mountPath"):
                    host = vols.get(m.get("name"))
                    if host:
                        srv.volumes.append((str(host), str(m["mountPath"])))
            pc.servers.append(srv)
    return pc
