"""Training-step cost of the Sapiens2 backbone against a timm ViT of the same shape, as Markdown for docs/BENCHMARKS.md.

    .venv/bin/python bench/backbone_step.py [--configs SIZE:HxW:BATCH ...] [--repeats N] [--threads N]
        [--quiet-wait S] [--profile SIZE:HxW:BATCH]

One step = forward_features on random images, loss = mean of the final-normed patch tokens, backward. Both models are
built in this process per configuration (same seed) and run alternately, ours first on even repeats and timm first on
odd ones, so that drift in the machine's speed hits both alike; the median step of each counts. Peak memory is the
peak RSS (ru_maxrss) of a fresh child process per (model, configuration) that builds the model and runs two steps;
"step" is that peak less the RSS just before the first step.

The timm model (`timm.models.VisionTransformer`) is built with the closest options: same width, depth, heads, patch
16, qkv bias; RMSNorm (timm `RmsNorm`, eps 1e-6, torch's fused `F.rms_norm` kernel like ours); QK-norm; packed
SwiGLU with a 4·dim hidden size (`SwiGLUPacked` at mlp_ratio 8, which splits its fc1 output in two); 1 [CLS] + 8
register tokens; LayerScale 1e-5. What differs: timm adds a learned absolute position embedding to the patch tokens
(built at the configuration's size, so it is not resampled) where ours rotates q and k with 2D RoPE; timm has
LayerScale on both branches, ours on attention only; ours uses grouped-query attention in blocks 8 .. depth-9, which
the tiny and 0.1b sizes (depth 4 and 12) do not have.

With --profile, torch.profiler's top operators (self CPU time) of one step of each model are printed as well.
"""

import argparse
import contextlib
import datetime
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psutil
import timm
import torch
from torch import nn

from common.models import create_backbone
from common.models.sizes import SIZES

log = logging.getLogger("bench.backbone_step")

QUIET_CORES = 0.2  # other processes using less than this leave the machine idle enough to measure
DEFAULT_CONFIGS = ("tiny:224x224:8", "tiny:512x512:8", "0.1b:224x224:4", "0.1b:512x512:1")
MODELS = ("ours", "timm")
SEED = 0


# --- a quiet machine: other work on 2 shared cores skews every figure -------------------------------------------------


def busy_cpu_seconds() -> float:
    """CPU-seconds the whole machine has been busy since boot (/proc/stat: all but idle and iowait; steal counts)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU-seconds of this process and its children (DataLoader workers, memory probes) so far."""
    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = process.cpu_times()
            total += t.user + t.system
    return total + sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])  # children that already ended


@dataclass
class Span:
    wall: float = 0.0
    others: float = 0.0  # cores that processes outside this one used, averaged over the span


@contextlib.contextmanager
def measured() -> Iterator[Span]:
    """The block's wall time and the cores other processes used meanwhile (machine busy time less our own)."""
    span = Span()
    busy, own, start = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    yield span
    span.wall = time.perf_counter() - start
    other = busy_cpu_seconds() - busy - (own_cpu_seconds() - own)
    span.others = max(other, 0.0) / span.wall


def wait_for_quiet(max_wait: float, *, sample: float = 2.0) -> float:
    """Wait until other processes use under QUIET_CORES over `sample` seconds, for at most `max_wait` seconds;
    returns the cores they used in the last sample."""
    deadline = time.monotonic() + max_wait
    while True:
        with measured() as span:
            time.sleep(sample)
        if span.others < QUIET_CORES or time.monotonic() >= deadline:
            return span.others
        log.info("other processes use %.1f cores; waiting for a quiet machine", span.others)


def machine(extra: str = "") -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = models[0] if models else platform.processor() or "unknown CPU"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{datetime.date.today().isoformat()}; nproc {os.cpu_count()} ({cpu}), {memory:.0f} GiB, no GPU; "
        f"torch {torch.__version__}{extra}, Python {platform.python_version()}"
    )


# --- models -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepConfig:
    size: str
    height: int
    width: int
    batch: int

    @classmethod
    def parse(cls, text: str) -> "StepConfig":
        """'0.1b:512x384:2' → StepConfig('0.1b', 512, 384, 2)."""
        try:
            size, hw, batch = text.split(":")
            height, width = (int(v) for v in hw.lower().split("x"))
            config = cls(size, height, width, int(batch))
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected SIZE:HxW:BATCH such as 0.1b:512x512:1, got {text!r}") from err
        if size not in SIZES:
            raise argparse.ArgumentTypeError(f"unknown size {size!r}; known: {', '.join(SIZES)}")
        if height % 16 or width % 16 or min(height, width, config.batch) < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: H and W must be positive multiples of 16, batch >= 1")
        return config

    def __str__(self) -> str:
        return f"{self.size}:{self.height}x{self.width}:{self.batch}"


