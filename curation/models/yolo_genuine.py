"""Genuine ultralytics checkpoints built offline, and the allowlist of yolo_allowlist.json enumerated from them.

A released `.pt` is what ultralytics' trainer writes: its checkpoint dict (model, ema, optimizer, train_args, metrics,
...) and then `strip_optimizer` (EMA as the model, fp16, optimizer dropped, date / version / license added). Training
a family's yaml for one epoch at 32 px on two photos that ship with ultralytics makes ultralytics write exactly that
file, with near-random weights, in seconds and without a download.

    python -m curation.models.yolo_genuine allowlist            # rebuild yolo_allowlist.json (every family/scale/task)
    python -m curation.models.yolo_genuine checkpoint --model yolo11n.yaml --task detect OUT.pt

Run it in a process of its own: ultralytics' trainer sets process-wide torch state (deterministic algorithms, seeds).
"""

import argparse
import atexit
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from curation.models.pickle_guard import ALLOWLIST_PATH, collect_uses
from curation.models.registry import prepare_ultralytics_env
from curation.sample_corpus.sources import photo_path

log = logging.getLogger(__name__)

# Families whose detect and pose yamls ultralytics ships and whose release names the registry can point at.
FAMILIES = ("yolov8", "yolo11", "yolo12", "yolo26")
SCALES = "nsmlx"
TASKS = {"detect": "", "pose": "-pose"}  # task -> yaml suffix
PHOTOS = ("bus", "zidane")
COCO_FLIP_IDX = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]  # ultralytics' coco8-pose.yaml


def model_yamls(families: Iterable[str] = FAMILIES, scales: str = SCALES) -> list[tuple[str, str]]:
    """(yaml name, task) of every family x scale x task, e.g. ("yolo11m-pose.yaml", "pose")."""
    return [
        (f"{family}{scale}{suffix}.yaml", task)
        for family in families
        for scale in scales
        for task, suffix in TASKS.items()
    ]


def write_dataset(root: Path, task: str) -> Path:
    """A two-photo YOLO dataset (the same images for train and val), one person box each; returns its data.yaml."""
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(PHOTOS):
            shutil.copyfile(photo_path(name), root / "images" / split / f"{name}.jpg")
            label = [0, 0.5, 0.5, 0.4 + 0.1 * i, 0.6]
            if task == "pose":
                label += [v for k in range(17) for v in (0.35 + 0.015 * k, 0.3 + 0.02 * k, 2)]
            (root / "labels" / split / f"{name}.txt").write_text(" ".join(f"{v:g}" for v in label) + "\n")
    data: dict[str, Any] = {"path": str(root), "train": "images/train", "val": "images/val", "names": {0: "person"}}
    if task == "pose":
        data |= {"kpt_shape": [17, 3], "flip_idx": COCO_FLIP_IDX}
    path = root / "data.yaml"
    path.write_text(json.dumps(data))  # YAML is a superset of JSON
    return path


def train_release_checkpoint(model_yaml: str, task: str, workdir: Path) -> Path:
    """Train `model_yaml` for one epoch; ultralytics saves best.pt and strips it exactly as it does a release."""
    prepare_ultralytics_env()
    from ultralytics import YOLO

    data = write_dataset(workdir / "data", task)
    YOLO(model_yaml, task=task).train(
        data=str(data),
        epochs=1,
        imgsz=32,
        batch=2,
        workers=0,
        device="cpu",
        amp=False,
        plots=False,
        verbose=False,
        seed=0,
        project=str(workdir / "runs"),
        name="train",
        exist_ok=True,
    )
    return workdir / "runs" / "train" / "weights" / "best.pt"


def release_checkpoints(pairs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, bytes]]:
    """(yaml name, file bytes) of a genuine checkpoint per (yaml, task), each trained in a temporary directory."""
    for model_yaml, task in pairs:
        with tempfile.TemporaryDirectory(prefix="humans1b-genuine-") as tmp:
            yield model_yaml, train_release_checkpoint(model_yaml, task, Path(tmp)).read_bytes()


def like_release(model_yaml: str, task: str, trained: bytes) -> bytes:
    """A checkpoint of `model_yaml` without training it: the model built from the yaml and run once in eval mode (as
    the trainer's validation runs its EMA), then written into `trained`'s checkpoint dict (a genuine release of the
    same family and task) the way strip_optimizer writes a model. Much faster than training a large scale, and the
    allowlist built with it equals the one from training every scale (the allowlist test compares them)."""
    import io
    from copy import deepcopy

    import torch
    from ultralytics import YOLO

    ckpt = torch.load(io.BytesIO(trained), map_location="cpu", weights_only=False)  # our own genuine file
    template = ckpt.get("ema") or ckpt["model"]
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        model = YOLO(model_yaml, task=task).model.eval()
        model(torch.zeros(1, 3, 32, 32))
    model = deepcopy(model).half()
    for p in model.parameters():
        p.requires_grad = False
    model.args, model.names, model.criterion = dict(template.args), dict(template.names), None
    for name in ("kpt_names", "kpt_oks_sigmas"):  # pose attributes the trainer sets from the dataset
        if hasattr(template, name):
            setattr(model, name, getattr(template, name))
    buffer = io.BytesIO()
    torch.save({**ckpt, "model": model}, buffer)
    return buffer.getvalue()


