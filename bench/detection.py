"""Detection accuracy of the training-log detectors on a labelled set.

The set: (1) the demo world's real runs (fixtures/rollouts/*/train, labelled by scenario.json) when they
exist; (2) seeded synthetic healthy curves (warmup + exponential decay + noise of varied level and tail,
100-2000 steps) and the same curves with injected faults: spikes of several sizes, NaN at step k (plain
and HF-masked), slow drifts; (3) extra healthy curves of a fine-tune from an already-good base (low start
0.05-0.3, an early transient bump of +20..60% that settles below the start; `--bump-runs`, own seed
stream), with the same injected faults. Every curve carries a grad_norm series shaped like a LoRA run's
(lora_B starts at 0, so the norm starts low and rises x2-x10 over the first 2-15% of the run, then decays
slowly; lognormal noise, Student-t in the heavy-tailed runs; the first 1-3 warmup points off by x0.3-x3 in
half the runs), drawn from an own seed stream so the loss curves stay the same; grad_explosion faults are
injected into it: gradual exponential growth (x50-x1000 over 20-200 logged steps, then held) and sudden
spikes (x10-x100, 1-3 points). Prints recall and false-alarm rate per symptom and the median detection
lead (logged steps from onset to the first finding). Thresholds are the rules' defaults.

    .venv/bin/python bench/detection.py [--runs 400] [--bump-runs 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from probes.training.analyze import detect  # noqa: E402
from probes.training.rules import LOG_RULES  # noqa: E402
from probes.training.series import from_columns  # noqa: E402

SYMPTOMS = ("non_finite", "loss_spike", "divergence", "grad_explosion", "not_learning")


def healthy(rng: np.random.Generator, rng_g: np.random.Generator):
    n = int(rng.integers(100, 2001))
    t = np.arange(1, n + 1, dtype=float)
    init, floor = rng.uniform(1.5, 4.0), rng.uniform(0.2, 1.2)
    floor = min(floor, init * 0.6)
    tau = rng.uniform(0.05, 0.5) * n
    sigma = rng.choice([0.01, 0.03, 0.06, 0.1, 0.15])
    heavy = rng.random() < 0.35  # noisy but healthy: Student-t noise
    # Student-t(5) scaled to the same std: occasional 3-4 sigma outliers a healthy run really has
    noise = rng.standard_t(5, n) * sigma / np.sqrt(5 / 3) if heavy else rng.normal(0, sigma, n)
    loss = (floor + (init - floor) * np.exp(-t / tau)) * np.exp(noise)
    peak = rng.choice([5e-5, 1e-4, 2e-4, 3e-4])
    warm = max(1, int(n * rng.choice([0.0, 0.03, 0.1])))
    lr = np.where(t < warm, peak * t / warm, peak * 0.5 * (1 + np.cos(np.pi * (t - warm) / max(n - warm, 1))))
    gsig = rng.uniform(0.1, 0.35)
    g0 = rng.uniform(0.3, 3.0)
    gnoise = rng.normal(0, gsig, n)  # (drawn as before: the main stream, hence the loss curves, unchanged)
    # grad_norm of a LoRA run: lora_B starts at 0, so the norm starts low and rises x2-x10 while lora_B
    # grows (over 2-15% of the run), then decays slowly with the loss; own stream `rng_g`
    rise = float(np.exp(rng_g.uniform(np.log(2), np.log(10))))
    t_rise = max(3.0, rng_g.uniform(0.02, 0.15) * n)
    shape = (1 + (rise - 1) * (1 - np.exp(-t / t_rise))) / rise
    if heavy:
        gnoise = rng_g.standard_t(5, n) * gsig / np.sqrt(5 / 3)
    gn = g0 * shape * (0.5 + 0.5 * np.exp(-t / tau)) * np.exp(gnoise)
    odd = rng_g.random() < 0.5  # warmup: the first 1-3 logged points are off either way
    k_odd = int(rng_g.integers(1, 4))
    f_odd = np.exp(rng_g.uniform(np.log(0.3), np.log(3.0), k_odd))
    if odd:
        gn[:k_odd] *= f_odd
    return {
        "steps": t.astype(np.int64),
        "loss": loss,
        "grad_norm": gn,
        "lr": lr,
        "sigma": float(sigma),
        "heavy": heavy,
        "init": init,
        "floor": floor,
        "tau": tau,
        "gsig": float(gsig),
        "rise": rise,
        "bump": False,
    }


def healthy_bump(rng: np.random.Generator, rng_g: np.random.Generator):
    """A fine-tune from an already-good base: low starting loss (0.05-0.3), an early transient bump of
    +20..60% while the adapter's first updates disturb the model, then a decline that settles below the
    start. Healthy (the corrupt demo run's salvaged first half looks like this)."""
    c = healthy(rng, rng_g)
    n = c["steps"].size
    t = c["steps"].astype(float)
    start = rng.uniform(0.05, 0.3)
    settle = start * rng.uniform(0.5, 0.9)  # where the loss ends up: below the start
    tau = rng.uniform(0.1, 0.4) * n
    amp = rng.uniform(0.2, 0.6)  # bump height at its peak, relative to the start
    tp = max(3.0, rng.uniform(0.02, 0.1) * n)  # steps to the peak of the bump
    bump = 1 + amp * (t / tp) * np.exp(1 - t / tp)
    trend = settle + (start - settle) * np.exp(-np.maximum(t - 2 * tp, 0) / tau)  # decline after the bump
    noise = c["loss"] / (c["floor"] + (c["init"] - c["floor"]) * np.exp(-t / c["tau"]))
    c["loss"] = trend * bump * noise
    c["bump"] = True
    return c


def series_of(c):
    return from_columns(c["steps"], c["loss"], c["grad_norm"], c["lr"])


def inject(c, kind, rng):
    c = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in c.items()}
    n = c["steps"].size
    k = int(rng.integers(max(40, int(0.2 * n)), int(0.9 * n)))
    c["onset"] = int(c["steps"][k])
    if kind == "non_finite":
        if rng.random() < 0.5:
            c["loss"][k:] = np.nan
            c["grad_norm"][k:] = np.nan
        else:  # HF masked signature
            c["loss"][k:] = 0.0
            c["grad_norm"][k:] = np.nan
        c["label"] = "nan" if np.isnan(c["loss"][k]) else "masked"
    elif kind == "loss_spike":
        # sizes 2x..10x; a size inside the run's own noise envelope (below exp(6 sigma)) is not a spike
        # any detector can see, so the next size up is used there
        sizes = [x for x in (2.0, 3.0, 5.0, 10.0) if np.log(x) >= 6 * c["sigma"]]
        size = float(rng.choice(sizes))
        width = int(rng.integers(1, 4))
        c["loss"][k : k + width] *= size
        c["grad_norm"][k : k + width] *= size * 2
        c["label"] = f"x{size:g}"
    elif kind == "divergence":
        double = float(rng.choice([30, 80, 200]))  # logged steps for the loss to double
        c["label"] = f"doubles in {double:g} steps"
        double = min(double, (n - 40) // 2)
        # onset early enough that the loss at least doubles before the run ends (else it is no divergence yet)
        k = int(rng.integers(max(40, int(0.2 * n)), max(max(40, int(0.2 * n)) + 1, n - int(double))))
        c["onset"] = int(c["steps"][k])
        r = np.log(2) / double
        ramp = np.exp(r * np.arange(n - k))
        c["loss"][k:] *= ramp
        c["grad_norm"][k:] *= ramp**2
    return c


def inject_grad(c, rng):
    """A grad_explosion fault in the grad_norm only (the loss left as it is, so only the grad-norm detector
    can see it): gradual exponential growth to xF over D logged steps, then held to the end; or a sudden
    spike of 1-3 points."""
    c = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in c.items()}
    n = c["steps"].size
    lo = max(40, int(0.2 * n))
    if rng.random() < 0.6:
        factor = float(rng.choice([50, 200, 1000]))
        dur = int(rng.choice([20, 60, 200]))
        c["label"] = f"growth x{factor:g} in {dur}"
        dur = min(dur, n - lo - 20)  # onset early enough that the full factor is reached and held 20 points
        k = int(rng.integers(lo, max(lo + 1, n - dur - 20)))
        ramp = np.exp(np.log(factor) * np.minimum(np.arange(n - k) / dur, 1.0))
        c["grad_norm"][k:] *= ramp
    else:
        # sizes x10..x100; one inside the run's own noise envelope (below exp(6 sigma)) is not a spike
        # any detector can see, so the next size up is used there (as for loss spikes)
        sizes = [x for x in (10.0, 30.0, 100.0) if np.log(x) >= 6 * c["gsig"]]
        size = float(rng.choice(sizes))
        width = int(rng.integers(1, 4))
        k = int(rng.integers(lo, int(0.9 * n)))
        c["grad_norm"][k : k + width] *= size
        c["label"] = f"spike x{size:g}"
    c["onset"] = int(c["steps"][k])
    return c


