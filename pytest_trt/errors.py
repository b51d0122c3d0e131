"""Exception types. Every user-facing error is one sentence that names the problem and the fix."""


class TrtCompareError(Exception):
    """Base class for pytest-trt errors that are the user's to fix (bad arguments, files, models)."""


class SpecError(TrtCompareError, ValueError):
    """A marker or API argument is invalid."""


class ModelError(TrtCompareError):
    """A model file is missing, unreadable, or not a usable ONNX model."""


class InputError(TrtCompareError, ValueError):
    """User-supplied or generated inputs do not fit the model."""


class GoldenError(TrtCompareError):
    """A golden file is missing, corrupt, or was recorded for different inputs."""


class BackendError(TrtCompareError):
    """A backend is unknown, cannot run here, or failed."""


class TrtPrecisionWarning(UserWarning):
    """A check asked for a reduced precision (fp16, bf16, int8, fp8, tf32), and the engine's layer census shows
    (almost) no layer running in it: the check compared a higher-precision engine. ``--trt-precision-check strict``
    or a marker's ``min_precision_share=`` turns it into a failure."""


class TrtDriftWarning(UserWarning):
    """A check passed, but its engine's error against the reference grew markedly since its golden was
    recorded (``--trt-drift-factor``); ``--trt-strict-drift`` or ``filterwarnings = error::pytest_trt.TrtDriftWarning``
    turns it into a failure."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (third-party errors can be pages long)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
