"""Privacy: rtser writes no audio anywhere and talks to nothing but its sound server and the MQTT
broker it was given. Checked on the real processes with strace: every file opened for writing,
created, renamed or linked, and every socket connection.

Two things are not rtser's and are allowed by name: PortAudio's JACK backend probes for a JACK
server while it lists devices (its metadata database and server socket under /dev/shm/jack*), and
paho-mqtt wakes its network thread through a socket pair it connects to itself on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

from .conftest import ROOT, SAMPLE
from .realparts import LiveRun, Mosquitto, Subscriber, need, play_each, wait_for

SYSCALLS = "getsockname,open,openat,creat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,mkdir,mkdirat,truncate,connect"
WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")


def strace(log: str) -> tuple[str, ...]:
    return (need("strace"), "-f", "-qq", "-e", f"trace={SYSCALLS}", "-o", log)


def written_paths(log: str) -> list[str]:
    """Paths the traced processes opened for writing or created (failed calls left out)."""
    found = []
    for line in open(log, encoding="utf-8", errors="replace"):
        call = re.match(r"\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+)", line)
        if not call or int(call.group(3)) < 0 or call.group(1) in ("connect", "getsockname"):
            continue
        name, arguments = call.group(1), call.group(2)
        paths = re.findall(r'"([^"]*)"', arguments)
        if name.startswith("open") and not WRITE_FLAGS.search(arguments):
            continue
        found += paths[-1:] if name.startswith(("open", "creat", "mkdir", "truncate")) else paths
    return [p for p in found if p != "/dev/null" and "/__pycache__/" not in p and not p.startswith("/dev/shm/jack")]


def _inet(line: str) -> str | None:
    found = re.search(r'sin6?_port=htons\((\d+)\).*?inet_(?:addr|pton)\((?:AF_INET6, )?"([^"]*)"', line)
    return f"{found.group(2)}:{found.group(1)}" if found else None


def connections(log: str) -> list[str]:
    """Addresses the traced processes connected to (or tried to), less their own sockets (paho's
    wake-up pair) and the JACK server probe."""
    lines = open(log, encoding="utf-8", errors="replace").read().splitlines()
    own = {_inet(line) for line in lines if " getsockname(" in line} - {None}
    found = []
    for line in lines:
        if " connect(" in line:
            unix = re.search(r'sun_path="([^"]*)"', line)
            found.append(unix.group(1) if unix else _inet(line) or re.search(r"sa_family=(\w+)", line).group(1))
    return [a for a in found if a not in own and not a.startswith("/dev/shm/jack")]


def test_replay_writes_nothing_and_connects_nowhere(tmp_path):
    log = str(tmp_path / "trace")
    done = subprocess.run([*strace(log), sys.executable, "-m", "rtser", "replay", SAMPLE],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and done.stderr == ""
    assert [json.loads(line)["type"] for line in done.stdout.splitlines()].count("emotion") >= 1
    assert written_paths(log) == []
    assert connections(log) == []


def test_listen_sends_only_events_to_the_broker_and_writes_nothing(pulse, clips, tmp_path):
    broker = Mosquitto(str(tmp_path))
    broker.start()
    everything = Subscriber(broker.port, ["#"])
    board = tmp_path / "board.yaml"
    board.write_text(json.dumps({"audio": {"device": "emo_mic"}, "mqtt": {"host": "127.0.0.1", "port": broker.port}}))
    log = str(tmp_path / "trace")
    run = LiveRun("--config", str(board), "--status-seconds", "0.5", env=pulse.env, prefix=strace(log))
    try:
        run.wait_for_audio()
        play_each(pulse, run, [clips[0][0]])
    finally:
        tracee = int(open(f"/proc/{run.process.pid}/task/{run.process.pid}/children").read().split()[0])
        os.kill(tracee, signal.SIGTERM)
        code = run.process.wait(timeout=30)
    assert code == 0
    wait_for(lambda: any(payload == b"offline" for _, payload, _ in everything.messages), 10, "offline")
    everything.close()
    broker.stop()
    assert written_paths(log) == []
    assert set(connections(log)) <= {pulse.socket, f"127.0.0.1:{broker.port}"}
    assert f"127.0.0.1:{broker.port}" in connections(log)
    payloads = [payload for _, payload, _ in everything.messages]
    assert payloads and all(p in (b"online", b"offline") or json.loads(p)["type"] in ("utterance", "emotion", "speech", "status")
                            for p in payloads)  # fmt: skip
    assert max(len(p) for p in payloads) < 2048  # events, never audio
