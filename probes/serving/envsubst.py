"""Variable interpolation the way shells, compose and Kubernetes do it, without guessing.

`${VAR:-default}` / `${VAR-default}` use the default when VAR is not known; `${VAR}` / `$VAR` unknown
stay as written and are reported as unresolved. Kubernetes uses `$(VAR)` from the container's env.
The environment is what the file itself declares (shell assignments, ENV/ARG, compose `.env`,
container env) plus `[serving] env` in the settings; the process environment is never read.
"""

from __future__ import annotations

import re

_SHELL = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-=?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_K8S = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def interpolate(value: str, env: dict[str, str], unresolved: list[str] | None = None, *, k8s: bool = False) -> str:
    """Substitute known variables; unknown names (without a default) are appended to `unresolved`."""
    if "$" not in value:
        return value

    def k8s_sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        if name in env:
            return env[name]
        if unresolved is not None:
            unresolved.append(name)
        return m.group(0)

    def shell_sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        known = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if op in (":-", "-", ":=", "="):
            return env[name] if known else interpolate(arg or "", env, unresolved)
        if op in (":+", "+"):
            return interpolate(arg or "", env, unresolved) if known else ""
        if known:
            return env[name]
        if unresolved is not None:
            unresolved.append(name)
        return m.group(0)

    return (_K8S if k8s else _SHELL).sub(k8s_sub if k8s else shell_sub, value)
