"""Lab screen: the `doctor lab` comparison table, plots of quality vs rank, memory vs rank and latency, the
decision and the canary thresholds; the chosen variant is marked ▶/★. While a lab runs (its state.json is
newer than its report) the table shows each variant's job state and progress from the job store instead.

Labs are found under the scanned rollouts: `<rollout>/.doctor/lab/<name>/{report,state}.json`. Polls in a
thread worker; the next poll is scheduled when the previous one finishes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from doctor.render.lab_report import canary_thresholds, pc, pts
from doctor.tui.commands import bindings
from doctor.tui.widgets import lab_plots
from doctor.tui.widgets.findings import SummaryBar
from doctor.tui.widgets.plot_view import PlotView

if TYPE_CHECKING:
    from doctor.tui.app import DoctorApp

COLUMNS = ("variant", "r", "overall %", "Δ pts (95% CI)", "refusal %", "params", "adapter KiB", "peak MiB",
           "train tok/s", "p50/p95 ms", "decode tok/s", "target")  # fmt: skip


LEGEND = "● LoRA  ◆ QLoRA  ─ prompt-only  ★ chosen   latency bars: base (grey), adapter unmerged (cyan), merged (green)"


def find_labs(roots: list[Path]) -> list[Path]:
    """Lab folders (holding report.json or state.json) under the rollouts' .doctor/lab/, sorted."""
    out: list[Path] = []
    for root in roots:
        base = Path(root) / ".doctor" / "lab"
        if base.is_dir():
            out += sorted(d for d in base.iterdir() if (d / "report.json").is_file() or (d / "state.json").is_file())
    return out


