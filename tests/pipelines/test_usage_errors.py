"""Mistakes in how `humans1b` is called, through the real command: one line on stderr naming the key or path and
exit 2, never a traceback; a full disk is one line naming the path and exit 1.

Config mistakes fail at load, before a Ray head starts: a head that started would log "Started local Ray" to
stderr (INFO), so "exactly one stderr line" also says nothing started.
"""

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from common.models import create_backbone, save_backbone
from common.schemas import candidate_schema
from curation.select.candidates import META_COLUMNS
from tests.cli_runs import humans1b, last_line, one_line

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "curation" / "demo.yaml"
POSTTRAIN = REPO / "configs" / "posttrain" / "tiny.yaml"
NOT_MOUNTED = "mounting a tmpfs is not permitted here"


def write_images(folder: Path, count: int, size: tuple[int, int] = (400, 480)) -> list[Path]:
    """Noise JPEGs (about 170 kB each at 400 x 480): valid images that compress badly, to fill a small disk."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"img{i:02d}.jpg"
        Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at `path` for the block (`ro`, `size=...`); skips the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    if mount is None or os.geteuid() != 0:
        pytest.skip(NOT_MOUNTED)
    done = subprocess.run([mount, "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"{NOT_MOUNTED}: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


# --- refused at config load ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["files_per_shard=0"], "files_per_shard=0 is out of range: must be >= 1"),
        (["num_cpus=-2"], "num_cpus=-2 is out of range: must be >= 1"),
        (["decode.max_pixels=-1"], "decode.max_pixels=-1 is out of range: must be > 0"),
        (["decode.max_aspect_ratio=0"], "decode.max_aspect_ratio=0 is out of range: must be >= 1"),
        (["stages.detect.min_conf=5"], "stages.detect.min_conf=5 is out of range: must be in [0, 1]"),
        (["stages.aesthetic.threshold=11"], "stages.aesthetic.threshold=11 is out of range: must be in [0, 10]"),
        (["stages.nsfw.threshold=2"], "stages.nsfw.threshold=2 is out of range: must be in [0, 1]"),
    ],
    ids=["files_per_shard", "num_cpus", "max_pixels", "max_aspect_ratio", "min_conf", "aesthetic", "nsfw"],
)
def test_an_out_of_range_value_names_its_key_and_range(tmp_path, job_env, overrides, message):
    write_images(tmp_path / "in", 1)
    # The whole run for num_cpus (it sizes the local Ray head the run would start), one phase for the others.
    phase = [] if overrides[0].startswith("num_cpus") else ["score"]
    args = [*phase, "--config", str(DEMO), f"input=[{tmp_path / 'in'}]", f"output={tmp_path / 'out'}", *overrides]
    assert one_line(humans1b("curate", *args, env=job_env)) == f"humans1b curate: {message}"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["equal", "inside", "inside-glob"])
def test_an_output_that_is_or_lies_in_an_input_is_refused(tmp_path, job_env, where):
    raw = tmp_path / "raw"
    write_images(raw, 1)
    given, output = {
        "equal": (raw, raw),
        "inside": (raw, raw / "run1"),
        "inside-glob": (tmp_path / "*" / "*.jpg", raw / "run1"),  # a glob reads from the folder before its wildcard
    }[where]
    link = tmp_path / "link"  # an output named through a symlink still resolves into the input
    link.symlink_to(raw)
    for out in [output] + ([link / "run1"] if where == "inside" else []):
        proc = humans1b("curate", "score", "--config", str(DEMO), f"input=[{given}]", f"output={out}", env=job_env)
        relation = "is" if where == "equal" else "is inside"
        assert one_line(proc) == (
            f"humans1b curate: output={out} {relation} the input '{given}': a re-run would read its own candidates, "
            "shards and report images as input; set output= to a directory outside every input"
        )
    assert sorted(p.name for p in raw.iterdir()) == ["img00.jpg"]


def test_an_output_that_is_an_existing_file_is_refused(tmp_path, job_env):
    write_images(tmp_path / "in", 1)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    proc = humans1b("curate", "--config", str(DEMO), f"input=[{tmp_path / 'in'}]", f"output={notes}", env=job_env)
    assert one_line(proc) == (
        f"humans1b curate: output={notes} is an existing file, not a directory: set output= to a directory"
    )
    assert notes.read_text() == "mine"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("profile: tiny\nstages: [1, 2\n", "line 3, column 1: did not find expected ',' or ']'"),
        ("profile: tiny\nstages:\n\tdetect: {mode: audit}\n", "line 3, column 1: found character that cannot start"),
    ],
    ids=["unclosed-list", "tab-indented"],
)
def test_malformed_yaml_names_the_file_and_line(tmp_path, job_env, text, where):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    line = one_line(humans1b("curate", "score", "--config", str(config), f"output={tmp_path / 'out'}", env=job_env))
    assert line.startswith(f"humans1b curate: config file {config} is not valid YAML: {where}")


# --- refused when the command looks at the path -------------------------------------------------------------------


def test_a_missing_input_names_the_path(tmp_path, job_env):
    missing = tmp_path / "no-such-folder"
    args = ["curate", "score", "--config", str(DEMO), f"input=[{missing}]", f"output={tmp_path / 'out'}"]
    line = one_line(humans1b(*args, env=job_env))
    assert line.startswith("humans1b curate: input ") and str(missing) in line


def test_missing_training_and_prediction_inputs_name_the_path(tmp_path, job_env):
    missing = tmp_path / "no-such-run"
    args = ["pretrain", "--config", str(REPO / "configs/pretrain/tiny.yaml"), f"shards=[{missing}]"]
    assert one_line(humans1b(*args, f"output={tmp_path / 'pt'}", env=job_env)) == (
        f"humans1b pretrain: shards: {missing} is not a curation run dir, a shard dir, a tar glob or a tar; run "
        "`humans1b curate` first or check the path"
    )
    args = ["posttrain", "predict", "--task", "seg", "--config", str(POSTTRAIN), f"output={tmp_path / 'seg'}"]
    assert one_line(humans1b(*args, "--inputs", str(missing), env=job_env)) == (
        f"humans1b posttrain: --inputs: {missing} is neither an image file nor a folder of images"
    )
    no_inputs = humans1b(*args, env=job_env)
    assert one_line(no_inputs) == "humans1b posttrain: predict needs --inputs: image files or folders"
    assert not (tmp_path / "pt").exists()


def test_report_or_stats_of_a_directory_without_phase_output(tmp_path, job_env):
    empty = tmp_path / "empty"
    empty.mkdir()
    expected = (
        f"{empty} holds no curation output (expected at least one of stats.json or candidates/part-*.parquet "
        "(score), select_stats.json or selection.parquet (select), manifest.json (write)): pass the output directory "
        "of a curation run, or run a phase into it first (humans1b curate score ...)"
    )
    report = humans1b("curate", "report", "--config", str(DEMO), f"output={empty}", env=job_env)
    assert one_line(report) == f"humans1b curate: {expected}"
    assert one_line(humans1b("stats", str(empty), env=job_env)) == f"humans1b stats: {expected}"
    assert list(empty.iterdir()) == []


def test_a_read_only_output_names_the_path(tmp_path, job_env):
    write_images(tmp_path / "in", 1)
    read_only = tmp_path / "read-only"
    args = ["curate", "score", "--config", str(DEMO), f"input=[{tmp_path / 'in'}]", f"output={read_only / 'run'}"]
    if os.geteuid() != 0:  # permissions bind everyone but root
        read_only.mkdir(mode=0o555)
        line = one_line(humans1b(*args, env=job_env))
        expected = f"permission denied: {read_only / 'run'}; make it writable or choose another output="
        assert line == f"humans1b curate: {expected}"
    else:
        with tmpfs(read_only, "ro"):
            line = one_line(humans1b(*args, env=job_env))
        assert line.startswith(f"humans1b curate: cannot write {read_only}/")
        assert line.endswith(": read-only file system; choose another output=")


# --- post-training checkpoints ------------------------------------------------------------------------------------


def predict(tmp_path: Path, env: dict[str, str], *overrides: str) -> subprocess.CompletedProcess:
    photo = write_images(tmp_path / "photos", 1, size=(96, 128))[0]
    args = ["posttrain", "predict", "--task", "pose", "--config", str(POSTTRAIN), f"output={tmp_path / 'out'}"]
    return humans1b(*args, *overrides, "--inputs", str(photo), env=env)


def test_a_missing_backbone_checkpoint_names_the_key(tmp_path, job_env):
    missing = tmp_path / "nope.safetensors"
    line = one_line(predict(tmp_path, job_env, f"backbone.checkpoint={missing}"))
    assert line == (
        f"humans1b posttrain: backbone.checkpoint={missing} does not exist: pass a pretraining output dir, its "
        "model.safetensors, or an official sapiens2_<size>_pretrain.safetensors"
    )
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_of_another_size_says_which(tmp_path, job_env):
    path = tmp_path / "tiny.safetensors"
    save_backbone(create_backbone("tiny"), path)
    line = one_line(predict(tmp_path, job_env, f"backbone.checkpoint={path}", "backbone.name=0.1b"))
    assert line.startswith(
        f"humans1b posttrain: {path} does not fit Sapiens2: the model was built as size 0.1b (width 768, 12 blocks), "
        "the file looks like size tiny (width 64, 4 blocks): set backbone.name=tiny (57 shape mismatches: "
        "cls_token: checkpoint [1, 1, 64], expected [1, 1, 768], "
    )
    assert "; 104 missing keys: blocks.4.norm1.weight, " in line  # blocks 4..11 of 12, 13 tensors each


@pytest.mark.parametrize("damage", ["truncated", "not-safetensors"])
def test_a_corrupt_checkpoint_names_the_file(tmp_path, job_env, damage):
    path = tmp_path / "backbone.safetensors"
    save_backbone(create_backbone("tiny"), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"<html>404 not found</html>" * 8)
    line = one_line(predict(tmp_path, job_env, f"backbone.checkpoint={path}"))
    detail = "incomplete metadata, file not fully covered" if damage == "truncated" else "header too large"
    assert line == (
        f"humans1b posttrain: {path} is not a readable safetensors file (Error while deserializing header: "
        f"{detail}): it is truncated, corrupt or of another format; save it again or pass another checkpoint"
    )


# --- a full disk (runs Ray) ---------------------------------------------------------------------------------------


def selection_of(images: list[Path]) -> pa.Table:
    """selection.parquet as select leaves it, for folder images: what the write phase needs, nothing more."""
    schema = candidate_schema(8)
    fields = [schema.field(name) for name in META_COLUMNS]
    fields += [pa.field("cluster_ids", pa.list_(pa.int32(), 2)), pa.field("leaf_distance", pa.float32())]
    rows = [
        {"key": f"{i:016x}", "source": str(p), "member": None, "width": 400, "height": 480, "cluster_ids": [i % 2, 0]}
        for i, p in enumerate(images)
    ]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def assert_names_a_path_under(line: str, mount: Path) -> None:
    prefix = "humans1b curate: no space left on device "
    assert line.startswith(prefix) and line.endswith(": free space or choose another output="), line
    if line == f"{prefix}(no file named): free space or choose another output=":
        pytest.xfail(
            "the OSError of a failed write() carries no file name; the writer must attach it "
            "(common.errors.naming_path in curation/score/sink.py and curation/write/shard_task.py)"
        )
    assert line.startswith(f"{prefix}writing {mount}/"), line


def test_a_full_disk_during_score_is_one_line(tmp_path, job_env):
    images = tmp_path / "in"
    write_images(images, 12)
    mount = tmp_path / "disk"
    # Room for config.yaml (4 kB, written before Ray starts) and one page more: the candidates parquet (3 pages
    # for 12 rows) is what overflows.
    with tmpfs(mount, "size=12k"):
        out = mount / "run"
        proc = humans1b("curate", "score", "--config", str(DEMO), f"input=[{images}]", f"output={out}", env=job_env)
        assert (out / "config.yaml").exists() and not list((out / "candidates").glob("*.parquet"))
    assert_names_a_path_under(last_line(proc, status=1), mount)


def test_a_full_disk_during_write_is_one_line(tmp_path, job_env):
    images = write_images(tmp_path / "in", 12)
    mount = tmp_path / "disk"
    with tmpfs(mount, "size=64k"):  # selection.parquet fits; the first 8-image shard tar (~1.4 MB) does not
        out = mount / "run"
        out.mkdir()
        pq.write_table(selection_of(images), out / "selection.parquet")
        proc = humans1b("curate", "write", "--config", str(DEMO), f"output={out}", env=job_env)
        assert not list((out / "shards").glob("*.tar")) and not (out / "manifest.json").exists()
    assert_names_a_path_under(last_line(proc, status=1), mount)


def test_a_read_only_shard_folder_in_a_ray_task_names_the_path(tmp_path, job_env):
    """The shard tasks run in Ray workers: their OSError reaches the driver wrapped in a RayTaskError."""
    images = write_images(tmp_path / "in", 2)
    out = tmp_path / f"run-{uuid.uuid4().hex[:6]}"
    out.mkdir()
    pq.write_table(selection_of(images), out / "selection.parquet")
    with tmpfs(out / "shards", "ro"):
        proc = humans1b("curate", "write", "--config", str(DEMO), f"output={out}", env=job_env)
    line = last_line(proc, status=1)
    assert line.startswith(f"humans1b curate: cannot write {out / 'shards'}/00000.tar")
    assert line.endswith(": read-only file system; choose another output=")


def test_an_address_where_nothing_listens_is_one_line(tmp_path, job_env, free_port):
    """Joining a cluster that is not there ends within the connect timeout (ray.init alone waits 5+ minutes)."""
    images = tmp_path / "in"
    write_images(images, 1)
    env = {**job_env, "HUMANS1B_RAY_CONNECT_TIMEOUT": "3"}
    args = ["curate", "score", "--config", str(DEMO), f"input=[{images}]", f"output={tmp_path / 'out'}"]
    proc = humans1b(*args, "--address", f"127.0.0.1:{free_port}", env=env, timeout=120)
    line = last_line(proc, status=2)
    assert line.startswith(f"humans1b curate: no Ray cluster at 127.0.0.1:{free_port}: nothing accepted a connection")
