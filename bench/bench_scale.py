"""Archive scale: the Ray engine against the local engine, and resuming a million-row result set.

(1) The same films (the NIH PNGs, repeated under other names to make a run long enough to
    measure) scored by the local engine (:func:`cxrviewer.batch.score_to_csv`, its default
    workers) and by the Ray engine (:func:`cxrviewer.scale.score_on_ray`, one actor a core) on a
    local Ray runtime started beforehand (as a cluster is), alternately, in one run. Ray's figure
    includes its actors' start-up (loading the model), as every run pays it; "steady" counts
    from the first row written. Target: Ray ≥ 0.85 × local films/s.
(2) A result set of 1,000,000 rows made by repeating real rows (each under its own path), as a
    CSV and as a folder of Parquet shards; then, each in a fresh process, a run scoring a few
    new films into it (resuming it) and the same run into a new output. Peak RSS of both and
    the time until the resumed set is indexed. Target: resume RSS ≤ 1.3 × fresh, seconds.

    With ``--exports`` both engines also write each film's annotated PNG (``--export-dir``: the
    local engine in its driver loop, the Ray engine in its actors).

    python bench/bench_scale.py [--films 222] [--repeats 2] [--rows 1000000] [--model M.onnx] [--exports]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, demo_model, machine, nih_pngs

RUN = """
import resource, sys, time
t0 = time.perf_counter()
from cxrviewer.batch import score_to_csv
from cxrviewer.io import list_films
from cxrviewer.model import Classifier
from cxrviewer.results import open_results
out, model, films = sys.argv[1], sys.argv[2], sys.argv[3:]
clf = Classifier.load(model, device="cpu", threads=1)
t1 = time.perf_counter()
with open_results(out, clf.info.labels, clf.info.model_version) as sink:
    opened = time.perf_counter() - t1
