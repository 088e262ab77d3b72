"""A site validation from start to end: match films to labels, score, compute, write the report.

Scoring goes through :func:`cxrviewer.batch.score_to_csv`, the path of ``cxrviewer score``, into
``REPORT/results.csv``: a rerun resumes it (films already scored ``ok`` with the same file size
and time are not scored again) and only the statistics are computed again, in seconds. Rows whose
status is not ``ok`` (an error, or a film the model does not read) are counted and left out.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..applicability import LATERAL_VIEWS
from ..batch import Cancel, Progress, score_to_csv
from ..errors import LabelsFileError, SameFileError, UnknownResultsFileError
from ..storage import check_writable_dir
from ..io import is_url
from ..model import Classifier
from ..results import Summary, path_from_cell, read_results
from .labels import LabelTable, file_name, read_labels
from .stats import (
    AGE_BANDS,
    ECE_BINS,
    Bootstrap,
    clusters_of,
    findings_metrics,
    subgroup_values,
)
from .tune import check_target, chosen_thresholds, site_record, tuned_info, write_tuned_model

logger = logging.getLogger(__name__)

RESULTS_NAME = "results.csv"
OK = "ok"
#: The row status of a film the model does not read (a lateral, a tibia): left out, and no failure.
NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True)
class Validation:
    """What a validation run did: the metrics document (``metrics.json``), the scoring summary,
    and the files written."""

    metrics: dict[str, Any]
    summary: Summary
    report_dir: Path
    files: tuple[Path, ...] = ()
    tuned_model: Path | None = None
    statuses: Counter = field(default_factory=Counter)
    #: stopped before every film was scored: nothing but the results file was written
    cancelled: bool = False

    @property
    def failed(self) -> int:
        """Films that could not be scored (errors; a film the model does not read is no failure)."""
        return self.metrics["films"]["failed"]


def match_films(films: Sequence[Path | str], table: LabelTable) -> tuple[list[tuple[Path | str, int]], list[Path | str]]:
    """([(film, its labels row)], films the labels file does not list); a row claimed by an
    earlier film is not given to a later one of the same name (that one counts as unlisted).
    Films whose file name a row gives exactly are matched first: ``a.png`` keeps its row when an
    ``a.dcm`` beside it would take it by its stem."""
    rows: dict[int, int] = {}
    taken: set[int] = set()
    for stem in (False, True):
        for i, f in enumerate(films):
            if i in rows:
                continue
            row = table.row_for(f, stem=stem)
            if row is not None and row not in taken:
                taken.add(row)
                rows[i] = row
    matched = [(f, rows[i]) for i, f in enumerate(films) if i in rows]
    unlisted = [f for i, f in enumerate(films) if i not in rows]
    return matched, unlisted


def _absolute(film: Path | str) -> Path | str:
    return film if is_url(film) else Path(os.path.abspath(film))


def _refuse_film_folder(report: Path, films: Sequence[Path | str]) -> None:
    try:
        target = os.stat(report)
    except OSError:
        return
    for parent in {os.path.dirname(os.fspath(f)) for f in films if not is_url(f)}:
        try:
            st = os.stat(parent)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            raise SameFileError(f"{report} holds films being validated: the report's pictures would be scored as films "
                                "by the next run. Choose another folder for the report.")


def _without_report_figures(films: Sequence[Path | str], report: Path) -> list[Path | str]:
    """``films`` less the report's own figures (``roc.png``, ``finding-NN-*.png`` in the report
    folder): a report inside a folder given with ``--recursive`` is not read as films by a rerun."""
    from .report import FIGURE_NAME

    try:
        target = os.stat(report)
    except OSError:
        return list(films)

    def figure(f: Path | str) -> bool:
        if is_url(f) or not FIGURE_NAME.match(Path(f).name):
            return False
        try:
            st = os.stat(os.path.dirname(os.path.abspath(f)))
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino)

    return [f for f in films if not figure(f)]


def _refuse_unevaluable(table: LabelTable, rows: Sequence[int], labels_file: Path | str) -> None:
    """A labels file that gives no finding of the model both a positive and a negative film among
    the films it lists can evaluate nothing, whatever the scores: refused before scoring."""
    values = table.values[list(rows)]
    if any(np.any(values[:, j] == 1) and np.any(values[:, j] == 0) for j in range(values.shape[1])):
        return
    named = [label for label in table.labels if label not in table.absent_labels]
    if not named:
        theirs = ", ".join(table.unknown_labels) or "none"
        what = f"names none of the model's findings (its finding columns: {theirs}; the model's: {', '.join(table.labels)})"
    else:
        what = (f"gives none of the model's findings both positive and negative films among the {len(rows)} film(s) "
                "it lists")
    raise LabelsFileError(f"{labels_file} {what}: nothing could be evaluated, so nothing was scored. Give the labels "
                          "of these films for the model's findings (docs/validation.md).")


def _check_results_model(results: Path, model_version: str) -> None:
    """A results file in the report folder scored by another model would mix two models' scores."""
    if not results.is_file():
        return
    try:
        rows = read_results(results)
    except (OSError, UnicodeDecodeError):
        return  # the results code says what is wrong with it when it opens it
    others = {r.get("model_version") for r in rows} - {model_version, None, ""}
    if others:
        raise UnknownResultsFileError(
            f"{results} holds the scores of another model ({', '.join(sorted(others))}); it is left as it is. "
            "Choose another report folder, or start this one afresh."
        )


