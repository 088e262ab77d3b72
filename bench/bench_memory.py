"""Memory over a long batch: RSS while `score_to_csv` works through N films (real films repeated).

Prints RSS samples and the change from the end of warm-up to the end (target: within ±10%).

    python bench/bench_memory.py [--films 5000] [--warmup 500]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import demo_model, load, machine, nih_pngs


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: peak RSS is the best we have
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--films", type=int, default=5000)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--every", type=int, default=250)
    args = ap.parse_args()

    from cxrviewer.batch import score_to_csv
    from cxrviewer.model import Classifier

    real = nih_pngs()
    paths = [real[i % len(real)] for i in range(args.films)]
    clf = Classifier.load(demo_model())
    samples: list[tuple[int, float]] = []

    def progress(result, done, total):
        if done % args.every == 0 or done == total:
            samples.append((done, rss_mb()))
            print(f"  {done:6d} films  RSS {samples[-1][1]:7.1f} MB", flush=True)

    print(f"machine: {machine()}; {args.films} films ({len(real)} real NIH PNGs repeated); model {clf.info.model_version}")
    out = Path(tempfile.mkdtemp()) / "r.csv"
    summary = score_to_csv(paths, clf, out, progress=progress, overwrite=True)
    print(summary.line())
    after_warm = [m for n, m in samples if n >= args.warmup]
    if len(after_warm) >= 2:
        start, end, peak = after_warm[0], after_warm[-1], max(after_warm)
        print(f"RSS after warm-up {start:.1f} MB, at the end {end:.1f} MB ({100 * (end / start - 1):+.1f}%), peak {peak:.1f} MB ({100 * (peak / start - 1):+.1f}%)")


if __name__ == "__main__":
    main()
    print(f"at the end: {load()}")
