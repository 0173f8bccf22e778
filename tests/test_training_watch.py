"""`doctor watch`: follow growing logs, reading only what was appended; a NaN shows within ~1 s."""

from __future__ import annotations

import io
import json
import threading
import time

from probes.training.watch import LogWatcher, run_watch


def _append(path, obj):
    with path.open("a") as fh:
        fh.write(json.dumps(obj) + "\n")


def test_run_watch_reports_nan_appended_to_a_live_log(tmp_path):
    # The latency target (about a second) is measured by bench/watch_latency.py, not asserted here.
    p = tmp_path / "trainer_log.jsonl"
    for i in range(1, 40):
        _append(p, {"current_steps": i, "loss": 2 - i * 0.01, "lr": 1e-5})
    out, stop = io.StringIO(), threading.Event()
    th = threading.Thread(target=run_watch, args=([tmp_path], None, out, 0.1, stop))
    th.start()
    try:
        time.sleep(0.4)
        assert "TRN001" not in out.getvalue()
        t0 = time.monotonic()
        with p.open("a") as fh:
            fh.write('{"current_steps": 40, "loss": NaN, "lr": 1e-5}\n')
        while "TRN001" not in out.getvalue() and time.monotonic() - t0 < 60:
            time.sleep(0.02)
        assert "TRN001" in out.getvalue(), out.getvalue()
    finally:
        stop.set()
        th.join()
    assert "first non-finite value at step 40" in out.getvalue()


def test_watcher_reads_only_appended_and_partial_lines(tmp_path):
    p = tmp_path / "trainer_log.jsonl"
    for i in range(1, 30):
        _append(p, {"current_steps": i, "loss": 2 - i * 0.01})
    w = LogWatcher(p)
    assert w.poll() == [] and w._offset == p.stat().st_size
    with p.open("a") as fh:
        fh.write('{"current_steps": 30, "loss": ')  # half-written line: waits
    assert w.poll() == [] and len(w.series) == 29
    with p.open("a") as fh:
        fh.write("Infinity}\n")
    [f] = w.poll()
    assert f.rule == "TRN001" and w.poll() == []


def test_watcher_tfevents_and_rewritten_trainer_state(tmp_path):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    w = EventFileWriter(str(tmp_path / "tb"))

    def add(step, v):
        w.add_event(
            event_pb2.Event(
                step=step,
                summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="train/loss", simple_value=v)]),
            )
        )
        w.flush()

    for i in range(1, 25):
        add(i, 2 - i * 0.01)
    ev = next((tmp_path / "tb").glob("events.out.tfevents*"))
    lw = LogWatcher(ev)
    assert lw.poll() == []
    add(25, float("nan"))
    assert [f.rule for f in lw.poll()] == ["TRN001"]
    w.close()

    st = tmp_path / "trainer_state.json"
    hist = [{"loss": 2 - i * 0.02, "grad_norm": 0.5, "step": i} for i in range(1, 25)]
    st.write_text(json.dumps({"log_history": hist}))
    sw = LogWatcher(st)
    assert sw.poll() == []
    hist.append({"loss": 0.0, "grad_norm": float("nan"), "step": 25})
    st.write_text(json.dumps({"log_history": hist}))
    time.sleep(0.01)
    assert [f.rule for f in sw.poll()] == ["TRN001"]


def test_run_watch_on_a_folder_without_logs_says_so_then_picks_one_up(tmp_path):
    out, stop = io.StringIO(), threading.Event()
    th = threading.Thread(target=run_watch, args=([tmp_path], None, out, 0.05, stop))
    th.start()
    try:
        deadline = time.monotonic() + 60
        while "no training logs under" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert f"no training logs under {tmp_path} yet" in out.getvalue()
        _append(tmp_path / "trainer_log.jsonl", {"current_steps": 1, "loss": 2.0, "lr": 1e-5})
        while "watching" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "watching" in out.getvalue() and "trainer_log.jsonl" in out.getvalue()
    finally:
        stop.set()
        th.join()
