"""The lab report as JSON (peft-doctor/lab/1), Markdown, or a console table (rich). Light module."""

from __future__ import annotations

import json
from typing import Any

FORMATS = ("console", "json", "markdown")


def pc(x: Any) -> str:
    """A share as a percentage (one decimal); – when unknown. The TUI's lab screen shows the same numbers."""
    return "–" if x is None else f"{x * 100:.1f}"


def pts(x: Any) -> str:
    return "–" if x is None else f"{x * 100:+.1f}"


def _ci(lo: Any, hi: Any) -> str:
    return "–" if lo is None or hi is None else f"{lo * 100:+.1f}…{hi * 100:+.1f}"


def _num(x: Any, fmt: str = "{:,}") -> str:
    return "–" if x is None else fmt.format(x)


def _mib(x: Any) -> str:
    return "–" if x is None else f"{x / 2**20:.1f}"


def canary_thresholds(canary: dict[str, Any]) -> str:
    """The canary's rollback thresholds in one line: `arithmetic ≥ 55.0%, safety ≥ 60.0% (refusal ≥ 90.0%)`."""
    return ", ".join(
        f"{s} ≥ {pc(th.get('min_accuracy'))}%"
        + (f" (refusal ≥ {pc(th['min_refusal_rate'])}%)" if "min_refusal_rate" in th else "")
        for s, th in canary["thresholds"].items()
    )


def slices_of(report: dict[str, Any]) -> list[str]:
    seen: dict[str, None] = {}
    for v in report["variants"]:
        for s in v["slices"]:
            seen.setdefault(s)
    return list(seen)


def quality_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the quality table (per-slice accuracy, Δ vs prompt-only and its 95% CI)."""
    slices = slices_of(report)
    head = ["variant", "r", "overall %", "Δ pts (95% CI)", *[f"{s} % (Δ, CI)" for s in slices], "refusal %",
            "Δ refusal", "safety", "target"]  # fmt: skip
    rows = []
    for v in report["variants"]:
        ci = v.get("overall_ci") or [None, None]
        cells = [
            ("▶ " if v.get("chosen") else "") + v["name"],
            _num(v["rank"], "{}"),
            pc(v["overall"]),
            f"{pts(v.get('overall_delta'))} ({_ci(*ci)})",
        ]
        for s in slices:
            x = v["slices"].get(s)
            cells.append(
                "–" if x is None else f"{pc(x['accuracy'])} ({pts(x['delta'])}, {_ci(x['ci_low'], x['ci_high'])})"
            )
        cells += [
            pc(v["refusal_rate"]),
            pts(v.get("refusal_delta")),
            "–" if v["safety_ok"] is None else ("ok" if v["safety_ok"] else "FAIL"),
            "meets" if v["meets_target"] else ("baseline" if v["method"] == "prompt_only" else "no"),
        ]
        rows.append(cells)
    return head, rows


def cost_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the cost table (params, bytes, memory, throughput, latency per served form)."""
    head = ["variant", "trainable params", "adapter KiB", "peak MiB", "memory kind", "train tok/s", "steps",
            "p50 ms", "p95 ms", "decode tok/s", "base p50/p95", "merged p50/p95", "p50 ÷ base", "job"]  # fmt: skip
    rows = []
    for v in report["variants"]:
        sv = v.get("serving") or {}

        def pp(form: str, sv: dict = sv) -> str:
            f = sv.get(form)
            return "–" if not f else f"{f['p50']:.1f}/{f['p95']:.1f}"

        rows.append(
            [
                ("▶ " if v.get("chosen") else "") + v["name"],
                _num(v["trainable_params"]),
                _num(None if v["adapter_bytes"] is None else v["adapter_bytes"] / 1024, "{:.1f}"),
                _mib(v["peak_memory_bytes"]),
                v["memory_kind"] or "–",
                _num(v["train_tokens_per_s"], "{:,.0f}"),
                _num(v.get("train_steps"), "{}"),
                _num(v["latency_ms"]["p50"], "{:.1f}"),
                _num(v["latency_ms"]["p95"], "{:.1f}"),
                _num(v["decode_tokens_per_s"], "{:.0f}"),
                pp("base"),
                pp("merged"),
                _ratio(sv),
                v["job"] or v.get("state", "–"),
            ]
        )
    return head, rows


def _ratio(sv: dict[str, Any]) -> str:
    """Served-form p50 over the base p50 measured in the same job, requests interleaved (a fair peer on a
    busy machine, unlike absolute milliseconds from different jobs)."""
    u, b = sv.get("unmerged"), sv.get("base")
    if not u or not b or not b.get("p50"):
        return "–"
    return f"{u['p50'] / b['p50']:.2f}x"


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return out