summary = score_to_csv(list_films(films), clf, out)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, opened, summary.scored, summary.skipped)
"""


def make_films(src: list[Path], n: int, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        f = dest / f"{i:05d}-{src[i % len(src)].name}"
        shutil.copy2(src[i % len(src)], f)
        out.append(f)
    return out


def engines(films: list[Path], model: Path, repeats: int, tmp: Path, exports: bool = False) -> dict:
    import ray

    from cxrviewer.batch import ExportPlan, default_workers, score_to_csv
    from cxrviewer.storage import check_writable_dir
    from cxrviewer.model import Classifier
    from cxrviewer.scale import RayOptions, score_on_ray

    workers = default_workers()
    env = {"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))}}
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, runtime_env=env)
    ray_start = time.perf_counter() - t0
    local, on_ray, steady, ratios = [], [], [], []
    try:
        for r in range(repeats):
            clf = Classifier.load(model, device="cpu", threads=1 if workers > 1 else 0)
            plans = [ExportPlan(check_writable_dir(tmp / f"pics-{e}{r}")) if exports else None for e in ("local", "ray")]
            t = time.perf_counter()
            s = score_to_csv(films, clf, tmp / f"local{r}.csv", exports=plans[0])
            local.append(s.scored / (time.perf_counter() - t))
            first: list[float] = []
            t = time.perf_counter()
            s = score_on_ray(films, model, tmp / f"ray{r}.csv", options=RayOptions(workers=workers), exports=plans[1],
                             progress=lambda row, done, total, first=first: first or first.append(time.perf_counter()))
            end = time.perf_counter()
            on_ray.append(s.scored / (end - t))
            steady.append((s.scored - 1) / (end - first[0]))
            ratios.append(on_ray[-1] / local[-1])
            print(f"  repeat {r + 1}: local {local[-1]:.2f} films/s, ray {on_ray[-1]:.2f} (steady {steady[-1]:.2f}), "
                  f"ratio {ratios[-1]:.2f}", flush=True)
    finally:
        ray.shutdown()
    return {"workers": workers, "ray_init_s": ray_start, "local": statistics.median(local),
            "ray": statistics.median(on_ray), "ray_steady": statistics.median(steady),
            "ratio": statistics.median(ratios), "ratio_steady": statistics.median(steady) / statistics.median(local)}


def big_results(template: Path, rows: int, tmp: Path) -> tuple[Path, Path]:
    """A CSV and a shard folder of ``rows`` rows: the template's rows again and again."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cxrviewer.results import MANIFEST, read_results

    real = read_results(template)
    head, *body = template.read_bytes().splitlines(keepends=True)
    csv_out = tmp / "big.csv"
    with open(csv_out, "wb") as fh:
        fh.write(head)
        done = 0
        while done < rows:
            k = done // len(body)
            fh.write(b"".join(b"/archive/%d/" % k + line for line in body[: rows - done]))
            done += min(len(body), rows - done)
    folder = tmp / "big"
    folder.mkdir()
    columns = list(real[0])
    per_shard = 10_000
    for s in range(-(-rows // per_shard)):
        n = min(per_shard, rows - s * per_shard)
        chunk = [real[(s * per_shard + i) % len(real)] for i in range(n)]
        table = pa.table({c: [f"/archive/{(s * per_shard + i) // len(real)}/{r[c]}" if c == "path" else r[c]
                              for i, r in enumerate(chunk)] for c in columns})
        pq.write_table(table, folder / f"part-{s:06d}.parquet")
    manifest = {"format": "cxrviewer-results", "version": 1, "model_version": real[0]["model_version"],
                "labels": columns[4:-7], "columns": columns, "rows": rows, "shards": []}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return csv_out, folder


def resume(model: Path, films: list[Path], big_csv: Path, big_dir: Path, tmp: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))}
    out = {}
    for name, target, fresh in (("csv", big_csv, tmp / "fresh.csv"), ("parquet", big_dir, tmp / "fresh")):
        res = {}
        for kind, path in (("fresh", fresh), ("resume", target)):
            arg = f"{path}/" if name == "parquet" else str(path)
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", RUN, arg, str(model), *map(str, films)],
                                  env=env, capture_output=True, text=True, cwd=tmp)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-2000:])
            rss, opened, scored, skipped = proc.stdout.split()
            res[kind] = {"rss_mb": float(rss), "open_s": float(opened), "wall_s": time.perf_counter() - t,
                         "scored": int(scored)}
        res["rss_ratio"] = res["resume"]["rss_mb"] / res["fresh"]["rss_mb"]
        out[name] = res
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--films", type=int, default=222, help="films per engine run (the NIH PNGs repeated)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the result set to resume")
    ap.add_argument("--model", type=Path, default=None, help="default: the bundled demo model")
    ap.add_argument("--skip-engines", action="store_true")
    ap.add_argument("--skip-resume", action="store_true")
    ap.add_argument("--exports", action="store_true", help="(1) with an annotated PNG written per film")
    args = ap.parse_args()
    model = args.model or demo_model()
    print(machine() if callable(machine) else machine)
    print(f"model {model.name}")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as d:
        tmp = Path(d)
        films = make_films(nih_pngs(), args.films, tmp / "films")
        if not args.skip_engines:
            what = ", a PNG exported per film" if args.exports else ""
            print(f"(1) {len(films)} films{what}, local engine vs Ray engine (local runtime), {args.repeats} repeats")
            e = engines(films, model, args.repeats, tmp, args.exports)
            print(f"    ray.init {e['ray_init_s']:.1f} s (not counted); {e['workers']} workers each")
            print(f"    local {e['local']:.2f} films/s | ray {e['ray']:.2f} films/s end to end, "
                  f"{e['ray_steady']:.2f} steady | ratio {e['ratio']:.2f} (target >= 0.85), steady {e['ratio_steady']:.2f}")
        if not args.skip_resume:
            from cxrviewer.batch import score_to_csv
            from cxrviewer.model import Classifier

            template = tmp / "template.csv"
            score_to_csv(films[:74], Classifier.load(model, device="cpu"), template)
            t = time.perf_counter()
            big_csv, big_dir = big_results(template, args.rows, tmp)
            print(f"(2) {args.rows:,} rows made in {time.perf_counter() - t:.0f} s: CSV {big_csv.stat().st_size / 1e6:.0f} MB, "
                  f"Parquet {sum(f.stat().st_size for f in big_dir.iterdir()) / 1e6:.0f} MB")
            new = films[74:84]
            for name, r in resume(model, new, big_csv, big_dir, tmp).items():
                f, s = r["fresh"], r["resume"]
                print(f"    {name:8s} fresh: {f['rss_mb']:.0f} MB peak, {f['wall_s']:.1f} s | resume: {s['rss_mb']:.0f} MB peak, "
                      f"index {s['open_s']:.1f} s, {s['wall_s']:.1f} s in all, {s['scored']} new scored | "
                      f"RSS ratio {r['rss_ratio']:.2f} (target <= 1.3)")


if __name__ == "__main__":
    main()