def gather_rows(matched: Sequence[tuple[Path | str, int]], paths: Sequence[Path | str],
                last: Mapping[str, Mapping[str, str]], labels: Sequence[str]) -> tuple[Counter, list[int], list[list[float]]]:
    """(films per row status, the labels rows of the films evaluated, their probabilities in
    ``labels``' order) from the results' last row of each film (``last``: path → row). Only
    ``ok`` rows are evaluated; a film without a row counts as ``not scored``."""
    statuses: Counter = Counter()
    keep_rows: list[int] = []
    scores: list[list[float]] = []
    for (_, row_index), path in zip(matched, paths):
        row = last.get(os.fspath(path))
        status = "not scored" if row is None else (row.get("status") or "error")
        if status == OK:
            try:
                s = [float(row[label]) for label in labels]
            except (KeyError, TypeError, ValueError):
                status = "unreadable row"
        statuses[status] += 1
        if status == OK:
            keep_rows.append(row_index)
            scores.append(s)
    return statuses, keep_rows, scores


def failed_count(statuses: Mapping[str, int]) -> int:
    """Films that could not be scored: every status but ``ok`` and ``not_applicable``."""
    return sum(v for k, v in statuses.items() if k not in (OK, NOT_APPLICABLE))


def validate(
    films: Sequence[Path | str],
    labels_file: Path | str,
    report_dir: Path | str,
    classifier: Classifier,
    *,
    boot: Bootstrap = Bootstrap(),
    tune_to: Path | str | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    cancel: Cancel = None,
    progress: Progress = None,
    overwrite: bool = False,
    figures: bool = True,
    before_scoring: Callable[[int], None] | None = None,
) -> Validation:
    """Validate ``classifier`` on ``films`` against ``labels_file``; write ``report_dir``'s
    ``results.csv``, ``metrics.json``, ``index.html`` and figures (and, with ``tune_to``, a copy of
    the model with thresholds chosen on these films). ``before_scoring(n)`` is told how many
    films will be scored. Raises :class:`~cxrviewer.errors.LabelsFileError` when the labels file
    lists none of the films, :class:`~cxrviewer.errors.OutputError` when the report cannot be
    written."""
    from .report import figure_class, write_report

    info = classifier.info
    films = _without_report_figures(films, Path(report_dir))
    table = read_labels(labels_file, info.labels)
    matched, unlisted = match_films(films, table)
    if not matched:
        example = file_name(films[0]) if films else "?"
        raise LabelsFileError(
            f"None of the {len(films)} film(s) is listed in {labels_file} (films are matched by file name, "
            f"e.g. {example!r}, to its {'Image Index' if table.layout == 'nih' else 'file'} column). Give the labels "
            "file of these films, or the films it lists."
        )
    labelled = len(matched)
    # a raster film has no header for the gate (cxrviewer.applicability): where the labels file
    # says it is a lateral view and the model reads no laterals, it is left out as not applicable
    rule = info.applicable
    lateral = [m for m in matched if table.views[m[1]] in LATERAL_VIEWS
               and not rule.accepts("view_positions", table.views[m[1]])]
    if lateral:
        logger.info("%d film(s) the labels file says are lateral views: left out, not scored (the model reads %s)",
                    len(lateral), "/".join(rule.view_positions))
        out = {row for _, row in lateral}
        matched = [m for m in matched if m[1] not in out]
    _refuse_unevaluable(table, [r for _, r in matched], labels_file)
    if tune_to is not None:
        check_target(classifier.path, tune_to)
    if figures:
        figure_class()  # matplotlib is here: found out now, not after scoring
    report = Path(report_dir)
    check_writable_dir(report)
    _refuse_film_folder(report, [f for f, _ in matched])
    results = report / RESULTS_NAME
    if not overwrite:
        _check_results_model(results, info.model_version)
    paths = [_absolute(f) for f, _ in matched]
    if before_scoring is not None:
        before_scoring(len(paths))
    summary = score_to_csv(paths, classifier, results, batch_size=batch_size, workers=workers,
                           cancel=cancel, progress=progress, overwrite=overwrite)
    if summary.cancelled:
        return Validation({}, summary, report, (results,), cancelled=True)

    # the last row of each film, as the results file holds it
    last: dict[str, dict[str, str]] = {}
    for row in read_results(results):
        last[path_from_cell(row.get("path", ""))] = row
    statuses, keep_rows, scores = gather_rows(matched, paths, last, info.labels)
    if lateral:
        statuses[NOT_APPLICABLE] += len(lateral)
    y = table.values[keep_rows] if keep_rows else np.zeros((0, len(info.labels)))
    s = np.array(scores, dtype=np.float64).reshape(len(keep_rows), len(info.labels))

    metrics = compute_metrics(table, keep_rows, y, s, info.labels, dict(info.thresholds), boot)
    films_doc = {
        "inputs": len(films),
        "labelled": labelled,
        "not_in_labels_file": len(unlisted),
        "labels_without_film": len(table) - labelled,
        "duplicate_label_rows": table.duplicate_rows,
        "scored_now": summary.scored,
        "already_scored": summary.skipped,
        "evaluated": len(keep_rows),
        "failed": failed_count(statuses),
        "not_applicable": statuses.get(NOT_APPLICABLE, 0),
        "statuses": dict(sorted(statuses.items())),
    }
    doc: dict[str, Any] = {
        "model": {
            "path": str(classifier.path),
            "model_version": info.model_version,
            "demo": info.demo,
            "labels": list(info.labels),
            "thresholds": {k: float(v) for k, v in info.thresholds.items()},
            "trained_on": dict(info.trained_on),
        },
        "labels_file": {
            "path": str(labels_file),
            "layout": table.layout,
            "rows": len(table),
            "unknown_labels": dict(table.unknown_labels),
            "labels_not_in_file": list(table.absent_labels),
            "patient_ids": table.has_patients,
        },
        "films": films_doc,
        **metrics,
    }
    tuned = None
    if tune_to is not None and keep_rows:
        thresholds, chosen = chosen_thresholds(info.labels, y, s, info.thresholds)
        aurocs = {k: v["auroc"] for k, v in metrics["findings"].items()}
        record = site_record(info, thresholds, chosen, len(keep_rows), file_name(labels_file), aurocs)
        tuned = write_tuned_model(classifier.path, tune_to, tuned_info(info, thresholds, record))
        doc["tuned_model"] = {"path": str(tuned), **record["thresholds"]}
    elif tune_to is not None:
        doc["tuned_model"] = {"path": None, "why": "no film was scored"}
    written = write_report(report, doc, y, s, figures=figures)
    return Validation(doc, summary, report, tuple(written), tuned, statuses)


