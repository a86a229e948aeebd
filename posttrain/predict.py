"""Predictions on whole images: each image letterboxed into the network input, the task's outputs mapped back to
the image and written with their visualisations (skeleton overlay, coloured parts, normal / albedo / depth images).

Pose is top-down: the whole image is the person box, which suits person crops such as curation's outputs.
"""

import logging
from pathlib import Path

import torch
from tqdm import tqdm

from common.errors import InputNotFoundError
from posttrain.data.affine import fit_center_scale, warp_image, warp_matrix
from posttrain.data.image_io import image_to_tensor, list_images, read_rgb
from posttrain.tasks.base import Task

log = logging.getLogger(__name__)


def image_files(inputs: list[str]) -> list[Path]:
    """Files as given, and the images in given folders (sorted by name)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += list(list_images(path).values())
        elif path.is_file():
            files.append(path)
        else:
            raise InputNotFoundError(f"--inputs: {path} is neither an image file nor a folder of images")
    if not files:
        raise InputNotFoundError(f"--inputs: no image files in {inputs}")
    return files


@torch.no_grad()
def predict_images(
    task: Task, model: torch.nn.Module, files: list[Path], out_dir: Path, input_wh: tuple[int, int], device
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    written: list[Path] = []
    for path in tqdm(files, desc=f"predict {task.name}", disable=None):
        try:
            image = read_rgb(path)  # [h, w, 3]
        except ValueError as e:  # undecodable or over the pixel cap: say so, go on with the rest
            log.warning("skipping %s: %s", path, e)
            continue
        center, scale = fit_center_scale((image.shape[1], image.shape[0]), input_wh)
        matrix = warp_matrix(center, scale, 0.0, input_wh)  # image -> network input
        crop = image_to_tensor(warp_image(image, matrix, input_wh))[None].to(device)  # [1, 3, H, W]
        (raw,) = task.predict(model, crop)
        written += task.write_prediction(raw, image, matrix, out_dir, path.stem)
    return written
