#!/usr/bin/env python
"""Check that the test suite catches a broken model step.

Copies stemcut/ and tests/ to a temporary folder, breaks MaskSeparator.estimates there in one
way at a time (masks all zeros, targets swapped, masks all ones), runs pytest on the copy and
prints how many tests failed. Each mutation must fail at least one test; exit 1 otherwise.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = "        masks = spread(mask, self.targets) if spread is not None else [mask(t) for t in self.targets]\n"
MUTATIONS = {
    "zeros": "        masks = [torch.zeros_like(mask) for mask in masks]\n",
    "swapped targets": "        masks = masks[::-1]\n",
    "ones": "        masks = [torch.ones_like(mask) for mask in masks]\n",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    source = (ROOT / "stemcut" / "core.py").read_text()
    if ANCHOR not in source:
        print("the model step in stemcut/core.py changed: update ANCHOR in this script", file=sys.stderr)
        return 2
    caught = True
    for name, line in MUTATIONS.items():
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch)
            shutil.copytree(ROOT / "stemcut", copy / "stemcut")
            shutil.copytree(ROOT / "tests", copy / "tests")
            shutil.copytree(ROOT / "weights", copy / "weights")
            (copy / "stemcut" / "core.py").write_text(source.replace(ANCHOR, ANCHOR + line))
            result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                                    cwd=copy, capture_output=True, text=True, env={"PYTHONPATH": str(copy),
                                                                                   "PATH": "/usr/bin:/bin"})
            failed = len(re.findall(r"^FAILED ", result.stdout, re.M))
            print(f"{name}: {failed} test(s) failed")
            caught &= failed > 0
    return 0 if caught else 1


if __name__ == "__main__":
    raise SystemExit(main())
