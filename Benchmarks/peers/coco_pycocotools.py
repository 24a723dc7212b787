"""pycocotools peer: the mask pycocotools makes for each image of a COCO annotation file.

Usage: coco_pycocotools.py FILE.json   Prints one JSON line per image: file_name, the SHA-256
of the union of its annotations' masks (annToMask, uint8 0/1, C order) and its pixel count.
"""
import hashlib
import json
import sys

import numpy as np
from pycocotools.coco import COCO


def main():
    coco = COCO(sys.argv[1])
    for image_id in sorted(coco.getImgIds()):
        info = coco.loadImgs(image_id)[0]
        mask = np.zeros((info["height"], info["width"]), dtype=np.uint8)
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
            mask |= coco.annToMask(annotation).astype(np.uint8)
        print(json.dumps({"file_name": info["file_name"], "sha256": hashlib.sha256(np.ascontiguousarray(mask).tobytes()).hexdigest(),
                          "pixels": int(mask.sum())}), flush=True)


if __name__ == "__main__":
    main()
