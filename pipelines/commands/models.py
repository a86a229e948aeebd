"""`humans1b models convert-yolo IN.pt OUT.safetensors`: the one-time conversion that lets production load YOLO
weights with no pickle at all (see curation/models/yolo_safetensors.py)."""

import argparse
from pathlib import Path

from curation.models.yolo_safetensors import convert_yolo

NAME = "models"
HELP = "model weights tools: convert-yolo writes an ultralytics .pt as pickle-free .safetensors"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    convert = sub.add_parser(
        "convert-yolo",
        help="load a YOLO .pt once through the pickle check and write its weights + model yaml as .safetensors",
        description="Load IN.pt once through the pickle check and write OUT.safetensors: the weights, plus the "
        "model yaml, task, class names and kpt_shape as metadata. Set models.detector.weights (or models.pose."
        "weights) to OUT.safetensors: it loads with no pickle, and its sha256 can be pinned with .sha256.",
    )
    convert.add_argument("source", type=Path, metavar="IN.pt", help="an ultralytics detect or pose checkpoint")
    convert.add_argument("target", type=Path, metavar="OUT.safetensors", help="where to write the converted file")
    convert.add_argument("--sha256", help="refuse IN.pt unless its sha256 is this (hex), checked before it is read")


def run(args: argparse.Namespace) -> int:
    done = convert_yolo(args.source, args.target, sha256=args.sha256)
    print(
        f"converted {args.source} ({done.task}, {done.tensors} tensors) to {done.path}; "
        f"pin it with models.{'pose' if done.task == 'pose' else 'detector'}.sha256={done.sha256}"
    )
    return 0