def timm_vit(config: StepConfig) -> nn.Module:
    """The timm ViT closest to our backbone of `config.size` (see the module docstring for what differs)."""
    size = SIZES[config.size]
    return timm.models.VisionTransformer(
        img_size=(config.height, config.width),
        patch_size=16,
        num_classes=0,
        global_pool="",
        embed_dim=size.dim,
        depth=size.depth,
        num_heads=size.num_heads,
        mlp_ratio=8.0,  # SwiGLUPacked halves fc1's output into gate and value: 4·dim hidden, as ours
        mlp_layer=timm.layers.SwiGLUPacked,
        act_layer=nn.SiLU,  # the ViT passes its act_layer (GELU by default) into the MLP, over SwiGLUPacked's own
        norm_layer=partial(timm.layers.RmsNorm, eps=1e-6),
        qkv_bias=True,
        qk_norm=True,
        init_values=1e-5,
        class_token=True,
        reg_tokens=8,
        no_embed_class=True,  # position embedding on patch tokens only, as RoPE
    )


def build(model: str, config: StepConfig) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """(model in train mode, step loss function)."""
    torch.manual_seed(SEED)
    if model == "ours":
        net = create_backbone(config.size, img_size=(config.height, config.width)).train()
        return net, lambda x: net.forward_features(x)["x_norm_patchtokens"].mean()
    net = timm_vit(config).train()
    return net, lambda x: net.forward_features(x)[:, net.num_prefix_tokens :].mean()


