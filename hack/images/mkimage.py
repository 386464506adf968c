#!/usr/bin/env python3
"""Packs a root filesystem directory into a single-layer image archive in `docker save` format.

usage: mkimage.py OUT.tar REF ROOTFS_DIR [--cmd JSON] [--entrypoint JSON] [--env K=V ...]

Both `ctr images import` and `docker load` accept the result. Owners and mtimes are reset, so the same
rootfs always gives the same bytes (and the same image id).
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def reset(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    ti.mtime = 0
    return ti


def write_layer(rootfs: str, fileobj) -> None:
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as t:
        for root, dirs, files in os.walk(rootfs):
            dirs.sort()
            files.sort()
            for name in dirs + files:
                full = os.path.join(root, name)
                t.add(full, arcname=os.path.relpath(full, rootfs), recursive=False, filter=reset)


def add_bytes(t: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("ref", help="full reference, e.g. docker.io/library/busybox:1.35")
    p.add_argument("rootfs")
    p.add_argument("--cmd", help="JSON list")
    p.add_argument("--entrypoint", help="JSON list")
    p.add_argument("--env", action="append", default=[], help="K=V (PATH has a default)")
    p.add_argument("--workdir", default="/")
    a = p.parse_args()

    env = a.env if any(e.startswith("PATH=") for e in a.env) else [DEFAULT_PATH, *a.env]
    out_dir = os.path.dirname(os.path.abspath(a.out))
    # The layer goes through a temporary file: rootfs trees with an interpreter are too big for memory.
    with tempfile.TemporaryFile(dir=out_dir) as layer:
        write_layer(a.rootfs, layer)
        layer.seek(0)
        h = hashlib.sha256()
        for chunk in iter(lambda: layer.read(1 << 20), b""):
            h.update(chunk)
        size = layer.tell()
        diff_id = "sha256:" + h.hexdigest()

        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {"Env": env, "WorkingDir": a.workdir},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/images/mkimage.py"}],
        }
        if a.cmd:
            config["config"]["Cmd"] = json.loads(a.cmd)
        if a.entrypoint:
            config["config"]["Entrypoint"] = json.loads(a.entrypoint)
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        layer_name = h.hexdigest() + "/layer.tar"
        manifest = json.dumps([{"Config": config_name, "RepoTags": [a.ref], "Layers": [layer_name]}]).encode()

        tmp_out = a.out + ".tmp"
        with tarfile.open(tmp_out, "w") as t:
            add_bytes(t, config_name, config_bytes)
            ti = tarfile.TarInfo(layer_name)
            ti.size = size
            layer.seek(0)
            t.addfile(ti, layer)
            add_bytes(t, "manifest.json", manifest)
        shutil.move(tmp_out, a.out)


if __name__ == "__main__":
    main()
