"""CPU seconds to build (and encode) one Grayscale Softcopy Presentation State, on the real chest DICOMs.

The 4 chest DICOMs of ../shared/data/dicom, scored once with the bundled demo model; then
:func:`cxrviewer.dicom.build_gsps` (regions of the positives, as `score --dicom-out` and the node
write it) and the Part 10 encoding are timed in CPU seconds, median of ``--repeats`` per film;
side by side, the same state built object by object by highdicom (the oracle of
tests/test_gsps_stamp.py, how cxrviewer built it before the model's objects were frozen and
stamped) and encoded by pydicom.

    python bench/bench_gsps.py [--repeats 20] [--profile]
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
WHAT = "Presentation State"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the builds")
    args = ap.parse_args()

    from cxrviewer.dicom import build_gsps
    from cxrviewer.dicom.output import encode
    from cxrviewer.io import read_film
    from cxrviewer.model import Classifier

    print(machine())
    clf = Classifier.load(demo_model(), device="cpu")
    scored = [(name, read_film(SHARED / "dicom" / name)) for name in CHEST]
    scored = [(name, film, clf.predict_one(film)) for name, film in scored]
    sys.path.insert(0, str(REPO / "tests"))
    from test_gsps_stamp import highdicom_gsps

    for _, film, prediction in scored:  # warm-up (imports, the model's parts, caches)
        encode(build_gsps(film, prediction, clf.info), WHAT)
        encode(highdicom_gsps(film, prediction, clf.info, set(prediction.positives)), WHAT)
    profile = cProfile.Profile() if args.profile else None

    all_build, all_total, all_oracle = [], [], []
    for name, film, prediction in scored:
        build, enc, oracle = [], [], []
        for _ in range(args.repeats):
            c0 = time.process_time()
            encode(highdicom_gsps(film, prediction, clf.info, set(prediction.positives)), WHAT)
            oracle.append(time.process_time() - c0)
            c0 = time.process_time()
            if profile:
                profile.enable()
            ds = build_gsps(film, prediction, clf.info)
            if profile:
                profile.disable()
            c1 = time.process_time()
            encode(ds, WHAT)
            c2 = time.process_time()
            build.append(c1 - c0)
            enc.append(c2 - c1)
        all_build.extend(build)
        all_total.extend(b + e for b, e in zip(build, enc))
        all_oracle.extend(oracle)
        print(f"{name}: {len(prediction.positives)} positives, build {1000 * statistics.median(build):.1f} ms CPU, "
              f"encode {1000 * statistics.median(enc):.1f} ms; object by object "
              f"{1000 * statistics.median(oracle):.1f} ms (median of {args.repeats})")
    total, by_object = statistics.median(all_total), statistics.median(all_oracle)
    print(f"all films: build median {1000 * statistics.median(all_build):.1f} ms CPU; build + encode "
          f"{1000 * total:.1f} ms vs object by object {1000 * by_object:.1f} ms: {by_object / total:.1f}x less CPU")
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
