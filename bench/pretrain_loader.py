"""Pretraining loader throughput (decode + multi-crop) per DataLoader worker, as Markdown for docs/BENCHMARKS.md.

    .venv/bin/python bench/pretrain_loader.py [--images N] [--batch-size B] [--workers W [W ...]]
        [--tiny-batches N] [--default-batches N] [--step-seconds S] [--quiet-wait S]

Shards: real photos that ship with installed packages (skimage.data, ultralytics' assets, matplotlib's sample
data), JPEG as stored or re-encoded at quality 90, repeated to --images samples, written with common.shard_writer
in the curation layout (tar + parquet index + _stats.json marker) to a temporary directory removed at exit.
Loader: pretrain.data.loader.build_loader over those shards, one epoch per measurement, for each worker count and
two crop configs: the test-sized one (global 128×96, local 64×48, 2 locals) and the production default
`MultiCropConfig()` (global 1024×768, local 256×192, 6 locals). The first batch (worker start-up, shuffle buffer fill)
is timed apart; steady-state throughput counts the batches after it.

The batch time is set against a backbone training step of the 0.1b size at 512×512 (bench/backbone_step.py's
forward + backward), taken from --step-seconds (per image) or timed here on one image.
"""

# ruff: noqa: E402 - the temporary directory is registered for removal before anything else can fail

import atexit
import shutil
import tempfile
from pathlib import Path

