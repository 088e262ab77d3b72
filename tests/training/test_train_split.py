"""Patient-level split and the leakage guard (no TensorFlow needed: fit refuses before importing it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training import cli
from training.data import Record, load_labels_csv
from training.errors import DataError, LeakageError
from training.split import assert_no_leakage, check_for_leakage, split_by_patient


def _records(n_patients: int, films_each: int = 2) -> list[Record]:
    return [Record(Path(f"{p:08d}_{i:03d}.png"), (0.0,), str(p)) for p in range(n_patients) for i in range(films_each)]


def test_check_for_leakage_course_examples():
    # the course's own test cases
    assert check_for_leakage([0, 1, 2], [3, 4, 5]) is False
    assert check_for_leakage([0, 1, 2], [2, 3, 4]) is True


def test_split_is_by_patient_seeded_and_complete():
    records = _records(50, 3)
    a = split_by_patient(records, val_frac=0.2, test_frac=0.1, seed=7)
    b = split_by_patient(records, val_frac=0.2, test_frac=0.1, seed=7)
    c = split_by_patient(records, val_frac=0.2, test_frac=0.1, seed=8)
    assert {k: [r.path for r in v] for k, v in a.items()} == {k: [r.path for r in v] for k, v in b.items()}
    assert {r.path for r in a["valid"]} != {r.path for r in c["valid"]}
    assert len({r.patient for r in a["valid"]}) == 10 and len({r.patient for r in a["test"]}) == 5
    assert sum(len(v) for v in a.values()) == 150
    assert_no_leakage(a)  # no patient in two splits
    for s in a.values():  # every patient keeps all three films together
        assert all(sum(r.patient == p for r in s) == 3 for p in {r.patient for r in s})


def test_preset_splits_are_kept_and_valid_is_carved_when_missing():
    train = [Record(r.path, r.values, r.patient, "train") for r in _records(20)]
    test = [Record(Path(f"t{i}.png"), (0.0,), f"t{i}", "test") for i in range(4)]
    out = split_by_patient(train + test, val_frac=0.25, test_frac=0.5, seed=0)
    assert [r.path for r in out["test"]] == [r.path for r in test]  # test_frac ignored with presets
    assert len({r.patient for r in out["valid"]}) == 5 and len(out["train"]) == 30


def test_bad_fractions_and_too_few_patients():
    with pytest.raises(DataError, match="sum below 1"):
        split_by_patient(_records(10), 0.6, 0.5)
    with pytest.raises(DataError, match="too few"):
        split_by_patient(_records(2), 0.4, 0.4)


def test_leakage_guard_raises_with_counts_not_ids():
    splits = {"train": _records(5), "valid": _records(2), "test": []}
    with pytest.raises(LeakageError) as exc:
        assert_no_leakage(splits)
    msg = str(exc.value)
    assert "2 patients (8 films) in both train and valid" in msg
    assert "Refusing to train" in msg and "00000001" not in msg


def test_course_csvs_share_patients(nih_set):
    _, nih = nih_set
    train = load_labels_csv(nih / "train-small.csv", nih / "images")
    valid = load_labels_csv(nih / "valid-small.csv", nih / "images")
    assert check_for_leakage([r.patient for r in train.records], [r.patient for r in valid.records])


def test_fit_refuses_to_train_on_leaking_splits(nih_set, tmp_path, capsys):
    kind, nih = nih_set
    out = tmp_path / "run"
    rc = cli.main(["-q", "fit", "--labels-csv", str(nih / "train-small.csv"), "--valid-csv", str(nih / "valid-small.csv"),
                   "--images", str(nih / "images"), "--out", str(out), "--input-size", "64", "--epochs", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith(f"cxr-train: error: Patient leakage: {14 if kind == 'shared' else 2} patients") and "in both train and valid" in err
    assert len(err.splitlines()) == 1
    assert not out.exists()  # nothing trained, nothing written
