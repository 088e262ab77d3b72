"""What runs the model: ONNX Runtime or OpenVINO, at fp32, bf16 or int8, chosen by measurement.

- :mod:`.runners`: one small interface (:class:`~.runners.Runner`) over an ONNX Runtime session
  and an OpenVINO compiled model; each fetches the three contract outputs by name from one run.
- :mod:`.machine`: what this CPU and these libraries can do (``/proc/cpuinfo`` flags, OpenVINO's
  ``OPTIMIZATION_CAPABILITIES``), and the pure decision of which combinations to try.
- :mod:`.choice`: ``auto``: the fastest combination that keeps parity with fp32 ONNX Runtime on
  the model's calibration films, measured once per model file and machine and cached.

:class:`cxrviewer.model.Classifier` is the only user; the rest of the package sees the
:class:`~.runners.Engine` a classifier runs on, and passes it on to workers (Ray, the node).
"""

from .runners import BACKENDS, DEVICES, ONNXRUNTIME, OPENVINO, PRECISIONS, Engine

__all__ = ["BACKENDS", "DEVICES", "ONNXRUNTIME", "OPENVINO", "PRECISIONS", "Engine"]
