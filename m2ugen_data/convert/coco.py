"""COCO captions (``annotations/captions_train2014.json`` + ``train2014/``) -> ``coco`` shards for stage 1.

The public layout: ``{"images": [{"id", "file_name", ...}], "annotations": [{"id", "image_id", "caption"}], ...}``
with the images under the images folder by ``file_name``. One sample per caption (as the released M2UGen
trainer iterates the annotations), the image as ``input.jpg``; ``captions_per_image`` keeps only the first N
captions of each image (by annotation id) to bound the shard size, which repeats the image per caption.
Rejected (and recorded): an annotation whose image is not listed, missing, unsafe or not decodable, an empty
caption.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from m2ugen_data.convert.common import ConvertError, Rejects, load_json, safe_child, sample, text_field
from m2ugen_data.shards.sample_schema import CocoCaptionSample, CocoCaptionTurn, SourceRecord, TextAnswerTurn
from m2ugen_data.shards.tar_writer import Sample


def _image_ok(path: Path) -> str | None:
    if not path.is_file():
        return "image_missing"
    try:
        with Image.open(path) as im:
            im.verify()
            return None if im.format == "JPEG" else "image_not_jpeg"
    except (UnidentifiedImageError, OSError, SyntaxError):
        return "image_unreadable"


def iter_coco(path: Path, images_dir: Path, rejects: Rejects, captions_per_image: int | None = None) -> Iterator[Sample]:
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise ConvertError(f"{path}: expected COCO captions JSON with 'images' and 'annotations' lists")
    files = {im["id"]: im.get("file_name") for im in data["images"] if isinstance(im, dict) and isinstance(im.get("id"), int)}
    by_image: dict[int, list[tuple[int, int, dict]]] = defaultdict(list)
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not isinstance(ann.get("image_id"), int) or not isinstance(ann.get("id"), int):
            rejects.add(f"{path.name}#{i}", "bad_annotation")
            continue
        by_image[ann["image_id"]].append((ann["id"], i, ann))
    for image_id in sorted(by_image):
        anns = sorted(by_image[image_id])
        name = files.get(image_id)
        image = safe_child(images_dir, name) if name is not None else None
        reason = "image_not_listed" if name is None else "bad_file_name" if image is None else _image_ok(image)
        if reason:
            for _, i, _ in anns:
                rejects.add(f"{path.name}#{i}", reason, str(name))
            continue
        kept = 0
        for ann_id, i, ann in anns:
            caption = text_field(ann, "caption")
            if caption is None:
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
            yield sample(key, model, {"input.jpg": image})
