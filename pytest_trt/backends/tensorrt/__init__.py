"""The TensorRT and TensorRT-RTX backend: planning, building, the engine cache, CUDA buffers and running."""
