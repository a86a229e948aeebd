"""Score phase throughput on this machine, printed as Markdown tables for docs/BENCHMARKS.md.

    .venv/bin/python bench/score_throughput.py [--images N] [--production-images N]
        [--profile tiny|production-sized|both] [--skip-pipeline] [--threads N] [--repeats N] [--quiet-wait S]

1. Plain loop, no Ray: each stage of build_stages() is called on the valid images of the sample corpus (repeated to
   the requested count) in slices of its configured batch size, each stage's output feeding the next. The first
   call loads the model and warms up and is timed apart; then all slices, the first one again, are timed
   (--repeats passes, the fastest kept).
   `tiny` is the demo's model set; `production-sized` is YOLO11m / YOLO11m-pose from their yaml, open_clip ViT-L-14
   and the 768-d aesthetic and NSFW MLPs, all with random weights: production cost, nothing to download.
   Then the CPU side a GPU node still pays per image: decode and each model's host-side preprocessing, in core-ms
   (process CPU time, every thread counted), times how often the pipeline does each per image.
2. Pipeline: run_score on a folder of the same images with configs/curation/demo.yaml (tiny profile, audit mode),
   three times in one local Ray session: the images twice, then twice as many. Each run starts its own actors, so
   the doubled run less the second run is the steady-state time of the images; wall and steady-state times are set
   against the plain-loop sum of the tiny profile (at --threads, and at the one thread each actor gets).
Other processes on the machine skew every figure: each measurement waits for idle CPUs (--quiet-wait) and reports
the cores others used meanwhile.
"""

# ruff: noqa: E402 - the offline switches must be in the environment before ray, ultralytics or open_clip import

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

