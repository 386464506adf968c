"""What ColonyFS adds to a process: a dir of --mib MiB synced down before the command and back up after it (the
command copies it to a results dir), against the same sync with `colonies fs sync` from this host, and against a
process without fs, interleaved in the same run. Not a test: it prints figures.

usage: python bench/colonyfs.py [--mib 100] [--files 1] [--runs 3] [--operator-src DIR]
Needs the local cluster (the S3 server listens on its bridge, and the `colonies` image is imported into it).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import REPO, arguments, operator_serving, trivial_spec

from colonies_operator.colonies import ProcessState
from devtools.colonies_server import colonies_binary

NAMESPACE = "bench-colonyfs"
S3_SECRET = "colonies-s3"
S3_ADDRESS = os.environ.get("COLONIES_OPERATOR_HOST_ADDRESS", "10.88.0.1")
POLL_SECONDS = 0.05


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((S3_ADDRESS, 0))
        return sock.getsockname()[1]


def s3_server(state: Path) -> tuple[dict[str, str], dict[str, str]]:
    """hack/s3.sh up on a port of its own; (the environment to stop it with, the AWS_S3_* settings)."""
    env = dict(os.environ, S3_ADDRESS=S3_ADDRESS, S3_PORT=str(free_port()), S3_STATE_DIR=str(state))
    subprocess.run([str(REPO / "hack/s3.sh"), "up"], check=True, env=env, stdout=subprocess.DEVNULL)
    exports = subprocess.run([str(REPO / "hack/s3.sh"), "env"], check=True, env=env, stdout=subprocess.PIPE,
                             text=True).stdout
    return env, dict(re.findall(r'^export (AWS_S3_[A-Z]+)="([^"]*)"$', exports, re.MULTILINE))


def timed_sync(env: dict[str, str], label: str, folder: Path, keep_local: bool) -> float:
    started = time.monotonic()
    subprocess.run([colonies_binary(), "fs", "sync", "-l", label, "-d", str(folder),
                    f"--keeplocal={str(keep_local).lower()}", "--yes", "--quite"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def run_process(setup, spec: dict) -> tuple[float, str]:
    """Submit -> SUCCESS seconds, and the process's log."""
    client, colony = setup.server.client, setup.colony
    started = time.monotonic()
    process = client.submit(spec, colony.user_prvkey)
    while (p := client.get_process(process.processid, colony.user_prvkey)).state < ProcessState.SUCCESS:
        time.sleep(POLL_SECONDS)
    took = time.monotonic() - started
    log = "".join(e.message for e in client.all_logs(colony.name, process.processid, colony.user_prvkey))
    if p.state != ProcessState.SUCCESS:
        raise SystemExit(f"process {process.processid} ended in state {p.state}: {p.errors}\n{log[-3000:]}")
    return took, log


def step_seconds(log: str, words: str) -> float:
    match = re.search(rf"{words} ([0-9.]+)s", log)
    if not match:
        raise SystemExit(f"no '{words}' line in the process log:\n{log[-3000:]}")
    return float(match.group(1))


def median(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s (runs: {', '.join(f'{v:.2f}' for v in values)})"


def main() -> int:
    args = arguments(__doc__.splitlines()[0], mib=(100, "MiB in the dir"), files=(1, "files it is split into"),
                     runs=(3, "runs of each"))
    image_ref, image_tar = subprocess.run([str(REPO / "hack/images/build.sh"), "colonies"], check=True,
                                          stdout=subprocess.PIPE, text=True).stdout.split()[-2:]
    subprocess.run([str(REPO / "hack/load-image.sh"), "colonies"], check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="bench-colonyfs-") as tmp:
        work = Path(tmp)
        s3_env, settings = s3_server(work / "s3")
        try:
            data = work / "data"
            data.mkdir()
            per_file = args.mib * 1024 * 1024 // args.files
            for i in range(args.files):
                (data / f"part-{i:04d}.bin").write_bytes(os.urandom(per_file))
            fs = {"s3SecretRef": {"name": S3_SECRET}, "image": image_ref}
            with operator_serving(NAMESPACE, args.operator_src, args.kubeconfig, fs=fs) as setup:
                setup.kube.core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": S3_SECRET},
                                                                     "stringData": settings})
                env = {**setup.colony.cli_env(), **settings}
                host_up, host_down, pod_down, pod_up, with_fs, without_fs = [], [], [], [], [], []
                for run in range(args.runs):
                    label = f"/bench-{secrets.token_hex(4)}"
                    host_up.append(timed_sync(env, label, data, keep_local=True))
                    host_down.append(timed_sync(env, label, work / f"down-{run}", keep_local=False))
                    plain, _ = run_process(setup, trivial_spec(setup.colony, "true"))
                    spec = trivial_spec(setup.colony, "cp /cfs/in/* /cfs/out/")
                    spec["fs"] = {"mount": "/cfs", "dirs": [
                        {"label": label, "dir": "/in", "onconflicts": {"onstart": {"keeplocal": False}}},
                        {"label": f"{label}-out", "dir": "/out", "onconflicts": {"onclose": {"keeplocal": True}}}]}
                    took, log = run_process(setup, spec)
                    without_fs.append(plain)
                    with_fs.append(took)
                    pod_down.append(step_seconds(log, "ready in"))
                    pod_up.append(step_seconds(log, "synced up in"))
                    print(f"  run {run}: host up {host_up[-1]:.2f} s, down {host_down[-1]:.2f} s; in the pod down "
                          f"{pod_down[-1]:.2f} s, up {pod_up[-1]:.2f} s; submit -> SUCCESS {took:.2f} s with fs, "
                          f"{plain:.2f} s without", flush=True)
        finally:
            subprocess.run([str(REPO / "hack/s3.sh"), "down", "--purge"], env=s3_env, stdout=subprocess.DEVNULL)
    added = [a - b for a, b in zip(with_fs, without_fs)]
    print(f"\n{args.mib} MiB in {args.files} file(s), {args.runs} runs, medians:")
    print(f"  colonies fs sync from this host, up:            {median(host_up)}")
    print(f"  colonies fs sync from this host, down:          {median(host_down)}")
    print(f"  colonyfs-in in the pod, down (its own clock):   {median(pod_down)}")
    print(f"  colonyfs-out in the pod, up (its own clock):    {median(pod_up)}")
    print(f"  submit -> SUCCESS without fs (`true`):          {median(without_fs)}")
    print(f"  submit -> SUCCESS with fs (down, cp, up):       {median(with_fs)}")
    print(f"  added per process:                              {median(added)}; against the host's down + up "
          f"{statistics.median(host_up) + statistics.median(host_down):.2f} s: ratio "
          f"{statistics.median(added) / (statistics.median(host_up) + statistics.median(host_down)):.1f}")
    size = Path(image_tar).stat().st_size
    print(f"  the steps' image {image_ref}: {size / 2**20:.0f} MiB (docker archive, uncompressed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