def load_lab(folder: Path) -> dict[str, Any]:
    """{"report": dict | None, "running": [(variant, job dict | None)] | None, "error": str}."""
    out: dict[str, Any] = {"folder": folder, "report": None, "running": None, "error": ""}
    rp, sp = folder / "report.json", folder / "state.json"
    try:
        if rp.is_file():
            out["report"] = json.loads(rp.read_text(encoding="utf-8"))
        if sp.is_file() and (not rp.is_file() or sp.stat().st_mtime > rp.stat().st_mtime):
            state = json.loads(sp.read_text(encoding="utf-8"))
            from doctor.jobs.store import JobStore

            store = JobStore(folder.parents[2])
            running = []
            for name, v in (state.get("variants") or {}).items():
                try:
                    job = store.get(v["job"]).to_dict() if v.get("job") else None
                except KeyError:
                    job = None
                running.append((name, job))
            out["running"] = running
    except (OSError, ValueError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


class LabSnapshot(Message):
    def __init__(self, labs: list[Path], data: dict[str, Any] | None) -> None:
        self.labs, self.data = labs, data
        super().__init__()


def row_cells(v: dict[str, Any], chosen: str | None) -> list[Text | str]:
    ci = v.get("overall_ci") or [None, None]
    lat = v.get("latency_ms") or {}
    mark = "▶ " if v["name"] == chosen else "  "
    target = "meets" if v.get("meets_target") else ("baseline" if v["method"] == "prompt_only" else "no")
    style = "bold green" if v["name"] == chosen else ("red" if target == "no" else "")
    return [
        Text(mark + v["name"], style=style),
        "–" if v.get("rank") is None else str(v["rank"]),
        pc(v.get("overall")),
        f"{pts(v.get('overall_delta'))} ({pts(ci[0])}…{pts(ci[1])})",
        pc(v.get("refusal_rate")),
        "–" if v.get("trainable_params") is None else f"{v['trainable_params']:,}",
        "–" if v.get("adapter_bytes") is None else f"{v['adapter_bytes'] / 1024:.1f}",
        "–" if v.get("peak_memory_bytes") is None else f"{v['peak_memory_bytes'] / 2**20:.1f}",
        "–" if v.get("train_tokens_per_s") is None else f"{v['train_tokens_per_s']:,.0f}",
        "–" if lat.get("p50") is None else f"{lat['p50']:.1f}/{lat['p95']:.1f}",
        "–" if v.get("decode_tokens_per_s") is None else f"{v['decode_tokens_per_s']:.0f}",
        Text(target, style=style),
    ]


class LabScreen(Screen):
    SCOPE = "lab"
    BINDINGS = bindings("lab")
    AUTO_FOCUS = "#lab-table"
    DEFAULT_CSS = """
    #lab-table { height: auto; max-height: 12; }
    #lab-plots { height: 14; }
    #lab-plots PlotView { width: 1fr; height: 14; }
    #lab-why { height: auto; padding: 0 1; }
    #lab-legend { height: auto; padding: 0 1; color: $text-muted; }
    #lab-canary { height: auto; padding: 0 1; }
    .-narrow #lab-plots { layout: vertical; height: auto; }
    """

    app: DoctorApp  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__(id="lab")
        self.labs: list[Path] = []
        self.index = 0
        self.data: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield SummaryBar(id="lab-summary")
        with VerticalScroll(id="lab-body"):
            yield DataTable(id="lab-table", cursor_type="row", zebra_stripes=True)
            with Horizontal(id="lab-plots"):
                yield PlotView(id="lab-quality")
                yield PlotView(id="lab-memory")
                yield PlotView(id="lab-latency")
            yield Static(LEGEND, id="lab-legend")
            yield Static(id="lab-why")
            yield Static(id="lab-canary")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        t = self.query_one("#lab-table", DataTable)
        for c in COLUMNS:
            t.add_column(c, key=c)
        self.query_one("#lab-summary", SummaryBar).update(Text(" Lab  looking for labs…", style="bold"))
        self.poll()

    def roots(self) -> list[Path]:
        return self.app.roots() or [p.resolve() for p in self.app.paths if p.is_dir()]

    @work(thread=True, exclusive=True, exit_on_error=False, group="lab-poll")
    def poll(self) -> None:
        labs = find_labs(self.roots())
        data = load_lab(labs[min(self.index, len(labs) - 1)]) if labs else None
        self.post_message(LabSnapshot(labs, data))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        done = event.state in (WorkerState.SUCCESS, WorkerState.ERROR)
        if event.worker.group == "lab-poll" and done and self.is_attached:
            self.set_timer(max(self.app.job_poll_s, 1.0), self.poll)

    def on_lab_snapshot(self, msg: LabSnapshot) -> None:
        self.labs = msg.labs
        changed = self.data is None or msg.data is None or _key(msg.data) != _key(self.data)
        self.data = msg.data
        if changed:
            self.show()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_switch_lab(self, step: int) -> None:
        if len(self.labs) > 1:
            self.index = (self.index + step) % len(self.labs)
            self.data = None
            self.poll()

    def action_refresh_lab(self) -> None:
        self.data = None
        self.poll()

    # ----------------------------------------------------------------------------- drawing

    def show(self) -> None:
        t = self.query_one("#lab-table", DataTable)
        t.clear()
        summary = self.query_one("#lab-summary", SummaryBar)
        why, canary = self.query_one("#lab-why", Static), self.query_one("#lab-canary", Static)
        plots = [self.query_one(f"#lab-{k}", PlotView) for k in ("quality", "memory", "latency")]
        d = self.data
        if d is None:
            summary.update(
                Text.assemble((" Lab ", "bold reverse"), "  no lab under these rollouts: run `doctor lab run SPEC`")
            )
            why.update(Text("`doctor lab init ROLLOUT -o lab.toml` writes a spec (docs/lab.md).", style="dim"))
            canary.update("")
            for p in plots:
                p.show_plot(None, empty="")
            return
        rep, running = d["report"], d["running"]
        name = d["folder"].name
        which = f" ({self.index + 1}/{len(self.labs)}, [ ] to switch)" if len(self.labs) > 1 else ""
        if running is not None:
            done = sum(1 for _, j in running if j and j["state"] in ("succeeded", "failed", "cancelled"))
            summary.update(Text.assemble((" Lab ", "bold reverse"), (f" {name}{which}", "bold"),
                                         f"  running: {done}/{len(running)} variants done"))  # fmt: skip
            for vname, job in running:
                state = job["state"] if job else "queued"
                prog = f"{job['step']}/{job['max_steps']}" if job and job.get("max_steps") else ""
                cells: list[Text | str] = [Text("  " + vname), *["" for _ in COLUMNS[1:-1]], f"{state} {prog}"]
                t.add_row(*cells)
        if rep is not None:
            if running is None:
                summary.update(
                    Text.assemble(
                        (" Lab ", "bold reverse"),
                        (f" {name}{which}", "bold"),
                        "  chosen: ",
                        (rep.get("chosen") or "none", "bold green" if rep.get("chosen") else "bold red"),
                        f"  PEFT justified: {'yes' if rep.get('peft_justified') else 'no'}",
                        f"  wall {rep.get('wall_s')} s",
                    )
                )
                for v in rep.get("variants", []):
                    t.add_row(*row_cells(v, rep.get("chosen")))
            why.update(Text("Why: " + rep.get("why", ""), style=""))
            c = rep.get("canary")
            if c:
                ths = canary_thresholds(c)
                canary.update(
                    Text.assemble(
                        ("Canary: ", "bold"),
                        f"{c['adapter']} v{c['version']} ({c.get('status')}, rollback_to {c.get('rollback_to')}); "
                        f"rollback when {ths}",
                    )
                )
            else:
                canary.update(Text("No canary: no variant met the target.", style="dim"))
            plots[0].show_plot(lambda w, h, r=rep: lab_plots.quality_plot(r, w, h))
            plots[1].show_plot(lambda w, h, r=rep: lab_plots.memory_plot(r, w, h))
            plots[2].show_plot(lambda w, h, r=rep: lab_plots.latency_plot(r, w, h))
        else:
            why.update(Text("The report appears when every variant has run.", style="dim"))
            canary.update("")
            for p in plots:
                p.show_plot(None, empty="")
        if d["error"]:
            why.update(Text(f"cannot read {d['folder']}: {d['error']}", style="red"))


def _key(d: dict[str, Any]) -> Any:
    """What decides a redraw: the folder, the report's end, and each running job's state and step."""
    rep = d.get("report") or {}
    run = tuple((n, j and (j["state"], j["step"])) for n, j in (d.get("running") or []))
    return (str(d["folder"]), rep.get("wall_s"), rep.get("chosen"), run, d.get("error"))
