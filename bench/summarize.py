#!/usr/bin/env python3
"""One table of every figure bench/run_all measured, each with the limit it is compared with
(measured in the same run) and the target it is held to:

    python bench/summarize.py /var/tmp/ir-bench-results/<time>/    # run_all does this last

Reads the JSON each benchmark wrote in that directory (capture.json, pod-capture.json,
response.json, pods.json); a benchmark that did not run is left out."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

Row = tuple[str, str, str, str, str]  # figure, reached, limit, target, met


def _load(out: Path, name: str) -> dict[str, Any] | None:
    path = out / name
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "no")


def capture_rows(doc: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for res in doc.get("results", []):
        what = "mixed tree" if res.get("corpus") == "mixed" else f"{res['size_mib']} MiB diff"
        cases, ratios = res["cases"], res["ratios"]
        lim = cases["limit"]
        for case, label in (
            ("ir-node", "node backend -> dir"),
            ("ir-docker", "docker backend -> dir"),
            ("ir-node-s3", "node backend -> S3"),
        ):
            if f"{case}/limit" not in ratios:
                continue
            c = cases[case]
            ratio = ratios[f"{case}/limit"]
            rows.append(
                (
                    f"capture, {label}, {what}",
                    f"{c['median_s']:.2f} s ({c.get('cpu_s') or '-'} CPU-s), "
                    f"peak RSS {c['peak_rss_mib']:.0f} MiB",
                    f"tar \\| zstd -3 -T2: {lim['median_s']:.2f} s ({lim.get('cpu_s') or '-'} CPU-s)",
                    "0.8x",
                    f"{ratio:.2f}x ({_met(ratio >= 0.8)})",
                )
            )
            floor = res.get("floor")
            if case == "ir-node" and floor:
                rows.append(
                    (
                        f"capture vs its floor, {what}",
                        f"{c['median_s']:.2f} s",
                        f"floor {floor['seconds']:.2f} s (start-up, then limit CPU + SHA-256 "
                        f"+ per-file Python over {floor['cores']} cores) = "
                        f"{floor['ratio_to_limit']:.2f}x the limit",
                        "-",
                        f"{ratios['ir-node/floor']:.2f}x of the floor",
                    )
                )
                if "seconds_at_limit_cores" in floor:
                    at = floor["seconds_at_limit_cores"]
                    rows.append(
                        (
                            f"capture floor at the limit's parallelism, {what}",
                            f"{c['median_s']:.2f} s",
                            f"floor {at:.2f} s over the {floor['limit_cores']} cores "
                            f"tar \\| zstd keeps busy = "
                            f"{floor['ratio_to_limit_at_limit_cores']:.2f}x the limit",
                            "-",
                            f"{at / c['median_s']:.2f}x of that floor",
                        )
                    )
            if case == "ir-node" and c.get("cpu_s") and lim.get("cpu_s"):
                # ir's wall time if it kept as many cores busy as tar | zstd does: what is left
                # once parallelism is equal is CPU ir spends and the limit does not
                rows.append(
                    (
                        f"capture CPU vs the limit's, {what}",
                        f"{c['cpu_s']:.2f} CPU-s ({c['cpu_s'] / c['median_s']:.2f} cores busy)",
                        f"tar \\| zstd -3 -T2: {lim['cpu_s']:.2f} CPU-s "
                        f"({lim['cpu_s'] / lim['median_s']:.2f} cores busy)",
                        "-",
                        f"{lim['cpu_s'] / c['cpu_s']:.2f}x at the limit's own parallelism",
                    )
                )
            if case == "ir-node":
                rows.append(
                    (
                        f"peak RSS, {what}",
                        f"{c['peak_rss_mib']:.0f} MiB",
                        "",
                        "150 MiB",
                        _met(c["peak_rss_mib"] <= 150),
                    )
                )
        ver = res.get("verify")
        if ver:
            v, z = ver["cases"]["verify"], ver["cases"]["zstd-d"]
            ratio = ver["ratios"]["verify/zstd-d"]
            rows.append(
                (
                    f"bundle verify, {what}",
                    f"{v['median_s']:.2f} s",
                    f"zstd -d: {z['median_s']:.2f} s",
                    "0.8x",
                    f"{ratio:.2f}x ({_met(ratio >= 0.8)})",
                )
            )
            vf = ver.get("floor")
            if vf:
                rows.append(
                    (
                        f"bundle verify vs its floor, {what}",
                        f"{v['median_s']:.2f} s",
                        f"floor {vf['seconds']:.2f} s (start-up, then zstd -d + SHA-256 over "
                        "every core) = "
                        f"{vf['ratio_to_zstd_d']:.2f}x zstd -d",
                        "-",
                        f"{ver['ratios']['verify/floor']:.2f}x of the floor",
                    )
                )
    return rows


def pod_capture_rows(doc: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for r in doc.get("results", []):
        c = r["collector"][-1]
        split = (
            f"start {c['collector_start_s']:.2f}, capture {c['capture_in_collector_s']:.2f}, "
            f"transfer {c['transfer_s']:.2f}, verify {c['verify_s']:.2f} s"
        )
        rows.append(
            (
                f"capture pod, {r['size_mib']} MiB, collector relay -> dir",
                f"{r['median_collector_s']:.2f} s ({split})",
                f"ir on the node: {r['median_local_s']:.2f} s",
                "-",
                f"{r['ratio_local_over_collector']:.2f}x",
            )
        )
        rows.append(
            (
                f"capture pod, {r['size_mib']} MiB, collector -> S3 (direct)",
                f"{r['median_direct_s3_s']:.2f} s",
                f"ir on the node -> S3: {r['median_local_s3_s']:.2f} s",
                "-",
                f"{r['ratio_local_s3_over_direct']:.2f}x",
            )
        )
    return rows


def response_rows(doc: dict[str, Any]) -> list[Row]:
    q = doc.get("quarantine_only") or {}
    lat = q.get("alert_to_policy_ms") or {}
    if not lat:
        return []
    return [
        (
            "alert -> NetworkPolicy p99",
            f"{lat['p99']:.0f} ms (p50 {lat['p50']:.0f})",
            f"{q.get('measured')} alerts",
            "1000 ms",
            _met(lat["p99"] < 1000),
        )
    ]


def pods_rows(doc: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    cases, ratios, n = doc.get("cases") or {}, doc.get("ratios") or {}, doc.get("pods")
    for label, r in ratios.items():
        e = cases[label]
        path = "through one shared collector" if "-collector-" in label else "ir on the node"
        rows.append(
            (
                f"capture pod -l, {n} pods x {doc.get('size_mib')} MiB, {path}, "
                f"--parallel {label.rsplit('-p', 1)[1]}",
                f"{e['total_s']:.2f} s ({e['per_pod_s']:.2f} s a pod; CPU "
                f"{100 * (e.get('cpu_busy_mean') or 0):.0f} % busy)",
                f"{n} x one pod alone",
                "-",
                f"{r['speedup']:.2f}x",
            )
        )
    return rows


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    rows: list[Row] = []
    for name, make in (
        ("capture.json", capture_rows),
        ("pod-capture.json", pod_capture_rows),
        ("response.json", response_rows),
        ("pods.json", pods_rows),
    ):
        doc = _load(out, name)
        if doc is not None:
            try:
                rows.extend(make(doc))
            except (KeyError, TypeError, ValueError) as exc:
                rows.append((name, f"unreadable: {exc}", "", "", ""))
    head = ("figure", "reached", "limit (same run)", "target", "ratio / met")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
