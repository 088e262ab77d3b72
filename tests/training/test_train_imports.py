"""Training's import graph: no circles (imports inside functions count), and the metrics are cheap."""

from __future__ import annotations

import subprocess
import sys

import grimp


def test_no_import_cycles_among_training_modules():
    graph = grimp.build_graph("training", cache_dir=None)
    # grimp reads every import statement, also those inside functions, so a circle hidden behind a
    # lazy import shows up here; an empty set means no import needs removing to break a cycle.
    assert graph.nominate_cycle_breakers("training") == set()


def test_metrics_module_imports_numpy_only():
    """The metrics are tested and used without TensorFlow, matplotlib, OpenCV or pydicom. They live
    in the core (cxrviewer.metrics, shared with `cxrviewer validate`), which brings nothing else of
    cxrviewer along."""
    heavy = ("tensorflow", "keras", "tf2onnx", "matplotlib", "cv2", "pydicom", "onnxruntime")
    code = (
        "import sys, training.metrics\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))\n"
        "print(sorted(m for m in sys.modules if m.startswith('cxrviewer')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "['cxrviewer', 'cxrviewer.metrics']"]
