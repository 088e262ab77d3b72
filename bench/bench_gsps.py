"""CPU seconds to build (and encode) one Grayscale Softcopy Presentation State, on the real chest DICOMs.

The 4 chest DICOMs of ../shared/data/dicom, scored once with the bundled demo model; then
:func:`cxrviewer.dicom.build_gsps` (regions of the positives, as `score --dicom-out` and the node
write it) and the Part 10 encoding are timed in CPU seconds, median of ``--repeats`` per film;
side by side, the same state built object by object by highdicom (the oracle of
tests/test_gsps_golden.py, written independently of cxrviewer's builder) and encoded by pydicom.

    python bench/bench_gsps.py [--repeats 20] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys

from common import REPO, demo_model, machine, print_build_times, scored_chest_dicoms, time_builds

WHAT = "Presentation State"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the builds")
    args = ap.parse_args()

    from cxrviewer.dicom import build_gsps
    from cxrviewer.dicom.output import encode
    from cxrviewer.model import Classifier

    print(machine())
    clf = Classifier.load(demo_model(), device="cpu")
    scored = scored_chest_dicoms(clf)
    sys.path.insert(0, str(REPO / "tests"))
    from test_gsps_golden import highdicom_gsps

    profile = cProfile.Profile() if args.profile else None
    times = time_builds(
        scored, lambda film, prediction: build_gsps(film, prediction, clf.info),
        lambda film, prediction: highdicom_gsps(film, prediction, clf.info, set(prediction.positives)),
        lambda ds: encode(ds, WHAT), args.repeats, profile)
    print_build_times(scored, times, "object by object", args.repeats)
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
