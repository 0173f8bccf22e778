"""Instability detectors over a normalized Series. Pure functions (no findings, no I/O) so the bench can
call them directly; each returns Detections whose `step` is the first step at which the condition is
known from the log up to that step (causal), and whose message carries the numbers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from probes.training.detection import Detection, Kind
from probes.training.series import Series
from probes.training.stats import MAD_SCALE, first_run, trailing_median, trailing_median_mad


def g(x: float | None) -> str:
    if x is None:
        return "missing"
    if not math.isfinite(x):
        return repr(float(x))
    return f"{x:.4g}"


def _finite_loss(s: Series) -> tuple[np.ndarray, np.ndarray]:
    masked = (s.loss == 0.0) & s.has_grad_norm & ~np.isfinite(s.grad_norm)  # HF-masked NaN windows
    ok = s.has_loss & np.isfinite(s.loss) & ~masked
    return s.steps[ok], s.loss[ok]


def non_finite(s: Series, p: dict) -> list[Detection]:
    bad_loss = s.has_loss & ~np.isfinite(s.loss)
    bad_gn = s.has_grad_norm & ~np.isfinite(s.grad_norm)
    masked = s.has_loss & (s.loss == 0.0) & bad_gn
    bad = bad_loss | bad_gn
    if not bad.any():
        return []
    i = int(np.flatnonzero(bad)[0])
    step = int(s.steps[i])
    loss = float(s.loss[i]) if s.has_loss[i] else None
    gn = float(s.grad_norm[i]) if s.has_grad_norm[i] else None
    if masked[i]:
        what = f"loss logged as 0.0 while grad_norm is {g(gn)} (NaN losses masked by logging_nan_inf_filter)"
    else:
        what = f"loss {g(loss)}, grad_norm {g(gn)}"
    count = int(bad.sum())
    last_ok = s.steps[:i][np.isfinite(s.loss[:i]) & s.has_loss[:i]]
    return [
        Detection(
            Kind.NON_FINITE,
            step,
            f"first non-finite value at step {step}: {what}; {count} of {len(s)} logged steps are non-finite",
            marks=[int(x) for x in s.steps[bad][:50]],
            data={
                "first_step": step,
                "loss": loss,
                "grad_norm": gn,
                "masked": bool(masked[i]),
                "masked_steps": int(masked.sum()),
                "non_finite_steps": count,
                "logged_steps": len(s),
                "last_finite_step": int(last_ok[-1]) if last_ok.size else None,
            },
        )
    ]


def loss_spikes(s: Series, p: dict, relaxed: bool = False) -> list[Detection]:
    steps, x = _finite_loss(s)
    if x.size <= p["min_history"]:
        return []
    z_thr = p["z"] * (p["relax"] if relaxed else 1.0)
    min_rel = p["min_rel"] * (p["relax"] if relaxed else 1.0)
    pos = x > 0
    steps, x = steps[pos], x[pos]
    if x.size <= p["min_history"]:
        return []
    # log scale: loss noise is multiplicative, so a spike is a ratio to the recent level
    lx = np.log(x)
    # level: median of the last `level_window` points before i; scale: median absolute step-to-step
    # change over the last `window` points before i (/0.954 = sigma for Gaussian noise). Both exclude
    # the current point and neither is inflated by the loss's own downward trend.
    lmed, _ = trailing_median_mad(lx, int(p["level_window"]), int(p["level_window"]))
    dmed, _ = trailing_median_mad(np.abs(np.diff(lx)), int(p["window"]), int(p["min_history"]) - 1)
    sig = np.concatenate(([np.nan], dmed)) / 0.954
    scale = np.maximum(sig, p["floor_rel"])
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (lx - lmed) / scale
        flag = (z > z_thr) & (lx - lmed > np.log1p(min_rel))
    flag &= ~np.isnan(lmed) & ~np.isnan(sig)
    med = np.exp(lmed)
    hits = np.flatnonzero(flag)
    if hits.size == 0:
        return []
    first = int(hits[0])
    worst = int(hits[np.argmax(z[hits])])
    why = " (group_by_length: thresholds relaxed)" if relaxed else ""
    return [
        Detection(
            Kind.LOSS_SPIKE,
            int(steps[first]),
            f"{hits.size} loss spike{'s' if hits.size > 1 else ''}; first at step {int(steps[first])}: loss "
            f"{g(x[first])} vs rolling median {g(med[first])} (z={z[first]:.1f}, threshold z>{z_thr:g} and "
            f">{min_rel:.0%} above median){why}; largest at step {int(steps[worst])}: {g(x[worst])} vs "
            f"{g(med[worst])} (z={z[worst]:.1f})",
            marks=[int(v) for v in steps[hits][:100]],
            data={
                "first_step": int(steps[first]),
                "value": float(x[first]),
                "baseline": float(med[first]),
                "z": round(float(z[first]), 2),
                "threshold": z_thr,
                "spikes": int(hits.size),
                "largest_step": int(steps[worst]),
                "largest_value": float(x[worst]),
                "window": p["window"],
                "relaxed": relaxed,
            },
        )
    ]


def divergence(s: Series, p: dict) -> list[Detection]:
    steps, x = _finite_loss(s)
    n = x.size
    w = int(p["window"])
    if n < 8:
        return []
    idx = np.arange(n)
    k0 = max(1, min(5, n // 50))
    start = float(np.median(x[:k0]))
    m = trailing_median(x, w)
    # The reference "best" level is taken once the early transient is behind: from the first point (after
    # the first window) at which the smoothed loss is no longer above its value one window earlier. A
    # fine-tune from a strong base often starts low, bumps up while the first updates disturb the model
    # and then settles; the rising side of that bump is not a level to diverge from. A loss that never
    # stops rising never settles, and is left to the start-level and jump checks below.
    settled = (idx >= w) & (m <= m[np.maximum(idx - w, 0)])
    t0 = int(np.argmax(settled)) if settled.any() else n
    valid = idx >= t0
    best = np.minimum.accumulate(np.where(valid, m, np.inf))
    # above the starting level: by more than `start_margin` (larger than a benign early bump) plus the
    # uncertainty of the start estimate (`start_noise` x the loss's own step-to-step noise / sqrt(k0))
    lx = np.log(np.maximum(x[: w + 1], 1e-12))
    sig0 = float(np.median(np.abs(np.diff(lx)))) / 0.954 if lx.size > 1 else 0.0
    margin = math.log1p(p["start_margin"]) + p["start_noise"] * sig0 / math.sqrt(k0)
    with np.errstate(divide="ignore", invalid="ignore"):
        above_start = (idx >= w) & (np.log(np.maximum(m, 1e-12)) - math.log(max(start, 1e-12)) > margin)
    rise = valid & (m > best * p["rise"]) & (m - best > p["min_abs"])
    jump = (m > start * p["jump"]) & (idx >= 3)  # immediate blow-up, before a full window exists
    long_enough = n >= max(p["min_points"], 2 * w)
    cond = (((rise | above_start) & long_enough) | jump) & (x > 0)
    i = first_run(cond, int(p["sustain"]))
    if i < 0:
        return []
    lo = t0 if t0 <= i else w
    onset_guess = lo + int(np.argmin(m[lo : i + 1])) if i >= lo else 0
    if not np.isfinite(best[i]):
        best = np.minimum.accumulate(m)
    last = float(m[-1])
    return [
        Detection(
            Kind.DIVERGENCE,
            int(steps[i]),
            f"loss diverging from step {int(steps[i])}: rolling median ({w} points) {g(m[i])} vs best "
            f"{g(best[i])} at step {int(steps[onset_guess])} (x{m[i] / max(best[i], 1e-12):.2f}, threshold "
            f"x{p['rise']:g}) and starting level {g(start)} (threshold x{math.exp(margin):.2f}); held "
            f"{p['sustain']} points; last rolling median {g(last)}",
            marks=[int(steps[onset_guess]), int(steps[i])],
            data={
                "step": int(steps[i]),
                "value": float(m[i]),
                "best": float(best[i]),
                "best_step": int(steps[onset_guess]),
                "start_level": start,
                "rise_threshold": p["rise"],
                "start_margin": p["start_margin"],
                "start_threshold": round(math.exp(margin), 4),
                "last": last,
            },
        )
    ]


def grad_explosion(s: Series, p: dict, max_grad_norm: float | None = None) -> list[Detection]:
    ok = s.has_grad_norm & np.isfinite(s.grad_norm) & (s.grad_norm > 0)
    steps, gn = s.steps[ok], s.grad_norm[ok]
    out: list[Detection] = []
    if gn.size > 5:
        lg = np.log(gn)
        med, mad = trailing_median_mad(lg, int(p["window"]), int(p["min_history"]))
        emed, _ = trailing_median_mad(lg, int(p["window"]), 5)
        extreme = (lg - emed > math.log(p["extreme"])) & ~np.isnan(emed)
        scale = np.maximum(MAD_SCALE * mad, p["floor_log"])
        with np.errstate(invalid="ignore"):
            z = (lg - med) / scale
            flag = (z > p["z"]) & (lg - med > math.log(p["ratio"])) & ~np.isnan(med)
        flag |= extreme
        med = np.where(np.isnan(med), emed, med)
        z = np.where(np.isnan(z), (lg - emed) / p["floor_log"], z)
        hits = np.flatnonzero(flag)
        if hits.size:
            i = int(hits[0])
            worst = int(hits[np.argmax(gn[hits])])
            out.append(
                Detection(
                    Kind.GRAD_SPIKE,
                    int(steps[i]),
                    f"grad_norm exploded at step {int(steps[i])}: {g(gn[i])} vs rolling median "
                    f"{g(math.exp(med[i]))} (x{math.exp(lg[i] - med[i]):.1f}, z={z[i]:.1f} on log scale; "
                    f"thresholds x{p['ratio']:g} with z>{p['z']:g}, or x{p['extreme']:g} alone); {hits.size} such "
                    f"steps, largest {g(gn[worst])} at step {int(steps[worst])}",
                    marks=[int(v) for v in steps[hits][:100]],
                    data={
                        "first_step": int(steps[i]),
                        "value": float(gn[i]),
                        "baseline": float(math.exp(med[i])),
                        "ratio": round(float(math.exp(lg[i] - med[i])), 2),
                        "z": round(float(z[i]), 2),
                        "count": int(hits.size),
                        "max": float(gn[worst]),
                    },
                )
            )
    out += _grad_growth(steps, gn, p)
    if max_grad_norm and max_grad_norm > 0 and gn.size:
        over = gn > p["clip_factor"] * max_grad_norm
        if int(over.sum()) >= p["clip_min_count"]:
            i = int(np.flatnonzero(over)[0])
            out.append(
                Detection(
                    Kind.GRAD_OVER_CLIP,
                    int(steps[i]),
                    f"grad_norm above {p['clip_factor']:g}x max_grad_norm ({max_grad_norm:g}) at "
                    f"{int(over.sum())} of {gn.size} steps, first at step {int(steps[i])} ({g(gn[i])}); "
                    f"max {g(float(gn.max()))}: clipping is absorbing huge updates",
                    marks=[int(v) for v in steps[over][:100]],
                    data={
                        "first_step": int(steps[i]),
                        "value": float(gn[i]),
                        "max_grad_norm": max_grad_norm,
                        "threshold": p["clip_factor"] * max_grad_norm,
                        "count": int(over.sum()),
                    },
                    severity="warning",
                )
            )
    return out


def _grad_growth(steps: np.ndarray, gn: np.ndarray, p: dict) -> list[Detection]:
    """Sustained growth: the rolling median of log grad_norm (`growth_window` points) stays more than
    x`growth` above the early level (median of the first `growth_window` points after the first
    `growth_skip`, which warmup makes unusual) for `growth_sustain` points. A gradual explosion moves the
    rolling median with it, so the spike test above never sees it; a healthy LoRA run's early rise (lora_B
    starts at 0, the norm grows x2-x10 while it does) stays well below the factor."""
    w, k, sustain = int(p["growth_window"]), int(p["growth_skip"]), int(p["growth_sustain"])
    n = gn.size
    if n < k + 2 * w + sustain - 1:
        return []
    lg = np.log(gn)
    early = float(np.median(lg[k : k + w]))
    m = trailing_median(lg, w)
    idx = np.arange(n)
    thr = math.log(p["growth"])
    cond = (idx >= k + 2 * w - 1) & (m - early > thr)  # the rolling window lies past the early one
    i = first_run(cond, sustain)
    if i < 0:
        return []
    j0 = i - sustain + 1  # where the held stretch began
    e0 = math.exp(early)
    top = int(np.argmax(gn))
    factor = math.exp(m[i] - early)
    return [
        Detection(
            Kind.GRAD_GROWTH,
            int(steps[i]),
            f"grad_norm growing steadily: rolling median ({w} points) {g(math.exp(m[i]))} at step {int(steps[i])} "
            f"is x{factor:.1f} its early level {g(e0)} (median of steps {int(steps[k])}-{int(steps[k + w - 1])}; "
            f"threshold x{p['growth']:g}), held {sustain} points from step {int(steps[j0])}; grad_norm "
            f"{g(float(gn[i]))} there, largest {g(float(gn[top]))} at step {int(steps[top])}",
            marks=[int(steps[k]), int(steps[k + w - 1]), int(steps[j0]), int(steps[i])],
            data={
                "first_step": int(steps[i]),
                "held_from_step": int(steps[j0]),
                "value": float(math.exp(m[i])),
                "grad_norm": float(gn[i]),
                "early_level": e0,
                "early_steps": [int(steps[k]), int(steps[k + w - 1])],
                "factor": round(factor, 2),
                "threshold": p["growth"],
                "window": w,
                "sustain": sustain,
                "max": float(gn[top]),
                "max_step": int(steps[top]),
            },
        )
    ]


def not_learning(s: Series, p: dict) -> list[Detection]:
    out: list[Detection] = []
    nan_gn = s.has_grad_norm & ~np.isfinite(s.grad_norm)
    zero = s.has_loss & (s.loss == 0.0) & ~nan_gn
    i = first_run(zero, p["zero_run"])
    if i >= 0:
        j0 = i - p["zero_run"] + 1
        out.append(
            Detection(
                Kind.LOSS_ZERO,
                int(s.steps[j0]),
                f"loss is exactly 0.0 at {int(zero.sum())} logged steps from step {int(s.steps[j0])} with a "
                f"finite grad_norm: nothing is being learned (masked labels, packing bug, or empty targets)",
                marks=[int(v) for v in s.steps[zero][:100]],
                data={"first_step": int(s.steps[j0]), "zero_steps": int(zero.sum())},
            )
        )
    steps, x = _finite_loss(s)
    if x.size >= p["min_points"]:
        k = max(3, x.size // 10)
        a, b = float(np.median(x[:k])), float(np.median(x[-k:]))
        drop = (a - b) / abs(a) if a else 0.0
        if -p["flat_rel"] * 10 < drop < p["flat_rel"] and not (a == 0.0 and b == 0.0):
            out.append(
                Detection(
                    Kind.LOSS_FLAT,
                    int(steps[-1]),
                    f"loss is flat: median of the first {k} points {g(a)}, of the last {k} points {g(b)} "
                    f"({drop:+.2%} change over steps {int(steps[0])}-{int(steps[-1])}; threshold "
                    f"{p['flat_rel']:.0%} drop)",
                    marks=[int(steps[0]), int(steps[-1])],
                    data={"start": a, "end": b, "drop": round(drop, 5), "threshold": p["flat_rel"]},
                    severity="warning",
                )
            )
    return out


def _eval_loss(s: Series) -> tuple[str, np.ndarray, np.ndarray] | None:
    """The eval loss series (its name, steps, values), its non-finite points left out (TRN001 reports them)."""
    for name in ("eval_loss", "eval_eval_loss"):
        if name in s.evals:
            st, va = s.evals[name]
            break
    else:
        name = next((n for n in s.evals if "loss" in n), "")
        if not name:
            return None
        st, va = s.evals[name]
    ok = np.isfinite(va)
    return name, st[ok], va[ok]


def overfitting(s: Series, p: dict) -> list[Detection]:
    ev = _eval_loss(s)
    if ev is None:
        return []
    name, est, eva = ev
    if eva.size < p["min_evals"]:
        return []
    b = int(np.argmin(eva))
    best, last = float(eva[b]), float(eva[-1])
    span = max(int(est[-1] - est[0]), 1)
    if not (last > best * (1 + p["rise"]) and (est[-1] - est[b]) >= p["gap"] * span):
        return []
    steps, x = _finite_loss(s)
    before = x[(steps <= est[b])][-max(3, x.size // 20) :] if x.size else x
    after = x[steps > est[b]]
    if before.size and after.size:
        tb = float(np.median(before))
        ta = float(np.median(after[-max(3, after.size // 5) :]))
        if ta > tb * (1 + p["train_tol"]):  # train loss rose as well: not overfitting (rather divergence)
            return []
    else:
        tb = ta = float("nan")
    # first eval step at which the rise above the best was already visible
    j = b + 1 + int(np.argmax(eva[b + 1 :] > best * (1 + p["rise"])))
    ck = s.meta.get("best_model_checkpoint")
    rise = last / best - 1
    return [
        Detection(
            Kind.EVAL_RISE,
            int(est[j]),
            f"{name} rose from its best {g(best)} at step {int(est[b])} to {g(last)} at step {int(est[-1])} "
            f"(+{rise:.1%}, threshold +{p['rise']:.0%}; error from +{p['error_rise']:.0%}) while train loss fell "
            f"{g(tb)} -> {g(ta)}" + (f"; best checkpoint {ck}" if ck else f"; keep {_checkpoint_for(s, int(est[b]))}"),
            severity="error" if rise >= p["error_rise"] else None,
            marks=[int(est[b]), int(est[j])],
            data={
                "metric": name,
                "best": best,
                "best_step": int(est[b]),
                "last": last,
                "last_step": int(est[-1]),
                "train_before": tb,
                "train_after": ta,
                "eval_steps": [int(v) for v in est[:300]],
                "eval_values": [float(v) for v in eval_points(eva[:300])],
            },
        )
    ]


def eval_points(a: np.ndarray) -> list:
    return [float(v) if math.isfinite(v) else None for v in a]


def lr_too_high(s: Series, p: dict, recipe: dict, rule: Any = None) -> list[Detection]:
    """Peak logged LR above the alarm level for what the run trains (lrranges: stage from the recipe,
    else from the trainer its keys show; method; optimizer)."""
    from probes.training.lrranges import lr_range

    lr = s.learning_rate[s.has_learning_rate & np.isfinite(s.learning_rate)]
    if lr.size == 0:
        return []
    peak = float(lr.max())
    rng = lr_range(recipe, lambda _rule, name: p[name], rule, getattr(s, "trainer", "sft"))
    limit = rng.alarm
    if peak <= limit:
        return []
    i = int(np.flatnonzero(s.has_learning_rate & (s.learning_rate == peak))[0])
    return [
        Detection(
            Kind.LR_PEAK_HIGH,
            int(s.steps[i]),
            f"peak learning rate {g(peak)} at step {int(s.steps[i])} is {peak / limit:.1f}x the alarm level "
            f"{g(limit)} for {rng.what} ({rng.says()})",
            marks=[int(s.steps[i])],
            data={
                "peak_lr": peak,
                "threshold": limit,
                "method": recipe.get("method", "lora"),
                "judged_as": rng.what,
                "range": [rng.lo, rng.hi],
                "source": rng.source,
                "step": int(s.steps[i]),
            },
            severity="error" if peak > 10 * limit else None,
        )
    ]


_DECAYING = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "reduce_lr_on_plateau",
)


def lr_schedule(s: Series, p: dict, recipe: dict) -> list[Detection]:
    has = s.has_learning_rate & np.isfinite(s.learning_rate)
    lr, st = s.learning_rate[has], s.steps[has]
    if lr.size < 3:
        return []
    out: list[Detection] = []
    peak = float(lr.max())
    zero = lr == 0.0
    if zero.all():
        out.append(
            Detection(
                Kind.LR_ALL_ZERO,
                int(st[0]),
                f"learning rate is 0 at all {lr.size} logged steps: nothing is being updated",
                marks=[int(st[0])],
                data={"zero_steps": int(zero.sum()), "peak_lr": peak},
                severity="error",
            )
        )
    elif int(zero.sum()) >= p["zero_min"] and zero.mean() >= p["zero_frac"]:
        i = int(np.flatnonzero(zero)[0])
        out.append(
            Detection(
                Kind.LR_STUCK_ZERO,
                int(st[i]),
                f"learning rate stuck at 0 from step {int(st[i])} ({int(zero.sum())} of "
                f"{lr.size} logged steps, {zero.mean():.0%}; threshold {p['zero_frac']:.0%}): "
                "the schedule ended before the run did",
                marks=[int(st[i])],
                data={"zero_steps": int(zero.sum()), "first_zero_step": int(st[i])},
            )
        )
    warm = recipe.get("warmup_ratio"), recipe.get("warmup_steps")
    no_warm_cfg = all(w in (0, 0.0, None) for w in warm) and any(w is not None for w in warm)
    early = st[0] <= max(p["warmup_first_step"], 1)
    if peak > p["warmup_lr"] and lr[0] >= 0.98 * peak and (no_warm_cfg or (early and warm == (None, None))):
        out.append(
            Detection(
                Kind.LR_NO_WARMUP,
                int(st[0]),
                f"no warmup at a high learning rate: lr {g(float(lr[0]))} already at its peak "
                f"{g(peak)} at the first logged step {int(st[0])} (threshold {g(p['warmup_lr'])})",
                marks=[int(st[0])],
                data={"first_lr": float(lr[0]), "peak_lr": peak, "warmup": list(warm)},
                severity="warning",
            )
        )
    sched = str(recipe.get("lr_scheduler_type") or "").lower().split(".")[-1]
    max_steps = recipe.get("max_steps") or s.meta.get("max_steps")
    if sched in _DECAYING and lr.size >= 5 and peak > 0:
        progress = (st[-1] / max_steps) if isinstance(max_steps, (int, float)) and max_steps and max_steps > 0 else None
        if (progress is None or progress >= 0.5) and lr[-1] >= 0.99 * peak:
            out.append(
                Detection(
                    Kind.LR_NO_DECAY,
                    int(st[-1]),
                    f"schedule {sched!r} is configured but the learning rate never decayed: "
                    f"{g(float(lr[-1]))} at step {int(st[-1])} vs peak {g(peak)}"
                    + (f" ({progress:.0%} of max_steps {max_steps})" if progress is not None else ""),
                    marks=[int(st[-1])],
                    data={"scheduler": sched, "last_lr": float(lr[-1]), "peak_lr": peak},
                    severity="warning",
                )
            )
    return out


# ---------------------------------------------------------------- logs as real runs write them (#14)


def eval_non_finite(s: Series, p: dict) -> list[Detection]:
    """eval_loss (or another eval loss) NaN/Infinity at some evaluations, or best_metric stored as
    NaN/Infinity, whatever the train side looks like: evaluation is broken (fp16 overflow in eval, an
    empty eval batch, labels all masked in the eval set)."""
    bad_names: list[tuple[str, np.ndarray, np.ndarray]] = []
    for name, (st, va) in s.evals.items():
        if "loss" in name and va.size and not np.isfinite(va).all():
            bad_names.append((name, st, va))
    bm = s.meta.get("best_metric")
    bm_bad = isinstance(bm, float) and not math.isfinite(bm)
    if not bad_names and not bm_bad:
        return []
    _, tl = _finite_loss(s)
    train = f"the train loss is finite (last {g(float(tl[-1]))})" if tl.size else "no finite train loss logged"
    if bad_names:
        name, st, va = bad_names[0]
        bad = ~np.isfinite(va)
        bsteps = [int(v) for v in st[bad]]
        shown = ", ".join(map(str, bsteps[:8])) + (", ..." if len(bsteps) > 8 else "")
        kinds = sorted({g(float(v)) for v in va[bad]})
        msg = f"{name} is {'/'.join(kinds)} at {len(bsteps)} of {va.size} evaluations (steps {shown}) while {train}" + (
            f"; best_metric stored as {bm!r}" if bm_bad else ""
        )
        step = bsteps[0]
        data = {"metric": name, "eval_steps": bsteps[:100], "evaluations": int(va.size), "best_metric": bm}
    else:
        step = int(s.meta.get("best_global_step") or (s.steps[-1] if len(s) else 0))
        msg = f"best_metric is stored as {bm!r}: an evaluation produced a non-finite metric; {train}"
        data = {"best_metric": repr(bm)}
    data["side"] = "eval"
    return [Detection(Kind.EVAL_NON_FINITE, step, msg, marks=[step], data=data)]


def short_run(s: Series, p: dict, min_points: int) -> list[Detection]:
    """Fewer than `min_points` points can still be decisive: a loss rising monotonically to x`short_rise`
    its first value (divergence), or jumping x`short_jump` between two logs and staying there (divergence)
    or coming back (spike). The message says how little evidence there is."""
    steps, x = _finite_loss(s)
    pos = x > 0
    steps, x = steps[pos], x[pos]
    n = x.size
    if n < p["short_min"] or n >= min_points:
        return []
    thin = f"only {n} logged points: little evidence, but a healthy run does not do this"
    r = x[1:] / x[:-1]
    if np.all(r >= 1 - p["short_dip"]) and x[-1] >= p["short_rise"] * x[0]:
        return [
            Detection(
                Kind.SHORT_RISE,
                int(steps[-1]),
                f"loss rose monotonically from {g(x[0])} at step {int(steps[0])} to {g(x[-1])} at step "
                f"{int(steps[-1])} (x{x[-1] / x[0]:.1f}, threshold x{p['short_rise']:g}); {thin}",
                marks=[int(steps[0]), int(steps[-1])],
                data={"start": float(x[0]), "last": float(x[-1]), "points": n, "short_run": True},
            )
        ]
    j = int(np.argmax(r))
    if r[j] < p["short_jump"]:
        return []
    before, after = float(np.median(x[: j + 1])), x[j + 1 :]
    stays = after.size >= 2 and bool(np.all(after >= before * p["short_jump"] / 2))
    kind = Kind.SHORT_JUMP if stays else Kind.SHORT_SPIKE
    tail = f"and stayed there ({after.size} points, last {g(x[-1])})" if stays else f"then {g(x[-1])} at the end"
    return [
        Detection(
            kind,
            int(steps[j + 1]),
            f"loss jumped x{r[j]:.1f} from {g(x[j])} at step {int(steps[j])} to {g(x[j + 1])} at step "
            f"{int(steps[j + 1])} (threshold x{p['short_jump']:g}) {tail}; {thin}",
            marks=[int(steps[j]), int(steps[j + 1])],
            data={"before": float(x[j]), "after": float(x[j + 1]), "ratio": round(float(r[j]), 2), "points": n},
        )
    ]


def stuck_loss(s: Series, p: dict, min_points: int) -> list[Detection]:
    """A loss frozen at exactly one non-zero value for `frozen_run` logs (the update is not reaching the
    weights, or the log repeats a stale value), and a loss that never goes below its starting level over
    the whole run (`never_min` points or more: a healthy run's loss drops within its first logs)."""
    out: list[Detection] = []
    steps, x = _finite_loss(s)
    if x.size >= p["frozen_run"]:
        same = np.concatenate(([False], (x[1:] == x[:-1]) & (np.abs(x[1:]) >= p["frozen_min"])))
        i = first_run(same, int(p["frozen_run"]) - 1)
        if i >= 0:
            j0 = i - int(p["frozen_run"]) + 1
            k = i
            while k + 1 < x.size and x[k + 1] == x[i]:
                k += 1
            out.append(
                Detection(
                    Kind.LOSS_FROZEN,
                    int(steps[j0]),
                    f"loss frozen at exactly {float(x[i])!r} for {k - j0 + 1} consecutive logs (steps {int(steps[j0])}-"
                    f"{int(steps[k])}; threshold {p['frozen_run']}): the weights are not changing, or the logged "
                    "value is stale",
                    marks=[int(steps[j0]), int(steps[k])],
                    data={"value": float(x[i]), "first_step": int(steps[j0]), "last_step": int(steps[k])},
                )
            )
    if x.size >= p["never_min"]:
        start, low = float(x[0]), float(x[1:].min())
        tail = float(np.median(x[-max(2, x.size // 3) :]))
        if start > 0 and low >= start * (1 - p["never_tol"]) and tail >= start:
            out.append(
                Detection(
                    Kind.LOSS_NEVER_BELOW,
                    int(steps[-1]),
                    f"loss never went below its starting level: first {g(start)} at step {int(steps[0])}, lowest "
                    f"after it {g(low)}, last {g(float(x[-1]))} at step {int(steps[-1])} over {x.size} logged "
                    "points: the run is not learning (a learning rate far too high or 0, frozen adapter, "
                    "labels all masked)",
                    marks=[int(steps[0]), int(steps[-1])],
                    data={"start": start, "lowest": low, "last": float(x[-1]), "points": int(x.size)},
                )
            )
    return out


def _checkpoint_for(s: Series, step: int) -> str:
    ck = s.meta.get("best_model_checkpoint")
    if isinstance(ck, str) and ck:
        return ck.rstrip("/").split("/")[-1]
    save = s.meta.get("save_steps")
    if isinstance(save, (int, float)) and save >= 1:
        n = int(step // int(save)) * int(save)
        if n > 0:
            return f"checkpoint-{n}" + (
                " (saved every " + f"{int(save)} steps; the one at or before the best)" if n != step else ""
            )
    return f"the checkpoint nearest step {step}"


def overfitting_rise(s: Series, p: dict) -> list[Detection]:
    """Eval loss rising for `consecutive` evaluations in a row after its minimum, by at least `mild_rise`,
    while the train loss keeps falling: overfitting, mild included. Warning below `error_rise`, error at
    or above it. Names the best step and the checkpoint to keep."""
    ev = _eval_loss(s)
    if ev is None:
        return []
    name, est, eva = ev
    c = int(p["consecutive"])
    if eva.size < c + 1:
        return []
    b = int(np.argmin(eva))
    after = eva[b:]
    if after.size < c + 1 or not np.all(np.diff(after) > 0):
        return []
    best, last = float(eva[b]), float(eva[-1])
    rise = last / best - 1 if best > 0 else 0.0
    if rise < p["mild_rise"]:
        return []
    steps, x = _finite_loss(s)
    tb = x[steps <= est[b]]
    ta = x[steps > est[b]]
    if (
        tb.size
        and ta.size
        and float(np.median(ta[-max(2, ta.size // 3) :]))
        > float(np.median(tb[-max(2, tb.size // 5) :])) * (1 + p["train_tol"])
    ):
        return []  # train loss rising too: divergence, not overfitting
    keep = _checkpoint_for(s, int(est[b]))
    return [
        Detection(
            Kind.EVAL_RISE_STREAK,
            int(est[b + c]),
            f"{name} rose for {after.size - 1} evaluations in a row after its best {g(best)} at step {int(est[b])}: "
            f"{g(last)} at step {int(est[-1])} (+{rise:.1%}; warning from +{p['mild_rise']:.0%}, error from "
            f"+{p['error_rise']:.0%}) while the train loss kept falling; keep {keep}",
            marks=[int(est[b]), int(est[-1])],
            data={
                "metric": name,
                "best": best,
                "best_step": int(est[b]),
                "last": last,
                "rise": round(rise, 4),
                "keep": keep,
                "eval_steps": [int(v) for v in est[:300]],
                "eval_values": [float(v) for v in eva[:300]],
            },
            severity="error" if rise >= p["error_rise"] else "warning",
        )
    ]


def many_epochs(s: Series, p: dict) -> list[Detection]:
    """Hundreds of epochs over a dataset of a few batches: memorisation risk, said on its own."""
    ep = s.epoch[np.isfinite(s.epoch)]
    if ep.size == 0 or not len(s):
        return []
    last = float(ep.max())
    if last < p["epochs_max"]:
        return []
    i = int(np.flatnonzero(np.isfinite(s.epoch) & (s.epoch == last))[0])
    per_epoch = float(s.steps[i]) / last if last else 0.0
    bs = s.meta.get("train_batch_size")
    size = f" of about {per_epoch * bs:.0f} samples" if isinstance(bs, (int, float)) and per_epoch else ""
    return [
        Detection(
            Kind.MANY_EPOCHS,
            int(s.steps[i]),
            f"{last:.0f} epochs over a dataset{size} ({per_epoch:.1f} steps per epoch; threshold "
            f"{p['epochs_max']:g} epochs): the adapter sees each example hundreds of times and memorises it",
            marks=[int(s.steps[i])],
            data={"epochs": last, "steps_per_epoch": round(per_epoch, 2), "samples": size.strip() or None},
        )
    ]
