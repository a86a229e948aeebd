"""The whole select phase at scale, through the project's command, on a synthetic scored run.

    .venv/bin/python bench/select_scale.py --rows N [--dim D] [--clusters K1 K2 ...] [--data DIR] [--seed S]
        [--rows-per-part R] [--set key=value ...]

Builds a scored run of N candidates (bench/synthetic_candidates.py) in DIR, or reuses the one there when it was made
with the same rows, dim, seed and rows per part and its parts still match their markers; removes whatever an earlier
select left in DIR (everything but the generator's files); then runs `humans1b curate select output=DIR` with
select.clusters.clusters=[K1,K2,...] (leaf first, default 1000 100 10) and every --set passed on as a KEY=VALUE
override, offline, with a private HOME and TMPDIR. Without --data the run lives in a temporary directory removed at
exit.

Measures the wall seconds of the command and the largest peak RSS of any one of its processes: the driver and every
process it starts (a local Ray head and its workers). Every 0.2 s the processes of the command's session and process
tree are listed and each one's VmHWM (the kernel's peak resident set, /proc/PID/status) is read, so a process's peak
is caught even between polls, as long as it is still alive at one poll; the driver's ru_maxrss from wait4 (itself
and every descendant it reaped) is folded in at the end. The highest sum of VmRSS seen at one poll is printed too.

Prints a Markdown table (the select steps' seconds from select_stats.json when it has them) and, as its last line,
`rows=N seconds=S peak_rss_mib=M`. The command's own output goes to stderr. Exits non-zero when select fails.
"""

import argparse
import datetime
import json
import logging
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from synthetic_candidates import CANDIDATES, PLANTED_DIR, SCORE_STATS, SYNTHETIC, write_synthetic_run  # in bench/

from pipelines.commands.ray_local import stop_processes

log = logging.getLogger("bench.select_scale")

REPO = Path(__file__).resolve().parents[1]
HUMANS1B = Path(sys.executable).parent / "humans1b"  # the entry point of the venv running this script
POLL_SECONDS = 0.2
TOP = 4  # processes named with their peaks
LEFTOVER_GRACE = 10.0  # seconds processes of the run may take to go after the driver ended
GENERATED = {CANDIDATES, PLANTED_DIR, SCORE_STATS, SYNTHETIC, "config.yaml", ".humans1b.lock"}  # kept between runs
REUSE_KEYS = ("rows", "dim", "seed", "rows_per_part", "components")
OFFLINE_ENV = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "0",
    "HF_HUB_OFFLINE": "1",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}


class NotSyntheticError(RuntimeError):
    """--data names a directory that holds something other than a synthetic run: nothing in it is removed."""


def prepare_run(data: Path, params: dict, *, progress: bool = True) -> tuple[dict, bool]:
    """(the run's synthetic.json record, whether it was reused). Reuses a finished run made with the same
    parameters whose parts all have the size their markers record; otherwise writes a new one. Either way
    everything a select left behind is removed first."""
    record_path = data / SYNTHETIC
    if data.exists() and any(data.iterdir()) and not record_path.exists():
        raise NotSyntheticError(f"{data} is not empty and holds no {SYNTHETIC}: give --data an empty or new folder")
    try:
        record = json.loads(record_path.read_text()) if record_path.exists() else None
    except ValueError:  # cut off while being written: ours, and unfinished
        record = {}
    reuse = (
        record is not None
        and record.get("finished") is True
        and all(record.get(k) == params[k] for k in REUSE_KEYS)
        and parts_intact(data, record["parts"])
    )
    if reuse:
        clear_select_outputs(data)
        return record, True
    shutil.rmtree(data, ignore_errors=True)
    return write_synthetic_run(data, progress=progress, **params), False


def parts_intact(data: Path, parts: int) -> bool:
    """Every part has its marker and the size it records (a select that found a damaged part removed its marker)."""
    for part in range(parts):
        path = data / CANDIDATES / f"part-{part:05d}.parquet"
        marker = path.with_name(f"part-{part:05d}.done.json")
        try:
            recorded = json.loads(marker.read_text())["files"][path.name]["bytes"]
            if path.stat().st_size != recorded:
                return False
        except (OSError, ValueError, KeyError, TypeError):
            return False
    return True


def clear_select_outputs(data: Path) -> list[str]:
    """Remove everything in `data` the generator did not write (select/, selection.parquet, select_stats.json and
    whatever else a select writes); returns the names removed."""
    removed = []
    for path in sorted(data.iterdir()):
        if path.name in GENERATED:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(path.name)
    return removed


@dataclass
class Measured:
    returncode: int
    seconds: float
    peak_mib: float  # largest peak RSS of one process
    peak_process: str
    peak_total_mib: float  # largest sum of the processes' RSS at one poll
    top: list[str]  # the processes with the largest peaks, with their peaks
    processes: int  # distinct processes seen
    driver_maxrss_mib: float | None  # None: not above what the driver inherited from this process at exec
    leftovers: list[str] = field(default_factory=list)