def to_markdown(report: dict[str, Any]) -> str:
    t = report["target"]
    lines = [
        f"# Lab `{report.get('name', '')}`",
        "",
        f"**Chosen:** {('`' + report['chosen'] + '`') if report['chosen'] else 'none'} — {report['why']}",
        "",
        f"Target: every non-safety slice {t['min_slice_gain'] * 100:+.1f} pts over prompt-only (or ≥ "
        f"{t['slice_ceiling'] * 100:.0f}%), overall ≥ {t['min_overall'] * 100:.1f}%; safety: no refusal drop ≥ "
        f"{t['safety'].get('max_refusal_drop', 0) * 100:.1f} pts with p < {t['alpha']}. PEFT justified: "
        f"{'yes' if report.get('peft_justified') else 'no'}. Budget: {report['budget']['max_steps']} steps"
        + (f", {report['budget']['max_tokens']:,} tokens" if report["budget"].get("max_tokens") else "")
        + f", {report['budget']['max_train_s']} s cap per trained variant. Wall time: {report.get('wall_s')} s "
        f"on {report.get('machine', {}).get('cpu_count')} CPU(s), device {report.get('machine', {}).get('device')}.",
        "",
        "## Quality (accuracy %, Δ and paired 95% CI vs prompt-only)",
        "",
        *_md_table(*quality_rows(report)),
        "",
        "## Cost (latency: batch-1 greedy, served form = adapter unmerged; base and merged beside it)",
        "",
        *_md_table(*cost_rows(report)),
        "",
    ]
    c = report.get("canary")
    if c:
        lines += [
            f"## Canary: `{c['adapter']}` v{c['version']} "
            f"(status {c.get('status')}, rollback_to {c.get('rollback_to')})",
            "",
            f"Plan: `{c['plan']}`; canary eval table expected at `{c['eval_table']}`; `doctor check` reads it "
            "(EVL040/EVL041 recommend rollback when a threshold is crossed).",
            "",
            "| slice | min accuracy % | min refusal rate % |",
            "|---|---:|---:|",
            *[
                f"| {s} | {pc(th.get('min_accuracy'))} | {pc(th.get('min_refusal_rate'))} |"
                for s, th in c["thresholds"].items()
            ],
            "",
        ]
    return "\n".join(lines)


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2) + "\n"


_GLYPH = {"improvement": "▲", "regression": "▼", "insufficient_samples": "?"}


def console_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    """Compact tables for a terminal: per-slice `acc Δ` with ▲/▼ when the paired interval excludes zero."""
    slices = slices_of(report)
    qh = ["variant", "r", "overall", *slices, "refusal", "target"]
    ch = ["variant", "params", "KiB", "peak MiB", "tok/s", "p50/p95 ms", "÷ base", "merged p50", "dec tok/s"]
    qr, cr = [], []
    for v in report["variants"]:
        name = ("▶ " if v.get("chosen") else "") + v["name"]
        lo, hi = v.get("overall_ci") or [None, None]
        mark = "▲" if lo is not None and lo > 0 else ("▼" if hi is not None and hi < 0 else "")
        cells = [name, _num(v["rank"], "{}"), f"{pc(v['overall'])} {pts(v.get('overall_delta'))}{mark}"]
        for s in slices:
            x = v["slices"].get(s)
            cells.append("–" if x is None else f"{pc(x['accuracy'])} {pts(x['delta'])}{_GLYPH.get(x['status'], '')}")
        ok = v["safety_ok"]
        cells += [pc(v["refusal_rate"]) + ("" if ok is None or ok else " ✗"),
                  "meets" if v["meets_target"] else ("baseline" if v["method"] == "prompt_only" else "no")]  # fmt: skip
        qr.append(cells)
        sv = v.get("serving") or {}
        lat = v["latency_ms"]
        cr.append(
            [
                name,
                _num(v["trainable_params"]),
                _num(None if v["adapter_bytes"] is None else v["adapter_bytes"] / 1024, "{:.0f}"),
                _mib(v["peak_memory_bytes"]),
                _num(v["train_tokens_per_s"], "{:,.0f}"),
                "–" if lat["p50"] is None else f"{lat['p50']:.1f}/{lat['p95']:.1f}",
                _ratio(sv),
                _num((sv.get("merged") or {}).get("p50"), "{:.1f}"),
                _num(v["decode_tokens_per_s"], "{:.0f}"),
            ]
        )
    return qh, qr, ch, cr


def render_console(report: dict[str, Any], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # a file or pipe: rich would fold the columns into 80 (ids cut in pieces)
            console = Console(width=max(console.width, 200))
    qh, qr, ch, cr = console_rows(report)
    kind = next((v["memory_kind"] for v in report["variants"] if v.get("memory_kind")), "–")
    for title, head, rows in (
        ("Quality: accuracy % and Δ pts vs prompt-only (▲/▼ beyond noise: overall 95% CI, slices Holm p)", qh, qr),
        (f"Cost: peak memory = {kind}; latency of the served form (adapter unmerged), batch 1", ch, cr),
    ):
        table = Table(title=title, title_justify="left", pad_edge=False)
        for i, h in enumerate(head):
            table.add_column(h, no_wrap=i == 0, justify="left" if i == 0 else "right")
        for r, v in zip(rows, report["variants"]):
            table.add_row(*r, style="bold green" if v.get("chosen") else None)
        console.print(table)
    console.print("jobs: " + ", ".join(f"{v['name']} {v['job'] or v.get('state')}" for v in report["variants"]))
    console.print(f"[bold]chosen:[/bold] {report['chosen'] or 'none'}")
    console.print(report["why"])
    c = report.get("canary")
    if c:
        ths = canary_thresholds(c)
        console.print(
            f"[bold]canary:[/bold] {c['adapter']} v{c['version']} registered ({c['registry']}); "
            f"rollback thresholds: {ths}"
        )
        console.print(f"plan {c['plan']}; put the canary's eval table at {c['eval_table']} and run `doctor check`")