def compute_metrics(table: LabelTable, rows: Sequence[int], y: np.ndarray, s: np.ndarray, labels: Sequence[str],
                    thresholds: dict[str, float], boot: Bootstrap) -> dict[str, Any]:
    """The ``bootstrap``, ``calibration``, ``findings``, ``not_evaluated`` and ``subgroups`` parts
    of ``metrics.json`` for the evaluated films (``rows`` of ``table``; ``y`` labels, ``s``
    probabilities)."""
    rows = list(rows)
    patients = [table.patients[r] for r in rows] if table.has_patients else None
    clusters, n_clusters = clusters_of(patients, len(rows))
    findings, skipped = findings_metrics(labels, y, s, thresholds, clusters, boot, "all")
    subgroups: dict[str, Any] = {}
    views = [table.views[r] for r in rows]
    sexes = [table.sexes[r] for r in rows]
    ages = table.ages[rows] if rows else np.zeros(0)
    for grouping, values in subgroup_values(views, sexes, ages).items():
        for value, sel in values.items():
            found, _ = findings_metrics(labels, y[sel], s[sel], thresholds, clusters[sel], boot, f"{grouping}={value}")
            subgroups.setdefault(grouping, {})[value] = {"films": int(sel.sum()), "findings": found}
    return {
        "bootstrap": {
            "resamples": boot.resamples,
            "seed": boot.seed,
            "level": boot.level,
            "method": "percentile",
            "unit": "patient" if patients is not None else "film",
            "clusters": n_clusters,
        },
        "calibration": {"bins": ECE_BINS, "binning": "equal-width on [0, 1]"},
        "age_bands": [name for name, _, _ in AGE_BANDS],
        "findings": findings,
        "not_evaluated": skipped,
        "mean_auroc": _mean([v["auroc"] for v in findings.values()]),
        "subgroups": subgroups,
    }


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else None
