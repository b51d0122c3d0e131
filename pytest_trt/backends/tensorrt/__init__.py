"""The TensorRT and TensorRT-RTX backend: planning, building, the engine cache, CUDA buffers and running.

Importing this package loads none of its modules (nor tensorrt): ``FLAVORS`` is read by the registry and the
eager API on machines where no engine can run.
"""

# The TensorRT flavors, each named after the module it imports (and its backend's name), in the order
# --trt-backend=auto tries them.
FLAVORS = ("tensorrt", "tensorrt_rtx")
