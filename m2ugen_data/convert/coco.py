"""COCO captions (``annotations/captions_train2014.json`` + ``train2014/``) -> ``coco`` shards for stage 1.

The public layout: ``{"images": [{"id", "file_name", ...}], "annotations": [{"id", "image_id", "caption"}], ...}``
with the images under the images folder by ``file_name``. One sample per caption (as the released M2UGen
trainer iterates the annotations), the image as ``input.jpg``; ``captions_per_image`` keeps only the first N
captions of each image (by annotation id) to bound the shard size, which repeats the image per caption.
Rejected (and recorded): an annotation whose image is not listed, missing, unsafe, outside the images folder
(through a link), over the shard member limit or ``max_image_pixels`` by its header, or not decodable; an
empty caption. Refused as a
whole (one line): an image id listed twice with different files (``_image_files`` says why).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from m2ugen_data.convert.common import ConvertError, Rejects, input_file, safe_child, sample
from m2ugen_data.convert.json_source import MAX_JSON_MB, check_json, json_items
from m2ugen_data.shards.sample_schema import CocoCaptionSample, CocoCaptionTurn, SourceRecord, TextAnswerTurn
from m2ugen_data.shards.tar_writer import Sample

MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS  # Pillow's own warning threshold (~89 M pixels), one cap users know


def _image_file(root: Path, path: Path, max_pixels: int) -> tuple[Path | None, str | None]:
    """(the file with its links resolved, None) when ``input_file`` takes it, it is a JPEG and its header's
    size is within ``max_pixels``, else (None, the reason). Only the header is read (Pillow opens lazily):
    a 678-byte JPEG can claim 60000x60000 pixels, which Pillow refuses with ``DecompressionBombError`` and,
    below twice its own cap, only warns about; the trainer would then decode gigabytes."""
    real, reason = input_file(root, path, "image")
    if real is None:
        return None, reason
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap decides
            with Image.open(real) as im:
                if im.width * im.height > max_pixels:
                    return None, "image_too_large"
                im.verify()
                return (real, None) if im.format == "JPEG" else (None, "image_not_jpeg")
    except Image.DecompressionBombError:
        return None, "image_too_large"
    except (UnidentifiedImageError, OSError, SyntaxError):
        return None, "image_unreadable"


def _image_files(path: Path) -> dict[int, Any]:
    """image id -> its ``file_name``. A duplicate id that names another file stops the conversion (one line
    naming the id and both entries) rather than rejecting that id's captions: the id is the only link
    between a caption and its picture, so any caption of it could ship with the wrong one, and a file with
    such a clash was most likely merged from two id spaces, which makes every other id suspect too; the
    user fixes the file. The same entry listed twice names one image, so nothing is ambiguous: kept."""
    files: dict[int, Any] = {}
    where: dict[int, int] = {}
    for n, im in enumerate(json_items(path, "images")):
        if not isinstance(im, dict) or not isinstance(im.get("id"), int):
            continue
        image_id, name = im["id"], im.get("file_name")
        if image_id in files and files[image_id] != name:
            raise ConvertError(f"{path}: image id {image_id} is listed twice, images[{where[image_id]}] "
                               f"{files[image_id]!r:.100} and images[{n}] {name!r:.100}, so its captions could "
                               "ship with the wrong image; remove one of the entries")
        files[image_id], where[image_id] = name, n
    return files


def iter_coco(path: Path, images_dir: Path, rejects: Rejects, captions_per_image: int | None = None, *,
              max_json_mb: int = MAX_JSON_MB, max_image_pixels: int = MAX_IMAGE_PIXELS) -> Iterator[Sample]:
    if check_json(path, ["images", "annotations"], max_mb=max_json_mb) != {"images", "annotations"}:
        raise ConvertError(f"{path}: expected COCO captions JSON with 'images' and 'annotations' lists")
    files = _image_files(path)
    by_image: dict[int, list[tuple[int, int, Any]]] = defaultdict(list)
    for i, ann in enumerate(json_items(path, "annotations")):
        if not isinstance(ann, dict) or not isinstance(ann.get("image_id"), int) or not isinstance(ann.get("id"), int):
            rejects.add(f"{path.name}#{i}", "bad_annotation")
            continue
        by_image[ann["image_id"]].append((ann["id"], i, ann.get("caption")))
    for image_id in sorted(by_image):
        anns = sorted(by_image[image_id], key=lambda a: a[:2])
        name = files.get(image_id)
        image = safe_child(images_dir, name) if name is not None else None
        if image is not None:
            real, reason = _image_file(images_dir, image, max_image_pixels)
        else:
            real, reason = None, "image_not_listed" if name is None else "bad_file_name"
        if real is None:
            for _, i, _ in anns:
                rejects.add(f"{path.name}#{i}", reason, str(name)[:100])
            continue
        kept = 0
        for ann_id, i, caption in anns:
            if not isinstance(caption, str) or not caption.strip():
                rejects.add(f"{path.name}#{i}", "empty_caption")
                continue
            if captions_per_image is not None and kept >= captions_per_image:
                continue
            kept += 1
            caption = " ".join(caption.split())
            key = f"coco{image_id:012d}_{ann_id}"
            model = CocoCaptionSample(
                key=key, input_file=f"coco{image_id:012d}.jpg", members={"input": "input.jpg"},
                conversation=(CocoCaptionTurn(value="Describe the image in detail.", caption=caption),
                              TextAnswerTurn(value=caption)),
                image_id=image_id, annotation_id=ann_id, source=SourceRecord(file=path.name, index=i))
            yield sample(key, model, {"input.jpg": real})
