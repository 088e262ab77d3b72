"""CPU seconds to build (and encode) one DICOM Structured Report, on the real chest DICOMs.

The 4 chest DICOMs of ../shared/data/dicom, scored once with the bundled demo model; then
:func:`cxrviewer.dicom.build_sr` (regions of the positives, as `score --dicom-out` writes) and the
Part 10 encoding are timed in CPU seconds, median of ``--repeats`` per film; side by side, the
same report built item by item by highdicom's templates (the oracle of tests/test_sr_stamp.py,
how cxrviewer built it before the model's parts were frozen and stamped) and encoded by pydicom.

    python bench/bench_sr.py [--repeats 5] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time

from common import REPO, SHARED, demo_model, machine

CHEST = (
    "torchxrayvision_siim_cr_chest.dcm",
    "nccid_nih_cxr14_gcp_dx.dcm",
    "dcmfx_fo-dicom_CR-MONO1-10-chest.dcm",
    "pydicom-data_RG3_J2KR.dcm",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the builds")
    args = ap.parse_args()

    from cxrviewer.dicom import build_sr
    from cxrviewer.dicom.output import encode
    from cxrviewer.io import read_film
    from cxrviewer.model import Classifier

    print(machine())
    clf = Classifier.load(demo_model(), device="cpu")
    scored = [(name, read_film(SHARED / "dicom" / name)) for name in CHEST]
    scored = [(name, film, clf.predict_one(film)) for name, film in scored]
    build_sr(scored[0][1], scored[0][2], clf.info)  # warm-up (imports, caches)
    profile = cProfile.Profile() if args.profile else None
    sys.path.insert(0, str(REPO / "tests"))
    from test_sr_stamp import highdicom_sr

    all_build, all_total, all_oracle = [], [], []
    for name, film, prediction in scored:
        build, enc, oracle = [], [], []
        for _ in range(args.repeats):
            c0 = time.process_time()
            encode(highdicom_sr(film, prediction, clf.info, prediction.positives), "Structured Report")
            oracle.append(time.process_time() - c0)
            c0 = time.process_time()
            if profile:
                profile.enable()
            ds = build_sr(film, prediction, clf.info)
            if profile:
                profile.disable()
            c1 = time.process_time()
            encode(ds, "Structured Report")
            c2 = time.process_time()
            build.append(c1 - c0)
            enc.append(c2 - c1)
        all_build.extend(build)
        all_total.extend(b + e for b, e in zip(build, enc))
        all_oracle.extend(oracle)
        print(f"{name}: {len(prediction.positives)} positives, build {statistics.median(build):.3f} s CPU, "
              f"encode {statistics.median(enc):.3f} s CPU; item by item {statistics.median(oracle):.3f} s "
              f"(median of {args.repeats})")
    total, item_by_item = statistics.median(all_total), statistics.median(all_oracle)
    print(f"all films: build median {statistics.median(all_build):.3f} s CPU; build + encode {total:.3f} s "
          f"vs item by item {item_by_item:.3f} s: {item_by_item / total:.1f}x less CPU")
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
