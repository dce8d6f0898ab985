"""Build the bundled brain template (src/medseg3d/weights/atlas/) from BraTS cases on the SRI24 grid.

    python scripts/build_template.py ../shared/data/brats2018

Every case of the dataset is averaged (see medseg3d.raw.template); the case list is recorded in the JSON.
"""

from __future__ import annotations

import argparse
import time

from medseg3d.datasets import find_cases
from medseg3d.raw.template import TEMPLATE_DIR, build_template, save_template


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--out", default=str(TEMPLATE_DIR))
    args = p.parse_args()
    t0 = time.perf_counter()
    template = build_template(find_cases(args.dataset))
    path = save_template(template, folder=__import__("pathlib").Path(args.out))
    print(f"wrote {path} from {len(template.info['cases'])} cases in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
