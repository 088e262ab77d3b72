"""CPU seconds for one film's SR and Presentation State, built, encoded and durably written.

What the DICOM node spends on a film's results after inference
(:func:`cxrviewer.node.outputs.write_results` with outputs ``("sr", "gsps")``, as ``cxrviewer
listen`` writes them by default), on the 4 real chest DICOMs of ../shared/data/dicom scored
once with the bundled demo model (regions of the positives). Side by side in the same run, the
same two files written one at a time by :func:`cxrviewer.dicom.write_result` (each reads the
source's header and computes the regions itself: how ``write_results`` made them before it
shared them). CPU seconds on this thread's clock, median of ``--repeats`` per film.

    python bench/bench_results.py [--repeats 10] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from pathlib import Path

from common import demo_model, machine, scored_chest_dicoms

OUTPUTS = ("sr", "gsps")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of write_results")
    args = ap.parse_args()

    from cxrviewer.dicom import write_result
    from cxrviewer.model import Classifier
    from cxrviewer.node.outputs import write_results
    from cxrviewer.render import RenderOptions

    print(machine())
    clf = Classifier.load(demo_model(), device="cpu")
    scored = scored_chest_dicoms(clf)
    profile = cProfile.Profile() if args.profile else None

    kinds: dict[str, list[float]] = {kind: [] for kind in OUTPUTS}  # each result's share (write_results' own clock)

    def together(folder: Path, film, prediction) -> None:
        cpu: dict[str, float] = {}
        _, errors = write_results(folder, film, prediction, clf.info, OUTPUTS, cpu=cpu)
        if errors:
            raise SystemExit(f"write_results failed: {errors}")
        for kind in OUTPUTS:
            kinds[kind].append(cpu[f"build {kind}"])

    def one_by_one(folder: Path, film, prediction) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        options = RenderOptions(classes=prediction.positives)
        for kind in OUTPUTS:
            write_result(kind, folder / f"{kind}.dcm", film, prediction, clf.info, options)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for name, film, prediction in scored:  # warm-up: imports, the model's parts, caches
            together(out / "warm" / name, film, prediction)
            one_by_one(out / "warm1" / name, film, prediction)
        for values in kinds.values():
            values.clear()
        times: dict[str, dict[str, list[float]]] = {"all": {"together": [], "one by one": []}}
        for name, film, prediction in scored:
            t = times.setdefault(name, {"together": [], "one by one": []})
            for i in range(args.repeats):
                c0 = time.thread_time()
                one_by_one(out / f"1-{i}" / name, film, prediction)
                c1 = time.thread_time()
                if profile:
                    profile.enable()
                together(out / f"t-{i}" / name, film, prediction)
                if profile:
                    profile.disable()
                c2 = time.thread_time()
                for key, value in (("one by one", c1 - c0), ("together", c2 - c1)):
                    t[key].append(value)
                    times["all"][key].append(value)
    for name, film, prediction in scored:
        t = {key: 1000 * statistics.median(values) for key, values in times[name].items()}
        print(f"{name}: {len(prediction.positives)} positives, write_results(sr, gsps) {t['together']:.1f} ms CPU; "
              f"one at a time {t['one by one']:.1f} ms (median of {args.repeats})")
    t = {key: 1000 * statistics.median(values) for key, values in times["all"].items()}
    shares = ", ".join(f"{kind} {1000 * statistics.median(values):.1f} ms" for kind, values in kinds.items())
    print(f"all films: write_results(sr, gsps) median {t['together']:.1f} ms CPU a film ({shares}, the film's "
          f"source read by the first); one at a time {t['one by one']:.1f} ms")
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(45)


if __name__ == "__main__":
    main()
