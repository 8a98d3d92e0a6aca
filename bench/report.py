"""The benchmark's figures as people read them: percentiles, ranges across runs, a table."""

from __future__ import annotations

from typing import Any

from bench.stats import percentile

HEADLINE = ("outputs_to_posted_ms", "p50"), ("outputs_to_posted_ms", "p99")
PER_GENERATION = ("bot_cpu_ms_per_generation", "database_trips_per_generation",
                  "replicate_calls_per_generation", "discord_calls_per_generation",
                  "loop_lag_p99_ms")


def summary(samples: list[float]) -> dict[str, float]:
    return {f"p{p}": round(percentile(samples, p), 1) for p in (50, 95, 99)}


def spread(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each figure's [lowest, highest] across runs."""
    figures: dict[str, list[float]] = {}
    for section, key in HEADLINE:
        values = [run[section][key] for run in runs]
        figures[f"{section}.{key}"] = [min(values), max(values)]
    for key in PER_GENERATION:
        values = [run[key] for run in runs]
        figures[key] = [min(values), max(values)]
    return figures


def _range(pair: list[float]) -> str:
    low, high = pair
    return f"{low:g}" if low == high else f"{low:g}–{high:g}"


def table(results: dict[str, Any]) -> str:
    machine, settings = results["machine"], results["settings"]
    rt = f"{settings['round_trip_ms']:g} ms"
    rows = [("machine", f"{machine['cpus']} CPUs, Python {machine['python']}, "
             f"{machine['system']}", "target")]
    for mode, figures in results.get("realistic", {}).items():
        r = figures["range"]
        head = f"{settings['rate']:g}/s, {rt}, {mode}"
        rows += [
            (f"{head}: outputs → posted p50 (ms)", _range(r["outputs_to_posted_ms.p50"]),
             f"≤ {settings['round_trip_ms'] + 20:g}"),
            (f"{head}: outputs → posted p99 (ms)", _range(r["outputs_to_posted_ms.p99"]),
             "≤ 150"),
            (f"{head}: bot CPU per generation (ms)", _range(r["bot_cpu_ms_per_generation"]),
             "≤ 8"),
            (f"{head}: database trips per generation",
             _range(r["database_trips_per_generation"]), "≤ 8"),
            (f"{head}: Replicate / Discord calls per generation",
             f"{_range(r['replicate_calls_per_generation'])} / "
             f"{_range(r['discord_calls_per_generation'])}", ""),
            (f"{head}: loop lag p99 (ms)", _range(r["loop_lag_p99_ms"]), "≤ 20"),
        ]
        long = figures["long_jobs"]
        rows.append((f"jobs outlasting a {figures['long_jobs_hold_seconds']:g} s hold, {mode}"
                     ": Replicate calls per generation",
                     f"{long['replicate_calls_per_generation']} (outputs → posted p50 "
                     f"{long['outputs_to_posted_ms']['p50']} ms)",
                     "≤ 1.2 with webhooks" if mode == "webhooks" else ""))
    s = results.get("stress")
    rows += [] if s is None else [
        (f"stress: {s['jobs']} at 200/s, outputs → posted (ms)",
         f"p50 {s['outputs_to_posted_ms']['p50']}  p99 {s['outputs_to_posted_ms']['p99']}", ""),
        ("stress: loop lag p99 / answer p99 (ms)",
         f"{s['loop_lag_p99_ms']} / {s['answer_ms']['p99']} ({s['answered_too_late']} after "
         "3 s)", ""),
        ("stress: peak RSS (MB) / RSS per job in flight (kB)",
         f"{s['peak_rss_mb']:g} / {s['rss_kb_per_job_in_flight']:g}", ""),
    ]
    for where, clients in results.get("detection", {}).items():
        for name, figures in clients.items():
            det = figures["detection_ms"]
            ratio = f", ×{figures['p50_ratio_to_ours']} ours" \
                if "p50_ratio_to_ours" in figures else ""
            rows.append((f"detection, {where}: {name} (ms)",
                         f"p50 {det['p50']}  p99 {det['p99']}; "
                         f"{figures['api_calls_per_prediction']} calls{ratio}", ""))
    if "quota" in results:
        rows.append(("quota reservations per second", f"{results['quota']['per_second']}",
                     "≥ 2000"))
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:<{value_width}}  {c}" for a, b, c in rows)