SCRATCH = Path(tempfile.mkdtemp(prefix="humans1b-bench-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)
(SCRATCH / "ultralytics").mkdir()
os.environ.update(
    {
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "0",
        "YOLO_CONFIG_DIR": str(SCRATCH / "ultralytics"),
        "HF_HUB_OFFLINE": "1",
    }
)
# ultralytics logs to the stdout it finds at import, and sets OMP_NUM_THREADS=1 when it is unset: imported here under
# a redirect, its messages go to stderr, away from the tables on stdout; the environment is put back as it was.
_OMP = os.environ.get("OMP_NUM_THREADS")
with contextlib.redirect_stdout(sys.stderr):
    import ultralytics  # noqa: F401
if _OMP is None:
    os.environ.pop("OMP_NUM_THREADS", None)

import argparse
import datetime
import logging
import platform
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import psutil
import pyarrow as pa
import ray
import torch

from common.config import to_object
from common.ray_bootstrap import ray_session
from curation.config import load_curate_config
from curation.models.registry import ClipConfig, ModelsConfig, production_profile
from curation.readers import discover_input_shards, read_input_shard
from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus
from curation.score.config import ScoreConfig
from curation.score.runner import CANDIDATES_DIR, build_stages, run_score
from curation.stages.phash import phash_uint64
from curation.stages.pixels import decode_batch

log = logging.getLogger("bench.score_throughput")

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "curation" / "demo.yaml"
PROFILES = ("tiny", "production-sized")
PIXEL_STAGES = ("decode", "phash", "detect", "head_pose", "clip")  # each decodes the image bytes itself
QUIET_CORES = 0.2  # other processes using less than this leave the machine idle enough to measure
MIN_STEADY_SHARE = 0.1  # a steady-state time under this share of a run's wall is noise in the difference of two runs
MIN_ACCOUNTED_SECONDS = 0.5  # /proc/stat counts in clock ticks (10 ms): shorter spans give no usable load figure


def production_sized_models() -> ModelsConfig:
    """The production architectures with random weights: no weights file, no download."""
    prod = production_profile()
    return replace(
        prod,
        detector=replace(prod.detector, weights="yolo11m.yaml"),
        pose=replace(prod.pose, weights="yolo11m-pose.yaml"),
        clip=replace(prod.clip, pretrained=""),
        aesthetic=replace(prod.aesthetic, weights=None),
        nsfw=replace(prod.nsfw, weights=None),
    )


def score_config(profile: str) -> ScoreConfig:
    """demo.yaml as the pipeline runs it (stage batch sizes, audit mode), with the model set of `profile`. The plain
    loop reads neither input nor output; the config requires them."""
    overrides = pipeline_overrides(SCRATCH / "unused-input", SCRATCH / "unused")  # siblings: output never in input
    cfg: ScoreConfig = to_object(load_curate_config(DEMO_CONFIG, overrides))
    return cfg if profile == "tiny" else replace(cfg, models=production_sized_models())


def pipeline_overrides(images_dir: Path, out: Path) -> list[str]:
    return [f'input=["{images_dir}"]', f"output={out}"]


# --- inputs -----------------------------------------------------------------------------------------------------------


def image_folder(count: int) -> Path:
    """`count` files cycling through the sample corpus images that decode; unique names, so unique keys."""
    out = SCRATCH / f"images-{count}"
    if out.exists():
        return out
    corpus = build_sample_corpus(SCRATCH / "corpus", SampleCorpusConfig())
    valid = [e for e in corpus.entries if e.expected_reason is None]
    out.mkdir()
    for i in range(count):
        entry = valid[i % len(valid)]
        shutil.copyfile(corpus.images_dir / entry.path, out / f"{i:05d}-{Path(entry.path).name}")
    log.info("%d images (%d distinct) in %s", count, len(valid), out)
    return out


def read_rows(images_dir: Path) -> pa.Table:
    """The rows the pipeline's reader gives for the folder, in READ_SCHEMA."""
    return pa.concat_tables([read_input_shard(s) for s in discover_input_shards([str(images_dir)])])


# --- CPU accounting: other work on the machine skews every figure, so each measurement reports it --------------------


@dataclass
class Span:
    """One measured span: its wall time, and the cores that processes outside this one and its children kept busy."""

    wall: float = 0.0
    others: float = 0.0  # cores, averaged over the span


def busy_cpu_seconds() -> float:
    """CPU-seconds the whole machine has been busy since boot (/proc/stat: all but idle and iowait; steal counts)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_times() -> dict[tuple[int, float], float]:
    """CPU-seconds of this process and of each process below it (a local Ray head and its workers), by (pid, start)."""
    me = psutil.Process()
    times = {}
    for process in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = process.cpu_times()
            times[(process.pid, process.create_time())] = t.user + t.system
    return times


@contextlib.contextmanager
def measured(watch: float | None = None) -> Iterator[Span]:
    """The block's wall time, and the cores other processes used meanwhile: the machine's busy time less this process
    tree's. With `watch`, the tree is sampled every `watch` seconds, so a worker that ends inside the block still
    counts as ours up to its last sample."""
    span = Span()
    first = own_cpu_times()
    last = dict(first)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(watch):
            last.update(own_cpu_times())

    watcher = threading.Thread(target=sample, daemon=True)
    busy, wall = busy_cpu_seconds(), time.perf_counter()
    if watch:
        watcher.start()
    try:
        yield span
    finally:
        stop.set()
        if watch:
            watcher.join()
    span.wall = time.perf_counter() - wall
    last.update(own_cpu_times())
    own = sum(cpu - first.get(key, 0.0) for key, cpu in last.items())
    span.others = max(busy_cpu_seconds() - busy - own, 0.0) / span.wall


def wait_for_quiet(max_wait: float, *, sample: float = 2.0) -> float:
    """Wait until other processes use under QUIET_CORES over `sample` seconds, for at most `max_wait` seconds.
    Returns the cores they used in the last sample."""
    deadline = time.monotonic() + max_wait
    while True:
        with measured(watch=0.5) as span:
            time.sleep(sample)
        if span.others < QUIET_CORES or time.monotonic() >= deadline:
            return span.others
        log.info("other processes use %.1f cores; waiting for a quiet machine", span.others)


# --- 1. plain loop ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageTiming:
    name: str
    batch_size: int
    load_seconds: float  # setup() plus the first (warm-up) slice
    seconds: float  # all slices, the fastest of the repeats
    others: float  # cores other processes used during that repeat
    rows: int

    @property
    def images_per_s(self) -> float:
        return self.rows / self.seconds


def time_stages(cfg: ScoreConfig, table: pa.Table, threads: int, repeats: int, quiet_wait: float) -> list[StageTiming]:
    """Each stage over all rows in slices of its batch size, `repeats` times, keeping the fastest; its output feeds
    the next stage, as in the pipeline.

    torch runs `threads` intra-op threads: set after the warm-up, since ultralytics sets its own count (CPUs - 1)
    when a model first predicts on CPU.
    """
    timings = []
    for stage in build_stages(cfg):
        size = stage.resources.batch_size
        slices = [table.slice(i, size) for i in range(0, table.num_rows, size)]
        start = time.perf_counter()
        stage(slices[0])  # setup() runs on the first call
        load = time.perf_counter() - start
        torch.set_num_threads(threads)
        if quiet_wait:
            wait_for_quiet(quiet_wait)
        spans = []
        for _ in range(repeats):
            with measured() as span:
                outputs = [stage(batch) for batch in slices]
            spans.append(span)
            if quiet_wait and span.others >= QUIET_CORES:
                wait_for_quiet(quiet_wait)
        table = pa.concat_tables(outputs)
        failed = [r for r in table["reject_reason"].to_pylist() if r is not None]
        if failed:
            raise RuntimeError(f"stage {stage.name} rejected {len(failed)} decodable rows, e.g. {failed[0]}")
        best = min(spans, key=lambda s: s.wall)
        timings.append(StageTiming(stage.name, size, load, best.wall, best.others, table.num_rows))
        log.info(
            "  %-10s %7.1f images/s (repeats %s s; other processes %.2f cores; load + warm-up %.1f s)",
            stage.name,
            timings[-1].images_per_s,
            " ".join(f"{s.wall:.2f}" for s in spans),
            best.others,
            load,
        )
    return timings


def plain_loop(args: argparse.Namespace, profile: str, threads: int) -> list[StageTiming]:
    count = args.images if profile == "tiny" else args.production_images
    log.info("plain loop, %s, %d images, %d thread(s)", profile, count, threads)
    folder = image_folder(count)
    cfg = score_config(profile)
    return time_stages(cfg, read_rows(folder), threads, args.repeats, args.quiet_wait)


def time_decode(cfg: ScoreConfig, rows: pa.Table) -> float:
    """Seconds for one decode of every row: what each pixel stage spends before its own work."""
    start = time.perf_counter()
    decode_batch(rows, cfg.decode)
    return time.perf_counter() - start


# --- CPU side: what stays on the CPUs when the models run on GPUs ----------------------------------------------------


@dataclass(frozen=True)
class CpuStep:
    name: str
    core_ms: float  # process CPU time per image, every thread counted, the fastest of the repeats
    times: int  # how often the pipeline does it per image today
    where: str


def core_ms(work: Callable[[], object], images: int, repeats: int) -> float:
    """Process CPU time of `work` per image: counts every thread, so a multi-threaded step shows its real cost."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return 1000 * best / images


def clip_image_size(cfg: ClipConfig) -> int:
    if cfg.arch is not None:
        return cfg.arch.image_size
    import open_clip

    return int(open_clip.get_model_config(cfg.model)["vision_cfg"]["image_size"])


def yolo_host_side(images: list, letterbox) -> np.ndarray:
    """What ultralytics does on the host before the uint8 batch goes to the device: RGB -> BGR, letterbox, stack."""
    return np.stack([letterbox(image=np.ascontiguousarray(np.asarray(im.convert("RGB"))[..., ::-1])) for im in images])


def cpu_side(cfg: ScoreConfig, rows: pa.Table, repeats: int) -> list[CpuStep]:
    import open_clip
    from ultralytics.data.augment import LetterBox

    images = decode_batch(rows, cfg.decode)
    n, imgsz, size = len(images), cfg.models.detector.imgsz, clip_image_size(cfg.models.clip)
    letterbox = LetterBox((imgsz, imgsz), auto=False, stride=32)  # rect=False in curation/models/yolo.py
    transform = open_clip.image_transform(size, is_train=False)
    return [
        CpuStep(
            "decode + validate", core_ms(lambda: decode_batch(rows, cfg.decode), n, repeats), 5, "every pixel stage"
        ),
        CpuStep("phash of the pixels", core_ms(lambda: [phash_uint64(im) for im in images], n, repeats), 1, "phash"),
        CpuStep(
            f"YOLO host side (letterbox {imgsz})",
            core_ms(lambda: yolo_host_side(images, letterbox), n, repeats),
            2,
            "detect, head_pose",
        ),
        CpuStep(
            f"CLIP transform ({size} px, to tensor)",
            core_ms(lambda: torch.stack([transform(im.convert("RGB")) for im in images]), n, repeats),
            1,
            "clip",
        ),
    ]


def cpu_side_table(profile: str, rows: int, repeats: int, steps: list[CpuStep]) -> list[str]:
    today = sum(s.core_ms * s.times for s in steps)
    decode = steps[0]
    shared = today - decode.core_ms * (decode.times - 1)  # the same steps, the image decoded once
    lines = [
        f"**CPU side per image, `{profile}`** (decode and host-side preprocessing; process CPU time, all threads; "
        f"{rows} images, fastest of {repeats})",
        "",
        "| step | core-ms / image | times per image (stages) | core-ms / image in the pipeline |",
        "|---|---:|---:|---:|",
    ]
    for s in steps:
        lines.append(f"| {s.name} | {s.core_ms:.2f} | {s.times} ({s.where}) | {s.core_ms * s.times:.2f} |")
    lines += [
        f"| **all, as the pipeline runs today** | | | {today:.2f} |",
        f"| all, with one shared decode | | | {shared:.2f} |",
    ]
    return lines


# --- 2. pipeline ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineRun:
    name: str
    rows: int
    wall: float
    first_shard: float  # seconds from the start until the first shard was written
    stage_seconds: dict[str, float]  # inside the stages, summed over rows (stats.json)
    others: float  # cores other processes used during the run


def run_pipeline(name: str, images_dir: Path, out: Path, quiet_wait: float) -> PipelineRun:
    if quiet_wait:
        wait_for_quiet(quiet_wait)
    log.info("pipeline, %s: %s -> %s", name, images_dir, out)
    cfg = load_curate_config(DEMO_CONFIG, pipeline_overrides(images_dir, out))
    start = time.time()  # wall clock: compared with the marker files' modification times
    with measured(watch=0.5) as span:
        run = run_score(cfg)
    markers = sorted(p.stat().st_mtime for p in (out / CANDIDATES_DIR).glob("*.done.json"))
    if run.stats["kept"] != run.stats["rows_in"]:
        raise RuntimeError(f"pipeline {name} kept {run.stats['kept']} of {run.stats['rows_in']} decodable rows")
    log.info("pipeline, %s: %d images in %.1f s", name, run.stats["rows_in"], span.wall)
    return PipelineRun(
        name, run.stats["rows_in"], span.wall, markers[0] - start, run.stats["stage_seconds"], span.others
    )


def run_pipelines(count: int, out: Path, quiet_wait: float) -> tuple[float, list[PipelineRun]]:
    """In one local Ray session: `count` images twice (the first run also starts Ray's worker processes), then twice
    as many. Every run starts its own actors, so the extra images of the last run give the steady-state time."""
    ray.data.DataContext.get_current().enable_progress_bars = False
    plan = [("cold", count), ("warm", count), ("warm, twice the images", 2 * count)]
    start = time.perf_counter()
    with ray_session():  # every run_score joins it
        head = time.perf_counter() - start
        log.info("local Ray head up in %.1f s", head)
        runs = [run_pipeline(name, image_folder(n), out / f"run-{i}", quiet_wait) for i, (name, n) in enumerate(plan)]
    return head, runs


# --- report -----------------------------------------------------------------------------------------------------------

MODELS = {
    "tiny": "YOLO11n, YOLO11n-pose, 2-layer CLIP, 64-d aesthetic MLP",
    "production-sized": "YOLO11m, YOLO11m-pose, CLIP ViT-L-14, 768-d aesthetic and NSFW MLPs; random weights",
}


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = models[0] if models else platform.processor() or "unknown CPU"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"nproc {os.cpu_count()} ({cpu}), {memory:.0f} GiB, {gpu}; torch {torch.__version__}, ray {ray.__version__}, "
        f"Python {platform.python_version()}"
    )


def plain_sum(timings: list[StageTiming]) -> float:
    return sum(t.seconds for t in timings)


def overhead(seconds: float, reference: float) -> str:
    return f"{100 * (seconds - reference) / reference:+.0f} %"


def cores(others: float, seconds: float) -> str:
    return f"{others:.2f}" if seconds >= MIN_ACCOUNTED_SECONDS else "-"


def stage_table(profile: str, threads: int, timings: list[StageTiming]) -> list[str]:
    total, rows = plain_sum(timings), timings[0].rows
    lines = [
        f"**Plain loop, `{profile}`** ({MODELS[profile]}; {rows} images; torch {threads} thread(s))",
        "",
        "| stage | batch | load + warm-up (s) | time (s) | images/s | ms/image | share | others (cores) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in timings:
        lines.append(
            f"| {t.name} | {t.batch_size} | {t.load_seconds:.1f} | {t.seconds:.2f} | {t.images_per_s:.1f} "
            f"| {1000 * t.seconds / t.rows:.1f} | {100 * t.seconds / total:.0f} % | {cores(t.others, t.seconds)} |"
        )
    lines.append(f"| **all stages** | | | {total:.2f} | {rows / total:.1f} | {1000 * total / rows:.1f} | 100 % | |")
    busy = [t.name for t in timings if t.seconds >= MIN_ACCOUNTED_SECONDS and t.others >= QUIET_CORES]
    return lines + busy_warning(busy)


def busy_warning(names: list[str]) -> list[str]:
    if not names:
        return []
    return ["", f"Other processes kept the CPUs busy during {', '.join(names)}: rerun those on an idle machine."]


def pipeline_table(head: float, runs: list[PipelineRun], plain: dict[int, list[StageTiming]]) -> list[str]:
    """`runs` as run_pipelines gives them; `plain`: the tiny plain loop over the same images by torch thread count."""
    cold, warm, double = runs
    sums = {threads: plain_sum(timings) for threads, timings in plain.items()}
    steady = double.wall - warm.wall  # the second half of the doubled run: no start-up in it
    lines = [
        "**Pipeline** (`run_score` with configs/curation/demo.yaml: tiny profile, audit mode, shards of 16 images; "
        f"three runs in one local Ray session, whose start took {head:.1f} s)",
        "",
        "| run | images | wall (s) | images/s | first shard done (s) | others (cores) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.name} | {r.rows} | {r.wall:.1f} | {r.rows / r.wall:.2f} | {r.first_shard:.1f} | {r.others:.2f} |"
        )
    lines += busy_warning([r.name for r in runs if r.others >= QUIET_CORES])

    def against(seconds: float) -> str:
        return " / ".join(overhead(seconds, v) for v in sums.values())

    threads = " / ".join(f"{n} thread(s)" for n in sums)
    lines += [
        "",
        f"| {warm.rows} images | pipeline (s) | overhead against the plain-loop sum at {threads} "
        f"({' / '.join(f'{v:.2f} s' for v in sums.values())}) |",
        "|---|---:|---:|",
        f"| whole run, cold | {cold.wall:.1f} | {against(cold.wall)} |",
        f"| whole run, warm | {warm.wall:.1f} | {against(warm.wall)} |",
    ]
    if steady > MIN_STEADY_SHARE * warm.wall:
        lines += [
            f"| steady state (doubled run less warm run) | {steady:.1f} | {against(steady)} |",
            f"| fixed cost per run (warm run less steady state) | {warm.wall - steady:.1f} | |",
        ]
    else:
        lines.append("| steady state | n/a: the doubled run took about as long; raise --images | |")
    labels = [f"plain, {n} thread(s) (s)" for n in plain]
    lines += [
        "",
        f"Time inside each stage (stage_seconds, summed over rows) for the {warm.rows} images, plain loop against the "
        "warm pipeline run:",
        "",
        f"| stage | {' | '.join(labels)} | in pipeline (s) | pipeline / plain, {list(plain)[-1]} thread(s) |",
        "|---|" + "---:|" * (len(plain) + 2),
    ]
    inside = warm.stage_seconds
    last = {t.name: t.seconds for t in plain[list(plain)[-1]]}
    for i, name in enumerate(last):
        cells = " | ".join(f"{timings[i].seconds:.2f}" for timings in plain.values())
        lines.append(f"| {name} | {cells} | {inside[name]:.2f} | {inside[name] / last[name]:.1f}x |")
    cells = " | ".join(f"{v:.2f}" for v in sums.values())
    total = sum(inside.values())
    lines.append(f"| **all stages** | {cells} | {total:.2f} | {total / sum(last.values()):.1f}x |")
    return lines


def notes(decode_once: float, rows: int, reference: float, imports: float) -> list[str]:
    repeated = decode_once * (len(PIXEL_STAGES) - 1)
    return [
        "",
        f"One decode of the {rows} images takes {decode_once:.2f} s. {len(PIXEL_STAGES)} stages decode "
        f"({', '.join(PIXEL_STAGES)}): the {len(PIXEL_STAGES) - 1} repeats cost {repeated:.2f} s, "
        f"{100 * repeated / reference:.0f} % of the plain-loop sum. A fresh Python process takes {imports:.1f} s to "
        "import torch, ultralytics and open_clip, which each of the 5 model actors does at every run.",
    ]


def import_seconds() -> float:
    """Wall time of a fresh interpreter importing the model libraries, as a model actor does when it starts."""
    code = "import time; t = time.perf_counter(); import torch, ultralytics, open_clip; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=128, help="images for the tiny profile and the pipeline")
    parser.add_argument(
        "--production-images", type=int, default=16, help="images for the production-sized models (~1-2 s each)"
    )
    parser.add_argument("--profile", choices=[*PROFILES, "both"], default="both")
    parser.add_argument("--skip-pipeline", action="store_true", help="plain loop only: no Ray")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of the plain loop")
    parser.add_argument("--repeats", type=int, default=3, help="plain-loop passes per stage; the fastest counts")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="seconds to wait, before each measurement, for other processes to leave the CPUs idle (0: never)",
    )
    args = parser.parse_args(argv)
    if min(args.images, args.production_images, args.threads, args.repeats) < 1:
        parser.error("--images, --production-images, --threads and --repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    shown = PROFILES if args.profile == "both" else (args.profile,)
    command = " ".join([".venv/bin/python", "bench/score_throughput.py", *argv])
    lines = ["### Score phase throughput", "", f"{datetime.date.today().isoformat()}; {machine()}", "", f"`{command}`"]

    timings = {
        profile: plain_loop(args, profile, args.threads)
        for profile in PROFILES
        if profile in shown or (profile == "tiny" and not args.skip_pipeline)
    }
    for profile in shown:
        lines += ["", *stage_table(profile, args.threads, timings[profile])]
        count = args.images if profile == "tiny" else args.production_images
        steps = cpu_side(score_config(profile), read_rows(image_folder(count)), args.repeats)
        lines += ["", *cpu_side_table(profile, count, args.repeats, steps)]

    if not args.skip_pipeline:
        plain = {args.threads: timings["tiny"]}
        if args.threads != 1:  # the pipeline's actors run torch on one thread each
            plain[1] = plain_loop(args, "tiny", 1)
        folder = image_folder(args.images)
        decode_once = time_decode(score_config("tiny"), read_rows(folder))
        head, runs = run_pipelines(args.images, SCRATCH / "pipeline", args.quiet_wait)
        imports = import_seconds()
        lines += [
            "",
            *pipeline_table(head, runs, plain),
            *notes(decode_once, args.images, plain_sum(timings["tiny"]), imports),
        ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
