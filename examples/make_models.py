"""Write the example suite's ONNX models (the models of ``python -m pytest_trt.demo``) into examples/models/.

    python examples/make_models.py                 # writes examples/models/*.onnx
    python examples/make_models.py --nudge 1e-3    # the same, with the MLP's second layer weights 0.1% larger
                                                   # (a "retrained" model: the example suite then fails; rerun
                                                   # without --nudge to restore the committed models)
"""
import argparse
from pathlib import Path

from pytest_trt.demo import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write the example suite's ONNX models.")
    parser.add_argument("out_dir", nargs="?", type=Path, default=Path(__file__).resolve().parent / "models")
    parser.add_argument("--nudge", type=float, default=0.0,
                        help="scale the MLP's second layer weights by 1 + NUDGE (simulates a changed model)")
    args = parser.parse_args()
    main(args.out_dir, args.nudge)
