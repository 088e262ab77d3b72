"""The cxr-train command line: fast help without TensorFlow, one-line errors."""

from __future__ import annotations

import subprocess
import sys

from training import cli


def test_help_does_not_import_tensorflow():
    code = ("import sys, training.cli as c; c.build_parser().format_help();"
            "bad=[m for m in ('tensorflow','keras','tf2onnx') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_python_m_training_help():
    proc = subprocess.run([sys.executable, "-m", "training", "fit", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for option in ("--labels-csv", "--images", "--folders", "--input-size", "--uncertain-value", "--uncertain-weight",
                   "--val-frac", "--test-frac", "--weights", "--strategy", "--demo", "--model-version"):
        assert option in proc.stdout


def test_user_errors_are_one_line(tmp_path, capsys):
    rc = cli.main(["fit", "--labels-csv", str(tmp_path / "none.csv"), "--images", str(tmp_path), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1] == f"cxr-train: error: Labels file not found: {tmp_path / 'none.csv'}. Pass it with --labels-csv CSV."
    rc = cli.main(["fit", "--out", str(tmp_path / "r")])
    assert rc == 2 and "No training data" in capsys.readouterr().err
    rc = cli.main(["fit", "--folders", str(tmp_path), "--out", str(tmp_path / "r"), "--input-size", "100"])
    assert rc == 2 and "multiple of 32" in capsys.readouterr().err
    rc = cli.main(["export", str(tmp_path)])
    assert rc == 2 and "is not a training run" in capsys.readouterr().err
