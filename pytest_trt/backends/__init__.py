"""Backends that run a model: onnxruntime (the reference) and TensorRT / TensorRT-RTX (the engine), found through
``registry``; third-party backends register under the ``pytest_trt.backends`` entry point group."""