SCRATCH = Path(tempfile.mkdtemp(prefix="humans1b-bench-loader-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)

import argparse
import importlib.util
import io
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import skimage.data
import torch
from backbone_step import (
    QUIET_CORES,
    StepConfig,
    build,
    images,
    machine,
    measured,
    own_cpu_seconds,
    step,
    wait_for_quiet,
)
from PIL import Image

from common.schemas import SHARD_INDEX_SCHEMA
from common.shard_writer import ShardWriter
from pretrain.data.loader import build_loader
from pretrain.data.shards import list_shards
from pretrain.data.views import MultiCropConfig

log = logging.getLogger("bench.pretrain_loader")

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
PACKAGE_PHOTOS = (("ultralytics", "assets/bus.jpg"), ("ultralytics", "assets/zidane.jpg"))
MATPLOTLIB_PHOTO = ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg")
CROPS = {
    "test-sized": MultiCropConfig(global_size=(128, 96), local_size=(64, 48), num_local=2),
    "default": MultiCropConfig(),
}
SAMPLES_PER_SHARD = 64
STEP_CONFIG = StepConfig("0.1b", 512, 512, 1)


# --- shards -------------------------------------------------------------------------------------------------------


def package_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed package, found without importing the package (ultralytics changes the
    environment on import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.is_file() else None


def photos() -> dict[str, bytes]:
    """Name → JPEG bytes of every photo found: package JPEGs as stored, skimage arrays encoded at quality 90."""
    found = {}
    for name in SKIMAGE_PHOTOS:
        buf = io.BytesIO()
        Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB").save(buf, "JPEG", quality=90)
        found[name] = buf.getvalue()
    for package, relative in (*PACKAGE_PHOTOS, MATPLOTLIB_PHOTO):
        path = package_file(package, relative)
        if path is None:
            log.warning("%s not found in package %s; benchmarking without it", relative, package)
            continue
        found[Path(relative).stem] = path.read_bytes()
    return found


def write_shards(out_dir: Path, count: int) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """`count` samples cycling through the photos, SAMPLES_PER_SHARD per shard → (shard paths, photo sizes)."""
    sources = photos()
    sizes = {name: Image.open(io.BytesIO(data)).size for name, data in sources.items()}
    names = sorted(sources)
    for shard_id, start in enumerate(range(0, count, SAMPLES_PER_SHARD)):
        with ShardWriter(out_dir=out_dir, shard_id=shard_id, index_schema=SHARD_INDEX_SCHEMA, image_ext="jpg") as w:
            for i in range(start, min(start + SAMPLES_PER_SHARD, count)):
                name = names[i % len(names)]
                width, height = sizes[name]
                key = f"s{shard_id:05d}-{i:06d}"
                w.write(
                    key=key,
                    files={"jpg": sources[name], "json": {"key": key, "source": name}},
                    index={"source": name, "width": width, "height": height},
                )
    return list_shards(out_dir), sizes


# --- loader -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoaderRun:
    crops: str
    workers: int
    first_batch: float  # seconds until the first batch arrived
    steady_images: int
    steady_seconds: float
    steady_cpu: float  # CPU-seconds of this process and its workers over the same span
    others: float  # cores other processes used during the run

    @property
    def images_per_s(self) -> float:
        return self.steady_images / self.steady_seconds

    @property
    def per_worker(self) -> float:
        return self.images_per_s / max(1, self.workers)

    @property
    def per_cpu_second(self) -> float:
        """Images per CPU-second: what one worker gives on a core of its own, whatever else runs on the machine."""
        return self.steady_images / self.steady_cpu


def run_loader(shards: list[str], crops: str, workers: int, batch_size: int, batches: int) -> LoaderRun:
    """One pass over the first 1 + `batches` batches of an epoch."""
    loader, _ = build_loader(
        shards, batch_size=batch_size, num_workers=workers, crops=CROPS[crops], shuffle_buffer=32, seed=0
    )
    got = 0
    with measured() as span:
        start = time.perf_counter()
        iterator = iter(loader)
        next(iterator)
        first = time.perf_counter() - start
        cpu = own_cpu_seconds()
        for batch in iterator:
            got += len(batch["keys"])
            if got >= batches * batch_size:
                break
        steady = time.perf_counter() - start - first
        cpu = own_cpu_seconds() - cpu
    del iterator  # stops the workers
    if got < batches * batch_size:
        raise RuntimeError(f"the shards gave only {got} images after the first batch; raise --images")
    return LoaderRun(crops, workers, first, got, steady, cpu, span.others)


def time_backbone_step(threads: int) -> float:
    """Median seconds of three forward + backward steps of the 0.1b backbone on one 512×512 image, after one."""
    torch.set_num_threads(threads)
    net, loss_fn = build("ours", STEP_CONFIG)
    x = images(STEP_CONFIG)
    step(net, loss_fn, x)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        step(net, loss_fn, x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- report -------------------------------------------------------------------------------------------------------


def table(runs: list[LoaderRun], batch_size: int) -> list[str]:
    lines = [
        "| crops | workers | first batch (s) | images timed | images/s | images/s per worker | images per CPU-s "
        f"| s per batch of {batch_size}, one worker (CPU) | others (cores) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.crops} | {r.workers} | {r.first_batch:.2f} | {r.steady_images} | {r.images_per_s:.1f} "
            f"| {r.per_worker:.1f} | {r.per_cpu_second:.1f} | {batch_size / r.per_cpu_second:.2f} | {r.others:.2f} |"
        )
    return lines


def against_step(runs: list[LoaderRun], batch_size: int, step_seconds: float, source: str) -> list[str]:
    lines = [""]
    batch_step = step_seconds * batch_size
    for crops in CROPS:
        one = [r for r in runs if r.crops == crops and r.workers == 1]
        if not one:
            continue
        rate = one[0].per_cpu_second  # a worker on a core of its own
        load = batch_size / rate
        lines.append(
            f"- {crops} crops: one worker loads a batch of {batch_size} in {load:.2f} s; the 0.1b backbone at 512×512 "
            f"steps through {batch_size} images in {batch_step:.1f} s ({step_seconds:.2f} s per image, {source}): "
            f"one worker loads {batch_step / load:.0f}× faster than that step consumes, so 1 worker keeps up; "
            f"{100 / rate:.1f} workers feed 100 images/s."
        )
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=384, help="samples written to the shards")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader worker counts")
    parser.add_argument("--tiny-batches", type=int, default=32, help="timed batches with the test-sized crops")
    parser.add_argument("--default-batches", type=int, default=6, help="timed batches with the default crops")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the main process (workers always run 1)"
    )
    parser.add_argument(
        "--step-seconds",
        type=float,
        help="per-image seconds of a 0.1b step at 512×512 from bench/backbone_step.py (default: timed here)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="seconds to wait, before each measurement, for other processes to leave the CPUs idle (0: never)",
    )
    args = parser.parse_args(argv)
    if min(args.images, args.batch_size, args.tiny_batches, args.default_batches, args.threads) < 1:
        parser.error("--images, --batch-size, --*-batches and --threads must be at least 1")
    needed = (1 + max(args.tiny_batches, args.default_batches)) * args.batch_size
    if args.images < needed:
        parser.error(f"--images must be at least {needed} for one first batch and the timed batches")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    shards, sizes = write_shards(SCRATCH / "shards", args.images)
    megapixels = statistics.mean(w * h for w, h in sizes.values()) / 1e6
    log.info("%d samples in %d shards from %d photos", args.images, len(shards), len(sizes))

    runs = []
    for crops in CROPS:
        batches = args.tiny_batches if crops == "test-sized" else args.default_batches
        for workers in args.workers:
            if args.quiet_wait:
                wait_for_quiet(args.quiet_wait)
            runs.append(run_loader(shards, crops, workers, args.batch_size, batches))
            r = runs[-1]
            log.info(
                "%s crops, %d workers: %.1f images/s (others %.2f cores)", crops, workers, r.images_per_s, r.others
            )

    if args.step_seconds is None:
        if args.quiet_wait:
            wait_for_quiet(args.quiet_wait)
        log.info("timing the 0.1b backbone step at 512×512 on one image, %d torch thread(s)", os.cpu_count())
        step_seconds, source = time_backbone_step(os.cpu_count() or 1), f"timed here on {os.cpu_count()} threads"
    else:
        step_seconds, source = args.step_seconds, "given with --step-seconds"

    command = " ".join([".venv/bin/python", "bench/pretrain_loader.py", *argv])
    photo_list = ", ".join(f"{name} {w}×{h}" for name, (w, h) in sorted(sizes.items()))
    lines = [
        "### Pretraining loader",
        "",
        f"{machine()}; main process {args.threads} torch thread(s), workers 1 each",
        "",
        f"`{command}`",
        "",
        f"{args.images} samples in {len(shards)} shards, cycling through {len(sizes)} photos ({photo_list}; "
        f"mean {megapixels:.2f} MP); batch {args.batch_size}, shuffle buffer 32.",
        "",
        *table(runs, args.batch_size),
        *against_step(runs, args.batch_size, step_seconds, source),
    ]
    busy = [f"{r.crops}/{r.workers}" for r in runs if r.others >= QUIET_CORES]
    if busy:
        lines += ["", f"Other processes kept the CPUs busy during {', '.join(busy)}: rerun those on an idle machine."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