def allowlist_checkpoints(families: Iterable[str], scales: str, trained_scales: str) -> Iterator[tuple[str, bytes]]:
    """Genuine checkpoints of every family x scale x task: trained for `trained_scales`, like_release for the rest
    (each family/task needs one trained scale as the template)."""
    families = list(families)
    trained = dict(release_checkpoints(model_yamls(families, trained_scales)))
    yield from trained.items()
    for family in families:
        for task, suffix in TASKS.items():
            template = trained[f"{family}{trained_scales[0]}{suffix}.yaml"]
            for scale in scales:
                name = f"{family}{scale}{suffix}.yaml"
                if scale not in trained_scales:
                    yield name, like_release(name, task, template)


def yaml_vocabulary(model_yaml: dict[str, Any]) -> dict[str, set[str]]:
    """What a model yaml dict names: its keys, layer modules, string arguments and activation."""
    rows = list(model_yaml.get("backbone", [])) + list(model_yaml.get("head", []))
    strings = {a for row in rows for a in row[3] if isinstance(a, str)}
    activation = model_yaml.get("activation")
    return {
        "keys": set(model_yaml),
        "modules": {row[2] for row in rows},
        "strings": strings,
        "activations": {activation} if isinstance(activation, str) else set(),
    }


def build_allowlist(checkpoints: Iterable[tuple[str, bytes]]) -> dict[str, Any]:
    """The allowlist document: every (global, use) and the yaml vocabulary of the given genuine checkpoints."""
    import io

    import torch
    import ultralytics

    uses: dict[str, set[str]] = {}
    vocabulary: dict[str, set[str]] = {"keys": set(), "modules": set(), "strings": set(), "activations": set()}
    names = []
    for name, data in checkpoints:
        names.append(name)
        for glob, how in collect_uses(data).items():
            uses.setdefault(glob, set()).update(how)
        # Our own freshly trained file: safe to unpickle, and the model's yaml is only reachable that way.
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        for part, values in yaml_vocabulary((ckpt.get("ema") or ckpt["model"]).yaml).items():
            vocabulary[part] |= values
    return {
        "about": "Globals of genuine ultralytics detect/pose checkpoints and the uses they make of them; written by "
        "`python -m curation.models.yolo_genuine allowlist`, read by curation/models/pickle_guard.py and "
        "curation/models/yolo_safetensors.py.",
        "ultralytics": ultralytics.__version__,
        "torch": torch.__version__.split("+")[0],
        "checkpoints": names,
        "globals": {glob: sorted(how) for glob, how in sorted(uses.items())},
        "yaml": {part: sorted(values) for part, values in vocabulary.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curation.models.yolo_genuine", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    allow = sub.add_parser("allowlist", help="rebuild the allowlist from genuine checkpoints of every family")
    allow.add_argument("--families", nargs="+", default=list(FAMILIES))
    allow.add_argument("--scales", default=SCALES)
    allow.add_argument(
        "--trained-scales", default=SCALES, help="scales trained as releases; the others are built (like_release)"
    )
    allow.add_argument("--out", type=Path, default=ALLOWLIST_PATH, help="where to write it ('-': stdout)")
    one = sub.add_parser("checkpoint", help="write one genuine release-format checkpoint")
    one.add_argument("--model", default="yolo11n.yaml", help="an ultralytics model yaml")
    one.add_argument("--task", choices=sorted(TASKS), default="detect")
    one.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if "MPLCONFIGDIR" not in os.environ:  # the trainer imports matplotlib, which would make ~/.config/matplotlib
        os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="humans1b-matplotlib-")
        atexit.register(shutil.rmtree, os.environ["MPLCONFIGDIR"], ignore_errors=True)
    if args.command == "checkpoint":
        with tempfile.TemporaryDirectory(prefix="humans1b-genuine-") as tmp:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(train_release_checkpoint(args.model, args.task, Path(tmp)), args.out)
        log.info("genuine %s checkpoint of %s: %s", args.task, args.model, args.out)
        return 0
    document = build_allowlist(allowlist_checkpoints(args.families, args.scales, args.trained_scales))
    text = json.dumps(document, indent=1) + "\n"
    if str(args.out) == "-":
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
        log.info("allowlist of %d checkpoints: %s", len(document["checkpoints"]), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