def step(net: nn.Module, loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> None:
    net.zero_grad(set_to_none=True)
    loss_fn(x).backward()


def images(config: StepConfig) -> torch.Tensor:
    generator = torch.Generator().manual_seed(SEED)
    return torch.randn(config.batch, 3, config.height, config.width, generator=generator)


def param_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# --- timing -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    config: StepConfig
    seconds: dict[str, list[float]]  # per model, every timed step
    params: dict[str, int]
    others: float  # the most cores other processes used during any timed step

    def median(self, model: str) -> float:
        return statistics.median(self.seconds[model])


def time_config(config: StepConfig, repeats: int, warmup: int, quiet_wait: float, retries: int) -> Timing:
    models = {name: build(name, config) for name in MODELS}
    x = images(config)
    for net, loss_fn in models.values():
        for _ in range(warmup):
            step(net, loss_fn, x)
    seconds: dict[str, list[float]] = {name: [] for name in MODELS}
    worst = 0.0
    for r in range(repeats):
        order = MODELS if r % 2 == 0 else MODELS[::-1]
        for attempt in range(retries + 1):
            if quiet_wait:
                wait_for_quiet(quiet_wait)
            pair = {}
            for name in order:
                net, loss_fn = models[name]
                with measured() as span:
                    step(net, loss_fn, x)
                pair[name] = span
            others = max(s.others for s in pair.values())
            if others < QUIET_CORES or attempt == retries:
                break
            log.info("  %s repeat %d: other processes used %.1f cores; measuring it again", config, r, others)
        for name, span in pair.items():
            seconds[name].append(span.wall)
        worst = max(worst, others)
        log.info("  %s repeat %d: ours %.3f s, timm %.3f s", config, r, seconds["ours"][-1], seconds["timm"][-1])
    params = {name: param_count(net) for name, (net, _) in models.items()}
    return Timing(config, seconds, params, worst)


# --- memory: one child process per (model, configuration) -----------------------------------------------------------


def child_peak(model: str, config: StepConfig, threads: int) -> dict[str, float]:
    """Runs in the child: build, two steps; RSS before the first step and the process peak, in MiB."""
    torch.set_num_threads(threads)
    net, loss_fn = build(model, config)
    x = images(config)
    before = psutil.Process().memory_info().rss / 2**20
    for _ in range(2):
        step(net, loss_fn, x)
    return {"before": before, "peak": peak_rss_mib()}


def peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM rather than ru_maxrss: ru_maxrss keeps the parent's peak across fork + exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status: peak memory needs Linux")


def measure_peak(model: str, config: StepConfig, threads: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", model, str(config), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"memory probe {model} {config} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- profile ----------------------------------------------------------------------------------------------------------


def profile(config: StepConfig, rows: int = 15) -> list[str]:
    """Top operators by self CPU time over one step of each model, after one warm-up step."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    lines = []
    x = images(config)
    for name in MODELS:
        net, loss_fn = build(name, config)
        step(net, loss_fn, x)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            step(net, loss_fn, x)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        lines += [
            "",
            f"**{name}, {config}**: {total / 1e3:.0f} ms self CPU time in one step",
            "",
            "| operator | calls | self CPU (ms) | share |",
            "|---|---:|---:|---:|",
        ]
        for e in events[:rows]:
            share = 100 * e.self_cpu_time_total / total
            lines.append(f"| `{e.key}` | {e.count} | {e.self_cpu_time_total / 1e3:.1f} | {share:.1f} % |")
    return lines


# --- report -----------------------------------------------------------------------------------------------------------


def table(timings: list[Timing], peaks: dict[tuple[str, str], dict[str, float]]) -> list[str]:
    lines = [
        "| size | resolution | batch | ours ms/step | timm ms/step | ours / timm | peak MiB ours (step) "
        "| peak MiB timm (step) | params ours / timm (M) | others (cores) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in timings:
        c = t.config
        ours, theirs = t.median("ours"), t.median("timm")
        mem = []
        for name in MODELS:
            p = peaks[(name, str(c))]
            mem.append(f"{p['peak']:.0f} ({p['peak'] - p['before']:.0f})")
        lines.append(
            f"| {c.size} | {c.height}×{c.width} | {c.batch} | {1000 * ours:.0f} | {1000 * theirs:.0f} "
            f"| {ours / theirs:.2f} | {mem[0]} | {mem[1]} "
            f"| {t.params['ours'] / 1e6:.2f} / {t.params['timm'] / 1e6:.2f} | {t.others:.2f} |"
        )
    return lines


def spread(timings: list[Timing]) -> list[str]:
    lines = ["", "Every timed step (s), in run order:", ""]
    for t in timings:
        cells = "; ".join(f"{name} " + " ".join(f"{s:.3f}" for s in t.seconds[name]) for name in MODELS)
        lines.append(f"- {t.config}: {cells}")
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--configs",
        type=StepConfig.parse,
        nargs="+",
        default=[StepConfig.parse(c) for c in DEFAULT_CONFIGS],
        help="SIZE:HxW:BATCH each",
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per model and configuration (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per model and configuration")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="seconds to wait, before each pair of steps, for other processes to leave the CPUs idle (0: never)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="times a pair of steps during which other processes were busy is measured again (then kept, flagged)",
    )
    parser.add_argument("--skip-memory", action="store_true", help="no peak-memory child processes")
    parser.add_argument("--profile", type=StepConfig.parse, help="also print the top operators of one step here")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.repeats, args.threads) < 1 or min(args.warmup, args.retries) < 0:
        parser.error("--repeats and --threads must be at least 1, --warmup and --retries at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child:
        model, config = args.child
        print(json.dumps(child_peak(model, StepConfig.parse(config), args.threads)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    command = " ".join([".venv/bin/python", "bench/backbone_step.py", *argv])
    lines = [
        "### Backbone training step",
        "",
        f"{machine(f', timm {timm.__version__}')}; {args.threads} torch thread(s)",
        "",
        f"`{command}`",
        "",
    ]
    timings = []
    for config in args.configs:
        log.info("timing %s: %d warm-up + %d timed steps per model", config, args.warmup, args.repeats)
        timings.append(time_config(config, args.repeats, args.warmup, args.quiet_wait, args.retries))
        t = timings[-1]
        log.info("%s: ours %.3f s, timm %.3f s (medians)", config, t.median("ours"), t.median("timm"))
    peaks: dict[tuple[str, str], dict[str, float]] = {}
    for config in args.configs:
        for name in MODELS:
            if args.skip_memory:
                peaks[(name, str(config))] = {"peak": float("nan"), "before": float("nan")}
                continue
            if args.quiet_wait:
                wait_for_quiet(args.quiet_wait)
            log.info("peak memory %s %s", name, config)
            peaks[(name, str(config))] = measure_peak(name, config, args.threads)
    lines += table(timings, peaks) + spread(timings)
    if args.profile:
        log.info("profiling %s", args.profile)
        lines += profile(args.profile)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
