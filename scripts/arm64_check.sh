#!/usr/bin/env bash
# Proof on the boards people use: rtser installed with `pip install` into a 64-bit ARM Debian (as on
# 64-bit Raspberry Pi OS) under qemu user emulation, with the CPU of a Pi, running the README's main
# command and a short `rtser bench`; the events must be those this machine gives for the sample clip.
#
# Usage (as root, on an x86_64 Debian or Ubuntu machine; about 10 minutes, 1 GB of disk):
#   bash scripts/arm64_check.sh [bookworm|trixie] [cortex-a76|cortex-a72|cortex-a53] [ROOT_FOLDER]
# bookworm has Python 3.11 (Raspberry Pi OS today), trixie Python 3.13. cortex-a76 is a Pi 5's CPU,
# cortex-a72 a Pi 4's, cortex-a53 a Zero 2 W's: qemu's default CPU has vector extensions no Pi has.
# Prints one JSON object: the Python, the CPU, whether the events match, and the bench figures
# (emulated, so its times say nothing of a real Pi's speed).
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:-bookworm}
cpu=${2:-cortex-a76}
root=${3:-/var/tmp/rtser-arm64-$suite}
sample=rtser/samples/emodb-03a01Wa-anger.wav

need_apt=()
for pkg in qemu-user-static debootstrap; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# qemu-aarch64 as the interpreter of arm64 programs, loaded at once (flag F) so that it works in the chroot
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    line=$(grep -h '^:qemu-aarch64:' /usr/lib/binfmt.d/qemu-aarch64.conf)
    flags=${line##*:}
    [[ $flags == *F* ]] || line="$line"F
    echo "$line" > /proc/sys/fs/binfmt_misc/register
fi

if [ ! -x "$root/usr/bin/python3" ]; then
    echo "== debootstrap $suite arm64 into $root" >&2
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip,libsndfile1,libportaudio2,ca-certificates \
        "$suite" "$root" http://deb.debian.org/debian >/dev/null
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"

echo "== pip install rtser (a wheel of this checkout) on $cpu" >&2
rm -rf "$root/tmp/rtser-wheel" && mkdir -p "$root/tmp/rtser-wheel"
python3 -m pip wheel -q --no-deps --no-build-isolation -w "$root/tmp/rtser-wheel" . >/dev/null 2>&1 \
    || python3 -m pip wheel -q --no-deps -w "$root/tmp/rtser-wheel" . >/dev/null
chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root QEMU_CPU="$cpu" /bin/bash -euo pipefail -c '
    rm -rf /opt/rtser && python3 -m venv /opt/rtser
    /opt/rtser/bin/pip install -q --disable-pip-version-check /tmp/rtser-wheel/*.whl
    sample=$(/opt/rtser/bin/python -c "import os, rtser; print(os.path.join(os.path.dirname(rtser.__file__), \"samples\", \"emodb-03a01Wa-anger.wav\"))")
    /opt/rtser/bin/rtser replay "$sample" --json > /tmp/events.jsonl
    /opt/rtser/bin/rtser bench --seconds 10 --json > /tmp/bench.json
    /opt/rtser/bin/python -c "import platform, sys; print(platform.python_version(), platform.machine())" > /tmp/python.txt
'

here=$(mktemp)
python_bin=.venv/bin/python; [ -x "$python_bin" ] || python_bin=python3
"$python_bin" -m rtser replay "$sample" --json > "$here"
"$python_bin" - "$here" "$root/tmp/events.jsonl" "$root/tmp/bench.json" "$root/tmp/python.txt" "$suite" "$cpu" <<'EOF'
import json, sys

here, there, bench, python, suite, cpu = sys.argv[1:]
events = [[json.loads(line) for line in open(path)] for path in (here, there)]
def utterances(found):
    return [(e["label"], e["probs"]) for e in found if e["type"] == "utterance"]
same_kinds = [e["type"] for e in events[0]] == [e["type"] for e in events[1]]
gap = max((abs(a[1][k] - b[1][k]) for a, b in zip(*map(utterances, events)) for k in a[1]), default=None)
figures = json.load(open(bench))
print(json.dumps({
    "debian": suite, "python": open(python).read().split()[0], "emulated_cpu": cpu,
    "events_alike": same_kinds and [u[0] for u in utterances(events[0])] == [u[0] for u in utterances(events[1])],
    "largest_probability_difference": gap, "events": len(events[1]),
    "bench_emulated": {key: figures[key] for key in ("pipeline_x_realtime", "stages_ms_per_audio_second")} | {"model": figures["model"]["cpu_ms_per_window"]},
}))
EOF
rm -f "$here"