def first_detect(dets, symptom, onset=None):
    """First flagged step at or after the onset (a flag before it is a false alarm, not a hit)."""
    steps = [m for r, d in dets if symptom in r.symptoms for m in ([d.step, *list(d.marks)])]
    if onset is not None:
        steps = [m for m in steps if m >= onset]
    return min(steps) if steps else None


def fixture_runs():
    out = []
    for sc in sorted((ROOT / "fixtures" / "rollouts").glob("*/scenario.json")):
        train = sc.parent / "train"
        if not train.is_dir():
            continue
        from doctor.core.settings import Settings
        from doctor.engine import check

        label = json.loads(sc.read_text())
        rep = check([train], Settings())
        got = sorted({s for f in rep.findings if f.rule.startswith("TRN") for s in f.symptoms})
        out.append((sc.parent.name, label.get("symptoms", []), got))
    return out


# Symptoms the log detectors can raise: the only labels a training log can be judged on.
TRAINING_SYMPTOMS = {s for r in LOG_RULES for s in r.symptoms} - {"input_unreadable", "run_too_short"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=400, help="healthy curves (each also gets one fault of every kind)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bump-runs", type=int, default=100, help="extra healthy curves that start low with an early bump")
    ap.add_argument("--set", action="append", help="override a tunable, e.g. TRN002.z=8 (for tuning)")
    ap.add_argument("--realistic", type=int, default=60, help="realistic logs per class (and 4x as many healthy)")
    ap.add_argument("--only-realistic", action="store_true", help="skip the synthetic section")
    args = ap.parse_args()
    if args.only_realistic:
        return realistic(args.realistic, args.seed)
    rng = np.random.default_rng(args.seed)
    param = None
    if args.set:
        over = {}
        for kv in args.set:
            k, v = kv.split("=")
            rid, name = k.split(".")
            over.setdefault(rid, {})[name] = float(v)

        def param(rule, name):
            return over.get(rule.id, {}).get(name, rule.params[name])

    kw = {"param": param} if param else {}
    t0 = time.perf_counter()
    fa = {s: 0 for s in SYMPTOMS}
    hit = {k: 0 for k in ("non_finite", "loss_spike", "divergence", "grad_explosion")}
    total = {k: 0 for k in hit}
    leads = {k: [] for k in hit}
    by_label: dict[str, list[int]] = {}
    fa_noisy = n_noisy = fa_bump = n_bump = 0
    fa_bump_kind = {s: 0 for s in SYMPTOMS}
    # the low-start bump curves draw from their own stream: the standard set stays the same curves
    rng_bump = np.random.default_rng([args.seed, 1])
    # grad-norm shapes and grad_explosion faults: an own stream too, so the loss curves stay the same
    rng_g = np.random.default_rng([args.seed, 2])
    for i in range(args.runs + args.bump_runs):
        if i >= args.runs:
            rng = rng_bump
        c = healthy(rng, rng_g) if i < args.runs else healthy_bump(rng, rng_g)
        dets = detect(series_of(c), {}, **kw)
        kinds = {s for r, d in dets for s in r.symptoms}
        for s in SYMPTOMS:
            fa[s] += s in kinds
        if c["heavy"] or c["sigma"] >= 0.1:
            n_noisy += 1
            fa_noisy += bool(kinds & set(SYMPTOMS))
        if c["bump"]:
            n_bump += 1
            fa_bump += bool(kinds & set(SYMPTOMS))
            for s in SYMPTOMS:
                fa_bump_kind[s] += s in kinds
        for kind in hit:
            f = inject_grad(c, rng_g) if kind == "grad_explosion" else inject(c, kind, rng)
            dets = detect(series_of(f), {}, **kw)
            step = first_detect(dets, kind, f["onset"])
            total[kind] += 1
            ok = step is not None
            hit[kind] += ok
            by_label.setdefault(f"{kind} {f['label']}", [0, 0])
            by_label[f"{kind} {f['label']}"][0] += ok
            by_label[f"{kind} {f['label']}"][1] += 1
            if ok:
                leads[kind].append(step - f["onset"])
    dt = time.perf_counter() - t0
    print(
        f"detection bench: {args.runs + n_bump} healthy synthetic runs (100-2000 steps; {n_bump} of them start "
        f"low with an early bump; seed {args.seed}), "
        f"{sum(total.values())} injected faults, {dt:.1f}s"
    )
    print(f"{'symptom':<16}{'recall':>9}{'false alarms':>14}{'median lead':>13}  target")
    targets = {
        "non_finite": "recall 100%",
        "loss_spike": "recall>=95% FA<=5%",
        "divergence": "recall>=95% FA<=5%",
        "grad_explosion": "recall>=95% FA<=2%",
    }
    for s in SYMPTOMS:
        rec = f"{hit[s] / total[s]:.1%}" if s in hit else "-"
        lead = f"{statistics.median(leads[s]):.0f}" if leads.get(s) else "-"
        print(f"{s:<16}{rec:>9}{fa[s] / (args.runs + args.bump_runs):>14.1%}{lead:>13}  {targets.get(s, '')}")
    print(f"any false alarm on noisy-but-healthy runs: {fa_noisy}/{n_noisy}")
    per = ", ".join(f"{s} {v}" for s, v in fa_bump_kind.items() if v)
    print(f"any false alarm on low-start early-bump runs: {fa_bump}/{n_bump}" + (f" ({per})" if per else ""))
    print("recall by injected fault:")
    for label, (h, n) in sorted(by_label.items()):
        print(f"  {label:<40}{h}/{n} = {h / n:.0%}")
    fx = fixture_runs()
    if fx:
        print("demo-world runs (fixtures/rollouts/*/train):")
        for name, want, got in fx:
            ok = set(want) & TRAINING_SYMPTOMS
            print(
                f"  {name:<20} labelled {want} -> found {got} "
                f"{'OK' if ok <= set(got) else 'MISSED ' + str(sorted(ok - set(got)))}"
            )
    else:
        print("demo-world runs: none present (fixtures/rollouts/*/train not built); injected set only")
    return realistic(args.realistic, args.seed)


