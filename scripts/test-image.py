#!/usr/bin/env python3
"""Builds the tiny bootable test image the local-provider tests run, offline from Debian
packages: a kernel from `linux-image-*-amd64` and a busybox-static initramfs whose /init
loads the few modules it needs from the same kernel package, mounts the NoCloud seed found
by its `cidata` label, runs the user-data script, prints markers on the serial console, and
powers off on the ACPI power button.

Usage: scripts/test-image.py OUT_DIR   (writes OUT_DIR/vmlinuz and OUT_DIR/initrd.img;
does nothing when they are there and were made by this version of the script).
"""

import gzip
import hashlib
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

# Loaded in this order (each after its own dependencies): disks and the seed on virtio,
# the seed's ISO 9660 file system, and the ACPI power button as an input device.
MODULES = ["virtio_pci", "virtio_blk", "isofs", "button", "evdev"]

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for module in $(cat /modules.order); do insmod "/modules/$module" 2>/dev/null; done
echo "overcast-test-image: booted"
# The power button is an input device: any event from it powers the machine off. Its
# reader starts first, so a press right after boot is not lost.
for device in /sys/class/input/event*; do
    if grep -q "Power Button" "$device/device/name" 2>/dev/null; then
        button="/dev/input/$(basename "$device")"
    fi
done
if [ -n "$button" ]; then
    (dd if="$button" of=/dev/null bs=24 count=1 2>/dev/null
     echo "overcast-test-image: power button"
     poweroff -f) &
else
    echo "overcast-test-image: no power button"
fi
mkdir -p /seed
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    seed=$(findfs LABEL=cidata 2>/dev/null) && break
    sleep 0.2
done
if [ -n "$seed" ] && mount -t iso9660 -o ro "$seed" /seed; then
    name=$(sed -n 's/^local-hostname: *//p' /seed/meta-data)
    [ -n "$name" ] && hostname "$name"
    echo "overcast-test-image: seed $(sed -n 's/^instance-id: *//p' /seed/meta-data) on $seed"
    if [ -f /seed/user-data ]; then
        sh /seed/user-data
        echo "overcast-test-image: user-data exit $?"
    fi
else
    echo "overcast-test-image: no seed"
fi
echo "overcast-test-image: ready as $(hostname)"
while true; do sleep 3600; done
"""


def run(*args, cwd=None):
    subprocess.run(args, check=True, cwd=cwd, stdout=subprocess.DEVNULL)


def kernel_package():
    out = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], check=True, capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends: linux-image-") and line.endswith("-amd64"):
            return line.split()[1]
    sys.exit("cannot find the kernel package linux-image-amd64 depends on")


def depends(ko: pathlib.Path):
    """The module names a .ko needs, from its modinfo `depends=` string."""
    data = ko.read_bytes()
    at = data.find(b"\0depends=")
    if at < 0:
        return []
    end = data.index(b"\0", at + 1)
    listed = data[at + len(b"\0depends=") : end].decode()
    return [d for d in listed.split(",") if d]


def cpio_newc(files):
    """A newc cpio archive of (path, mode, data) entries, directories first."""
    out = io.BytesIO()
    for ino, (path, mode, data) in enumerate(files + [("TRAILER!!!", 0, b"")], start=1):
        name = path.encode() + b"\0"
        header = "070701" + "".join(
            f"{v:08X}"
            for v in [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0]
        )
        out.write(header.encode() + name)
        out.write(b"\0" * (-(110 + len(name)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))
    return out.getvalue()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = pathlib.Path(sys.argv[1])
    stamp = hashlib.sha256(pathlib.Path(__file__).read_bytes()).hexdigest()
    stamp_file = out_dir / "stamp"
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        # apt downloads as its own user when it can write the directory.
        tmp.chmod(0o777)
        try:
            run("apt-get", "download", "-q", kernel_package(), "busybox-static", cwd=tmp)
        except subprocess.CalledProcessError:
            # Package lists older than the mirror name files it no longer has.
            run("apt-get", "update", "-qq")
            run("apt-get", "download", "-q", kernel_package(), "busybox-static", cwd=tmp)
        root = tmp / "root"
        for deb in tmp.glob("*.deb"):
            run("dpkg-deb", "-x", str(deb), str(root))
        (kernel,) = (root / "boot").glob("vmlinuz-*")
        (modules_dir,) = (root / "lib" / "modules").iterdir()
        by_name = {}
        for ko in modules_dir.rglob("*.ko"):
            by_name[ko.stem.replace("-", "_")] = ko
        order = []

        def add(name):
            name = name.replace("-", "_")
            if name in order:
                return
            ko = by_name.get(name)
            if ko is None:
                return  # built into the kernel
            for dep in depends(ko):
                add(dep)
            order.append(name)

        for name in MODULES:
            add(name)
        files = [(d, 0o40755, b"") for d in ["bin", "dev", "proc", "sys", "modules", "seed"]]
        files.append(("bin/busybox", 0o100755, (root / "bin" / "busybox").read_bytes()))
        files.append(("init", 0o100755, INIT.encode()))
        files.append(("modules.order", 0o100644, "\n".join(n + ".ko" for n in order).encode()))
        for name in order:
            files.append((f"modules/{name}.ko", 0o100644, by_name[name].read_bytes()))
        (out_dir / "initrd.img").write_bytes(gzip.compress(cpio_newc(files), 6))
        shutil.copyfile(kernel, out_dir / "vmlinuz")
    stamp_file.write_text(stamp)
    print(f"test image: {out_dir}/vmlinuz, {out_dir}/initrd.img ({', '.join(order)})")


if __name__ == "__main__":
    main()
