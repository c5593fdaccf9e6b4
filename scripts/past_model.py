"""A model folder with the network files the default model shipped at an earlier commit, loadable
by today's rtser, so that ``rtser bench --compare`` can time that network beside today's:

    python scripts/past_model.py 95b39aa /tmp/model-95b39aa
    rtser bench --compare /tmp/model-95b39aa

The folder holds that commit's ``model.tflite`` and ``model.onnx`` with today's manifest, whose
``networks`` entry (file hashes, input quantization) is replaced by that commit's; today's speech
detector network is copied beside them. Only its network's time means anything: the voice
normalisation and speech detection are today's, so its labels are not that model's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join("rtser", "models", "default")


def at_commit(commit: str, name: str) -> bytes:
    """A file of the shipped model folder as it was at ``commit``."""
    return subprocess.run(["git", "show", f"{commit}:{MODEL}/{name}"], cwd=ROOT, capture_output=True, check=True).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commit", help="a commit of this repository, e.g. 95b39aa")
    parser.add_argument("out", help="folder to write (must not exist)")
    args = parser.parse_args()
    if os.path.exists(args.out):
        sys.exit(f"past_model: {args.out} exists; name a new folder")
    try:
        past = json.loads(at_commit(args.commit, "model.json"))
        files = {entry["path"]: at_commit(args.commit, entry["path"]) for entry in past["networks"].values()}
    except subprocess.CalledProcessError as err:
        sys.exit(f"past_model: no default model at {args.commit}: {err.stderr.decode().strip()}")
    with open(os.path.join(ROOT, MODEL, "model.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    if past["input_shape"] != manifest["input_shape"] or past["labels"] != manifest["labels"]:
        sys.exit(f"past_model: the model at {args.commit} reads other windows or gives other labels than today's")
    os.makedirs(args.out)
    for name, data in files.items():
        with open(os.path.join(args.out, name), "wb") as handle:
            handle.write(data)
    shutil.copy(os.path.join(ROOT, MODEL, manifest["speech_detector"]["network"]), args.out)
    manifest |= {"name": f"default-{args.commit}", "networks": past["networks"]}
    with open(os.path.join(args.out, "model.json"), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
    print(f"written: {args.out} (the networks of {args.commit}: {', '.join(files)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
