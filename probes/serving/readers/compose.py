"""docker-compose files: each service's `command:`/`entrypoint:`/`environment:`/`volumes:`, variables from
the `.env` beside the file, and the Dockerfile a service is `build:` from (only inside the target).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doctor.core.safeio import read_text_capped
from probes.common.yamlsafe import line_of
from probes.serving.readers.argv import from_argv, image_engine
from probes.serving.readers.common import argv_of, env_of, interp_tree
from probes.serving.readers.dockerfile import DockerfileParts, dockerfile_parts
from probes.serving.server import ParsedConfig, problem


def _dotenv(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    p = folder / ".env"
    try:
        text = read_text_capped(p, 100_000)
    except (OSError, UnicodeDecodeError):
        return out
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, _, v = line.partition("=")
            out[k.strip().removeprefix("export ").strip()] = v.strip().strip("'\"")
    return out


_FOLLOW_KINDS = ("outside", "cannot_follow")


def _build_dockerfile(
    svc: dict[str, Any], compose: Path, root: Path | None, problems: list[dict[str, Any]], line: int
) -> tuple[Path, DockerfileParts] | None:
    """The Dockerfile a compose service is `build:` from, parsed — only when it lies inside the target."""
    build = svc.get("build")
    if isinstance(build, str):
        context, dockerfile, args = build, "Dockerfile", {}
    elif isinstance(build, dict):
        context = str(build.get("context") or ".")
        dockerfile = str(build.get("dockerfile") or "Dockerfile")
        args = build.get("args") or {}
    else:
        return None
    if "://" in context or context.startswith("git@"):
        problems.append(
            problem("cannot_follow", f"build context {context!r} is remote; its Dockerfile was not read", line)
        )
        return None
    path = (compose.parent / context / dockerfile).resolve()
    fence = (root or compose.parent).resolve()
    if fence not in path.parents:
        problems.append(
            problem("outside", f"build Dockerfile {path} is outside the target {fence}; not followed", line)
        )
        return None
    try:
        text = read_text_capped(path, 1_000_000)
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(problem("unparseable", f"build Dockerfile {path.name} cannot be read: {exc}", line))
        return None
    benv: dict[str, str] = {}
    if isinstance(args, dict):
        benv = {str(k): str(v) for k, v in args.items() if v is not None}
    elif isinstance(args, list):
        benv = dict(str(a).partition("=")[::2] for a in args)
    return path, dockerfile_parts(text, benv, [])


def parse_compose(
    path: Path, doc: dict[str, Any], text: str, env: dict[str, str], root: Path | None = None
) -> ParsedConfig:
    pc = ParsedConfig(path, "compose", text=text)
    env = {**_dotenv(path.parent), **env}
    services = doc.get("services")
    if not isinstance(services, dict):
        return pc
    for sname, svc in services.items():
        if not isinstance(svc, dict):
            continue
        problems: list[dict[str, Any]] = []
        svc = interp_tree(svc, env, problems, text)
        line = line_of(text, f"{sname}:")
        built = _build_dockerfile(svc, path, root, problems, line)
        parts = built[1] if built else DockerfileParts()
        senv = {**parts.env, **env_of(svc.get("environment"), env, problems, text)}
        # compose `entrypoint:` replaces the image's ENTRYPOINT and drops its CMD; `command:` replaces CMD.
        if "entrypoint" in svc:
            argv = argv_of(svc.get("entrypoint"), problems, line) + argv_of(svc.get("command"), problems, line)
        else:
            entry = parts.entry[1] if parts.entry else []
            cmd = argv_of(svc.get("command"), problems, line) if "command" in svc else (parts.cmd or (0, []))[1]
            argv = entry + cmd
        image = str(svc.get("image") or "")
        if built and not image_engine(image)[0]:
            image = parts.image or image  # the service's `image:` only names the build result
        srv = from_argv(argv, source="compose", line=line, name=str(sname), env=senv, image=image or None, text=text)
        if srv is not None and built:
            srv.version = srv.version or parts.version
            srv.name = f"{sname} (build {built[0].name})"
        if srv is None:
            engine_like = any(t.startswith(("--lora", "--model", "--enable-lora")) for t in argv)
            pc.problems.extend(
                p for p in problems if image_engine(image)[0] or (engine_like and p["kind"] in _FOLLOW_KINDS)
            )
            continue
        srv.problems[:0] = problems
        vols = svc.get("volumes")
        for v in vols if isinstance(vols, list) else []:  # `volumes: true` is no list of mounts
            if isinstance(v, str):
                parts = v.split(":")
                if len(parts) >= 2:
                    srv.volumes.append((parts[0], parts[1]))
            elif isinstance(v, dict) and v.get("source") and v.get("target"):
                srv.volumes.append((str(v["source"]), str(v["target"])))
        pc.servers.append(srv)
    return pc
