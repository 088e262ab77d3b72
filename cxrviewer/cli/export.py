"""``cxrviewer export``: one film with its findings, as a picture or a DICOM object."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..errors import CxrError
from ..options import add_display_options, add_model_options
from .common import EXIT_OK, check_inputs, load_classifier

logger = logging.getLogger(__name__)


def add_parser(sub) -> argparse.ArgumentParser:
    e = sub.add_parser(
        "export", help="write an annotated picture of one film",
        description="Score one film and write it with its findings: a PNG with the heatmaps or outlines and "
        "the findings panel, or a DICOM object for a PACS; optionally its regions as JSON.",
    )
    e.add_argument("file", type=Path, metavar="FILE", help="the film (PNG, JPEG, TIFF, BMP or DICOM)")
    e.add_argument("--out", type=Path, required=True, help="output .png, or .dcm for the DICOM formats (the extension must match --format; default: the format the extension names)")
    e.add_argument("--parents", action="store_true", help="create the folders of --out that do not exist (default: a missing folder is an error)")
    e.add_argument("--format", choices=("png", "dicom-sc", "dicom-sr", "dicom-gsps"), default=None, help="png (default); dicom-sc: an RGB DICOM Secondary Capture that keeps the source's patient and study; dicom-sr: a DICOM Structured Report of the findings (TID 1500); dicom-gsps: a DICOM Presentation State with a toggleable layer per finding (both need a DICOM FILE)")
    e.add_argument("--anonymize", action="store_true", help="dicom-*: drop patient identity (dicom-sc also starts a new study; dicom-sr/gsps keep the UIDs that point at the source; default: keep the source's identity)")
    e.add_argument("--burn-in-patient-name", action="store_true", help="dicom-sc: draw the patient's name on the picture (off by default)")
    e.add_argument("--regions", type=Path, metavar="JSON", help="also write the drawn findings' regions (boxes, outlines) as JSON (default: none)")
    e.add_argument("--region-level", type=float, default=None, metavar="0..1", help="region threshold as a fraction of each map's peak (default: 0.5)")
    e.add_argument("--region-min-area", type=float, default=None, metavar="FRACTION", help="smallest region as a fraction of the film's area (default: 0.005)")
    e.add_argument("--window", type=window_spec, default="file", metavar="CENTER,WIDTH|file|auto|full",
                   help="how the film's gray values are shown, as the app's window/level: a window in the film's "
                   "modality units (e.g. 550,1024), file (the file's own window, default), auto (1st to 99th "
                   "percentile) or full (every value, nothing clipped)")
    e.add_argument("--rotate", type=int, choices=(0, 90, 180, 270), default=0, metavar="0|90|180|270",
                   help="turn the picture clockwise by this many degrees, heatmaps and outlines with it (default: 0)")
    e.add_argument("--flip", choices=("h", "v"), default=None,
                   help="mirror the picture after turning it: h left-right, v top-bottom (default: none)")
    e.add_argument("--no-markers", dest="markers", action="store_false",
                   help="leave out the orientation and laterality markers (default: drawn when the file has them)")
    add_model_options(e)
    add_display_options(e, "positives")
    return e


def window_spec(text: str) -> str | tuple[float, float]:
    """``--window``: a name from :data:`~cxrviewer.io.grayscale.NAMED_WINDOWS` or ``CENTER,WIDTH``."""
    from ..io.grayscale import NAMED_WINDOWS

    name = text.strip().lower()
    if name in NAMED_WINDOWS:
        return name
    parts = name.split(",")
    try:
        center, width = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a window: give CENTER,WIDTH in the film's units (e.g. 550,1024) or one of "
            f"{', '.join(NAMED_WINDOWS)}"
        ) from None
    if not (abs(center) < 1e30 and 0 < width < 1e30):
        raise argparse.ArgumentTypeError(f"{text!r}: the width must be a positive number and both must be finite")
    return center, width


def run(args) -> int:
    from ..applicability import check
    from ..export import check_output_folder, export_png, output_format
    from ..io import read_film
    from ..io.grayscale import named_window
    from ..render import RenderOptions, select_classes
    from ..results import refuse_inputs_as_output, write_regions_json
    from ..types import Orientation

    check_inputs([args.file])
    fmt = output_format(args.out, args.format)
    check_output_folder(args.out, create=args.parents)
    refuse_inputs_as_output(args.out, [args.file])
    if args.regions is not None:
        check_output_folder(args.regions, create=args.parents)
        refuse_inputs_as_output(args.regions, [args.file])
    clf = load_classifier(args)
    args.classes.check(clf.info.labels)
    film = read_film(args.file)
    # one film asked for by name is drawn, but never silently if the model does not read it
    verdict = check(film, clf.info)
    if not verdict.applicable:
        logger.warning("%s is outside the model's use: %s (cxrviewer score gives such films the status "
                       "not_applicable)", film.name, verdict.reason)
    pred = clf.predict_one(film)
    window = named_window(film.gray, args.window) if isinstance(args.window, str) else args.window
    orientation = Orientation(args.rotate // 90)
    if args.flip is not None:
        orientation = orientation.flipped(vertical=args.flip == "v")
    opts = RenderOptions(select_classes(pred, args.classes), args.alpha, args.colormap, args.mode, window=window,
                         orientation=orientation, markers=args.markers)
    if fmt in ("dicom-sr", "dicom-gsps"):
        if args.burn_in_patient_name:
            raise CxrError("--burn-in-patient-name applies to --format dicom-sc; a structured report or presentation state has no picture to draw on.")
        from ..dicom import export_dicom_gsps, export_dicom_sr

        export = export_dicom_sr if fmt == "dicom-sr" else export_dicom_gsps
        out = export(args.out, film, pred, clf.info, region_labels=opts.classes, anonymize=args.anonymize)
    elif fmt == "dicom-sc":
        from ..dicom.sc import export_dicom_sc

        out = export_dicom_sc(args.out, film, pred, clf.info, opts, anonymize=args.anonymize,
                              burn_in_patient_name=args.burn_in_patient_name)
    else:
        if args.anonymize or args.burn_in_patient_name:
            raise CxrError("--anonymize and --burn-in-patient-name apply to --format dicom-sc; PNG exports never carry patient data.")
        out = export_png(args.out, film, pred, clf.info, opts)
    print(f"wrote {out}", file=sys.stderr)
    if args.regions is not None:
        write_regions_json(args.regions, film, pred, clf.info, opts.classes or pred.positives,
                           args.region_level, args.region_min_area)
        print(f"wrote {args.regions}", file=sys.stderr)
    return EXIT_OK
