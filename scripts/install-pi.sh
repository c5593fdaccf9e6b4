#!/usr/bin/env bash
# Install rtser on a Raspberry Pi (Raspberry Pi OS Bookworm, 64-bit) and run it as a service.
#
#   sudo bash scripts/install-pi.sh --board raspberry-pi-5        # from a checkout of this repository
#
# Options: --board NAME     a file of firmware_configs/ (default: usb-microphone)
#          --prefix DIR     where the virtual environment goes (default: /opt/rtser)
#          --no-service     install only; do not create the user and the systemd unit
# Afterwards: edit /etc/rtser/config.yaml (device, MQTT host), put MQTT secrets in /etc/rtser/rtser.env,
# then `sudo systemctl restart rtser`; `journalctl -u rtser -f` shows the events and status lines.
set -euo pipefail
cd "$(dirname "$0")/.."

board=usb-microphone prefix=/opt/rtser service=1
while [ $# -gt 0 ]; do
    case "$1" in
        --board) board="$2"; shift 2 ;;
        --prefix) prefix="$2"; shift 2 ;;
        --no-service) service=0; shift ;;
        *) echo "install-pi.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
config="firmware_configs/$board.yaml"
[ -f "$config" ] || { echo "install-pi.sh: no board file $config (see firmware_configs/)" >&2; exit 2; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

echo "== system packages"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    python3-venv python3-pip libportaudio2 libsndfile1 alsa-utils

echo "== rtser into $prefix/venv"
$SUDO python3 -m venv "$prefix/venv"
$SUDO "$prefix/venv/bin/pip" install -q --disable-pip-version-check .
$SUDO "$prefix/venv/bin/rtser" info > /dev/null   # the shipped model loads
"$prefix/venv/bin/rtser" devices || true

# the system user the service runs as (and the group that may read the config, which can hold an
# MQTT password: mode 640, root:rtser, never world-readable)
id rtser >/dev/null 2>&1 || $SUDO useradd --system --no-create-home --shell /usr/sbin/nologin --groups audio rtser

echo "== configuration in /etc/rtser"
$SUDO install -d -m 755 /etc/rtser
if [ -f /etc/rtser/config.yaml ]; then
    echo "keeping the existing /etc/rtser/config.yaml"
else
    $SUDO install -m 640 -o root -g rtser "$config" /etc/rtser/config.yaml
fi
$SUDO chmod o-rwx /etc/rtser/config.yaml && $SUDO chgrp rtser /etc/rtser/config.yaml
[ -f /etc/rtser/rtser.env ] || printf '# RTSER_MQTT_USERNAME=\n# RTSER_MQTT_PASSWORD=\n' | $SUDO install -m 600 /dev/stdin /etc/rtser/rtser.env

if [ "$service" -eq 1 ]; then
    echo "== service"
    sed "s#/opt/rtser/venv#$prefix/venv#" scripts/rtser.service | $SUDO install -m 644 /dev/stdin /etc/systemd/system/rtser.service
    $SUDO systemctl daemon-reload
    $SUDO systemctl enable --now rtser
    $SUDO systemctl --no-pager status rtser | head -5
fi
echo "done: $prefix/venv/bin/rtser listen --config /etc/rtser/config.yaml"
