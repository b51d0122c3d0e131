"""Backends that run a model: onnxruntime (the reference) and TensorRT / TensorRT-RTX (the engine). The protocol
they implement is in ``base``; ``registry`` finds them, third-party backends under the ``pytest_trt.backends``
entry point group."""