def memory_kib(pid: int) -> tuple[int, int] | None:
    """(VmHWM, VmRSS) of a process in KiB, or None once it is gone (or a kernel thread, which has neither)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            values[name] = int(rest.split()[0])
    if len(values) < 2:
        return None
    return values["VmHWM"], values["VmRSS"]


def run_processes(root: int) -> dict[int, psutil.Process]:
    """The processes of the run: the descendants of `root` and every process of its session (one that outlived
    its parent is no one's descendant any more)."""
    found: dict[int, psutil.Process] = {}
    try:
        top = psutil.Process(root)
        found[root] = top
        found.update({p.pid: p for p in top.children(recursive=True)})
    except psutil.NoSuchProcess:
        pass
    for process in psutil.process_iter():
        try:
            if process.pid not in found and os.getsid(process.pid) == root:
                found[process.pid] = process
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            continue
    # A child between fork and exec still shows its parent's memory (and, once that parent is this process, its
    # command line): its VmHWM is not the run's
    own = psutil.Process().cmdline()
    return {pid: p for pid, p in found.items() if not _same_command(p, own)}


def _same_command(process: psutil.Process, command: list[str]) -> bool:
    try:
        return process.cmdline() == command
    except psutil.Error:
        return False


def describe(process: psutil.Process) -> str:
    """'ray::Name', 'raylet', 'humans1b', 'default_worker.py', ...: the program, not the interpreter running it."""
    try:
        words = process.cmdline() or [process.name()]
    except psutil.Error:
        return f"pid {process.pid}"
    program = Path(words[0]).name
    if program.startswith("python") and len(words) > 1 and not words[1].startswith("-"):
        program = Path(words[1]).name
    return f"{program.split()[0]} (pid {process.pid})"


def run_measured(command: list[str], *, env: dict[str, str], cwd: Path, poll: float = POLL_SECONDS) -> Measured:
    """Run `command` in a session of its own, polling the peak RSS of every process of it until the command ends;
    processes of the session still alive LEFTOVER_GRACE seconds later are ended, by pid, and named."""
    peak: dict[int, tuple[int, str]] = {}
    peak_total = 0

    def sample() -> None:
        nonlocal peak_total
        total = 0
        for pid, process in run_processes(job.pid).items():
            memory = memory_kib(pid)
            if memory is None:
                continue
            total += memory[1]
            if memory[0] > peak.get(pid, (0, ""))[0]:
                peak[pid] = (memory[0], peak.get(pid, (0, ""))[1] or describe(process))
        peak_total = max(peak_total, total)

    start = time.perf_counter()
    job = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True, stdout=sys.stderr.fileno())
    # Linux keeps the larger ru_maxrss across fork and execve: the driver's figure starts at this process's peak
    # when it was forked (read here, once Popen has seen the exec succeed)
    inherited_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        while True:
            sample()
            # wait4 instead of Popen.poll: it also returns the driver's resource usage
            pid, status, usage = os.wait4(job.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(poll)
    except BaseException:
        os.killpg(job.pid, signal.SIGTERM)  # Ctrl-C: the whole run goes, not just the driver
        raise
    seconds = time.perf_counter() - start
    job.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    leftovers = end_leftovers(job.pid, sample)
    ranked = sorted(peak.values(), reverse=True)
    best_kib, best_name = ranked[0] if ranked else (0, Path(command[0]).name)
    driver_kib = usage.ru_maxrss if usage.ru_maxrss > inherited_kib else None
    if (
        driver_kib is not None and driver_kib > best_kib
    ):  # peaked after the last poll that saw it, or came and went between two polls
        best_kib, best_name = driver_kib, f"the driver (pid {job.pid}) or a process it reaped (wait4 ru_maxrss)"
    return Measured(
        returncode=job.returncode,
        seconds=seconds,
        peak_mib=best_kib / 1024,
        peak_process=best_name,
        peak_total_mib=peak_total / 1024,
        top=[f"{name} {kib / 1024:.0f}" for kib, name in ranked[:TOP]],
        processes=len(peak),
        driver_maxrss_mib=None if driver_kib is None else driver_kib / 1024,
        leftovers=leftovers,
    )


def end_leftovers(session: int, sample) -> list[str]:
    """Wait for the processes of the run's session to end; end (SIGTERM, then SIGKILL) those still there."""
    deadline = time.monotonic() + LEFTOVER_GRACE
    while (alive := run_processes(session)) and time.monotonic() < deadline:
        sample()
        time.sleep(POLL_SECONDS)
    names = [describe(p) for p in alive.values()]
    stop_processes(list(alive.values()), timeout=5)
    if names:
        log.warning("processes of the select run were still alive after it ended and were stopped: %s", names)
    return names


def select_command(data: Path, clusters: list[int], overrides: list[str]) -> list[str]:
    return [
        str(HUMANS1B),
        "curate",
        "select",
        f"output={data}",
        f"select.clusters.levels={len(clusters)}",
        f"select.clusters.clusters=[{','.join(map(str, clusters))}]",
        *overrides,
    ]


def private_env(scratch: Path) -> dict[str, str]:
    """This process's environment, offline, with HOME, TMPDIR and the YOLO config dir inside `scratch`."""
    env = {**os.environ, **OFFLINE_ENV}
    for name, sub in (("HOME", "home"), ("TMPDIR", "tmp"), ("YOLO_CONFIG_DIR", "yolo")):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(scratch / sub)
    return env


def step_rows(data: Path) -> list[str]:
    """One table row per select step in select_stats.json: rows in, kept, seconds."""
    path = data / "select_stats.json"
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    steps = stats.get("steps") if isinstance(stats, dict) else None
    if not isinstance(steps, dict):
        return []
    rows = []
    for name, step in steps.items():
        if isinstance(step, dict):
            rows.append(f"| {name} | {step.get('in', '')} | {step.get('kept', '')} | {step.get('seconds', '')} |")
    rows.append(f"| **selected** | {stats.get('rows_in', '')} | {stats.get('kept', '')} | |")
    return rows


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, required=True, help="candidate rows (1 %% of them rejected by score)")
    parser.add_argument("--dim", type=int, default=768, help="CLIP embedding width (ViT-L/14: 768)")
    parser.add_argument("--clusters", type=int, nargs="+", default=[1000, 100, 10], help="k per level, leaf first")
    parser.add_argument("--data", type=Path, help="run folder, kept and reused (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0, help="of the synthetic run")
    parser.add_argument("--rows-per-part", type=int, default=10_000, help="rows per candidate part")
    parser.add_argument("--components", type=int, default=50, help="Gaussian topics of the embeddings")
    parser.add_argument(
        "--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="config override passed on to `humans1b curate select`, e.g. --set select.sampling.fraction=0.25",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if min(args.rows, args.rows_per_part, args.components) < 1 or args.dim < 2 or min(args.clusters) < 1:
        parser.error("--rows, --rows-per-part, --components and --clusters must be >= 1 and --dim >= 2")
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        parser.error(f"--set takes KEY=VALUE words, got {bad}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    params = {
        "rows": args.rows,
        "dim": args.dim,
        "seed": args.seed,
        "rows_per_part": args.rows_per_part,
        "components": args.components,
    }
    scratch = Path(tempfile.mkdtemp(prefix="h1b-sel-", dir="/tmp"))  # short: Ray's socket paths live under TMPDIR
    try:
        data = args.data.resolve() if args.data is not None else scratch / "run"
        try:
            record, reused = prepare_run(data, params)
        except NotSyntheticError as err:
            log.error("%s", err)
            return 2
        log.info("synthetic run %s %s: %s", data, "reused" if reused else "written", record["planted"])
        command = select_command(data, args.clusters, args.overrides)
        log.info("running %s", " ".join(command))
        measured = run_measured(command, env=private_env(scratch), cwd=REPO)
        if measured.returncode != 0:
            log.error("select failed with exit status %d (its output is above)", measured.returncode)
            return measured.returncode if measured.returncode > 0 else 1
        print("\n".join(report_lines(argv, args, record, reused, measured, step_rows(data))))
        print(f"rows={args.rows} seconds={measured.seconds:.1f} peak_rss_mib={measured.peak_mib:.0f}")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report_lines(argv, args, record: dict, reused: bool, measured: Measured, steps: list[str]) -> list[str]:
    command = " ".join([".venv/bin/python", "bench/select_scale.py", *argv])
    planted = ", ".join(f"{kind} {n:,}" for kind, n in record["planted"].items())
    driver_maxrss = "n/a" if measured.driver_maxrss_mib is None else f"{measured.driver_maxrss_mib:.0f}"
    lines = [
        "### Select phase at scale",
        "",
        f"{datetime.date.today().isoformat()}; nproc {os.cpu_count()}, Python {platform.python_version()}",
        "",
        f"`{command}`: {record['rows']:,} candidates ({record['kept']:,} kept by score) x {record['dim']} in "
        f"{record['parts']} parts, {'reused' if reused else 'generated'}; planted {planted}; clusters {args.clusters}",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| wall seconds (`humans1b curate select`) | {measured.seconds:.1f} |",
        f"| largest peak RSS of one process (MiB) | {measured.peak_mib:.0f} |",
        f"| ... that process | {measured.peak_process} |",
        f"| largest RSS sum of all processes at one poll (MiB) | {measured.peak_total_mib:.0f} |",
        f"| driver ru_maxrss, reaped descendants included (MiB) | {driver_maxrss} |",
        f"| processes seen | {measured.processes} |",
        f"| largest peaks (MiB) | {', '.join(measured.top)} |",
    ]
    if measured.leftovers:
        lines.append(f"| left running, then stopped | {', '.join(measured.leftovers)} |")
    if steps:
        lines += ["", "| step | rows in | kept | seconds |", "|---|---:|---:|---:|", *steps]
    lines += ["", "Peak RSS: VmHWM of every process of the run polled every 0.2 s, and the driver's wait4 ru_maxrss."]
    return lines


if __name__ == "__main__":
    sys.exit(main())