def realistic(per_class: int, seed: int) -> int:
    """Section 2: logs as real runs write them (bench/realistic_logs.py), written to disk in their
    framework's format and read back through the readers, every detector at its default thresholds."""
    import tempfile

    import realistic_logs as rl

    from probes.training.readers import read_log

    rng = np.random.default_rng([seed, 14])
    t0 = time.perf_counter()
    hits: dict[str, list[int]] = {}
    by_variant: dict[str, list[int]] = {}
    misses: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        k = 0

        def rules_of(fmt, entries, meta):
            nonlocal k
            k += 1
            path = rl.write(Path(tmp) / str(k), fmt, entries, meta)
            [(_, s)] = read_log(path)
            return {(r.id, d.severity or r.severity.value) for r, d in detect(s, {})}

        for cls, gen in rl.FAULTS.items():
            for _ in range(per_class):
                variant, fmt, entries, meta = gen(rng)
                got = rules_of(fmt, entries, meta)
                ok = bool({rid for rid, _ in got} & rl.CLASSES[cls])
                hits.setdefault(cls, [0, 0])
                hits[cls][0] += ok
                hits[cls][1] += 1
                by_variant.setdefault(f"{cls} {variant}", [0, 0])
                by_variant[f"{cls} {variant}"][0] += ok
                by_variant[f"{cls} {variant}"][1] += 1
                if not ok and len(misses) < 10:
                    misses.append(f"{cls} {variant}: found {sorted(got)}")
        fa_any: dict[str, list[int]] = {}
        fa_err: dict[str, list[int]] = {}
        alarms: dict[str, int] = {}
        fa_cls: dict[str, list[int]] = {}  # class -> [healthy runs where its rules fired, healthy runs]
        fe_cls: dict[str, int] = {}
        for _ in range(4 * per_class):
            variant, fmt, entries, meta = rl.healthy(rng)
            got = {(rid, sev) for rid, sev in rules_of(fmt, entries, meta) if sev != "info"}
            for table, bad in ((fa_any, bool(got)), (fa_err, any(sev == "error" for _, sev in got))):
                table.setdefault(variant, [0, 0])
                table[variant][0] += bad
                table[variant][1] += 1
            for rid, _ in got:
                alarms[rid] = alarms.get(rid, 0) + 1
            for cls, rules in rl.CLASSES.items():
                fa_cls.setdefault(cls, [0, 0])
                fa_cls[cls][0] += any(rid in rules for rid, _ in got)
                fa_cls[cls][1] += 1
                fe_cls.setdefault(cls, 0)
                fe_cls[cls] += any(rid in rules and sev == "error" for rid, sev in got)
    dt = time.perf_counter() - t0
    n_h = sum(v[1] for v in fa_any.values())
    print(
        f"\nrealistic logs (bench/realistic_logs.py, seed {seed}): {sum(v[1] for v in hits.values())} faulty, "
        f"{n_h} healthy, written in their framework's format and read back, {dt:.1f}s"
    )
    targets = {"non_finite": 1.0}
    print(f"{'class':<16}{'recall':>9}{'false alarms':>14}{'FA errors':>11}  target")
    for cls, (h, n) in hits.items():
        want = targets.get(cls, 0.95)
        a, m = fa_cls[cls]
        ok = h / n >= want and a / m <= 0.05 and fe_cls[cls] / m <= 0.02
        print(
            f"{cls:<16}{h / n:>9.1%}{a / m:>14.1%}{fe_cls[cls] / m:>11.1%}  recall >= {want:.0%}, FA <= 5%, "
            f"FA errors <= 2%: {'OK' if ok else 'MISSED'}"
        )
    fa = sum(v[0] for v in fa_any.values()) / n_h
    fe = sum(v[0] for v in fa_err.values()) / n_h
    print(
        f"false alarms on healthy runs, any rule: warning/error {fa:.1%} (target <= 5%), errors {fe:.1%} (target <= 2%)"
    )
    for variant in sorted(fa_any):
        a, n = fa_any[variant]
        print(f"  healthy {variant:<14}{a}/{n} alarms, {fa_err[variant][0]} errors")
    if alarms:
        print("  alarms raised on healthy runs: " + ", ".join(f"{r} x{c}" for r, c in sorted(alarms.items())))
    print("recall by variant:")
    for label, (h, n) in sorted(by_variant.items()):
        print(f"  {label:<40}{h}/{n} = {h / n:.0%}")
    for m in misses:
        print(f"  missed: {m}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
