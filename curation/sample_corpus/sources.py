"""Real photographs that ship inside installed packages: the originals of the sample corpus, no download needed."""

import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

# name -> (package, file inside it). Photographs only: the synthetic test images of these packages are left out.
PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "bus": ("ultralytics", "assets/bus.jpg"),
    "camera": ("skimage", "data/camera.png"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"),
    # The file matplotlib.cbook.get_sample_data("grace_hopper.jpg") returns.
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    "hubble_deep_field": ("skimage", "data/hubble_deep_field.jpg"),
    "motorcycle": ("skimage", "data/motorcycle_left.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "zidane": ("ultralytics", "assets/zidane.jpg"),
}

REENCODE_QUALITY = 95  # for the photos a package ships as PNG


@dataclass(frozen=True)
class Original:
    name: str
    data: bytes  # JPEG: the shipped bytes when the package already has a JPEG
    width: int
    height: int

    def load(self) -> Image.Image:
        """The decoded photo (RGB, or L for a grayscale one)."""
        image = Image.open(io.BytesIO(self.data))
        image.load()
        return image


def package_dir(package: str) -> Path:
    """Where an installed package lives, found without importing it: importing ultralytics writes a settings file
    and importing matplotlib creates a config directory, both under $HOME."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed; the sample corpus takes its photos from it (pip install {package})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def photo_path(name: str) -> Path:
    package, relative = PHOTOS[name]
    path = package_dir(package) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the installed {package} does not ship the photo {name!r}")
    return path


def load_originals() -> list[Original]:
    """Every photo of PHOTOS as JPEG, in name order."""
    return [_as_original(name, photo_path(name).read_bytes()) for name in sorted(PHOTOS)]


def _as_original(name: str, data: bytes) -> Original:
    image = Image.open(io.BytesIO(data))
    if image.format != "JPEG":
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=REENCODE_QUALITY)
        data = out.getvalue()
    return Original(name=name, data=data, width=image.width, height=image.height)
