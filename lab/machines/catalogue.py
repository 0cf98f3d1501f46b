"""What the outside world offers a lab machine: Kubernetes releases per package repository,
and the operating system images (their archive, kernel and base packages). Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass

# The newest patch of each minor: pkgs.k8s.io (from 1.24 on) and the legacy apt.kubernetes.io
# repository as it was frozen in September 2023. A scenario may override either (`latestPatch`).
PKGS_LATEST_PATCH = {"1.24": 17, "1.25": 16, "1.26": 15, "1.27": 16, "1.28": 15, "1.29": 15, "1.30": 14,
                     "1.31": 13, "1.32": 9, "1.33": 5, "1.34": 1}
LEGACY_LATEST_PATCH = {"1.13": 12, "1.14": 10, "1.15": 12, "1.16": 15, "1.17": 17, "1.18": 20, "1.19": 16,
                       "1.20": 15, "1.21": 14, "1.22": 17, "1.23": 17, "1.24": 17, "1.25": 14, "1.26": 9,
                       "1.27": 6, "1.28": 2}
# The legacy repository is what the seeds-era clusters use; pkgs.k8s.io is the only one for 1.24+ today.
FIRST_PKGS_MINOR = 24
# Packages whose installation makes Debian ask for a reboot (besides kernels).
REBOOT_PACKAGES = ("libc6", "libc-bin", "systemd", "dbus", "linux-base")


@dataclass(frozen=True)
class OsImage:
    pretty_name: str
    name: str
    version: str
    version_id: str
    codename: str
    mirror: str
    kernel: str  # the kernel it boots by default
    kernel_package: str  # the package whose new versions bring new kernels
    base: tuple[tuple[str, str], ...]  # (package, version) installed from the release pocket

    def os_release(self) -> str:
        return (f'NAME="{self.name}"\nVERSION="{self.version}"\nID={self.name.split()[0].lower()}\n'
                f'PRETTY_NAME="{self.pretty_name}"\nVERSION_ID="{self.version_id}"\n'
                f"VERSION_CODENAME={self.codename}\n")


IMAGES = {
    image.pretty_name: image for image in (
        OsImage("Ubuntu 18.04.5 LTS", "Ubuntu", "18.04.5 LTS (Bionic Beaver)", "18.04", "bionic", "http://archive.ubuntu.com/ubuntu",
                "5.4.0-1036-gcp", "linux-image-gcp",
                (("libc6", "2.27-3ubuntu1.4"), ("openssl", "1.1.1-1ubuntu2.1~18.04.7"),
                 ("openssh-server", "1:7.6p1-4ubuntu0.3"), ("sudo", "1.8.21p2-3ubuntu1.4"),
                 ("systemd", "237-3ubuntu10.44"), ("tzdata", "2020f-0ubuntu0.18.04"),
                 ("containerd", "1.3.3-0ubuntu1~18.04.4"))),
        OsImage("Ubuntu 20.04.6 LTS", "Ubuntu", "20.04.6 LTS (Focal Fossa)", "20.04", "focal", "http://archive.ubuntu.com/ubuntu",
                "5.15.0-1045-gcp", "linux-image-gcp",
                (("libc6", "2.31-0ubuntu9.9"), ("openssl", "1.1.1f-1ubuntu2.19"),
                 ("openssh-server", "1:8.2p1-4ubuntu0.9"), ("sudo", "1.8.31-1ubuntu1.5"),
                 ("systemd", "245.4-4ubuntu3.22"), ("tzdata", "2023c-0ubuntu0.20.04.2"),
                 ("containerd", "1.7.2-0ubuntu1~20.04.1"))),
        OsImage("Debian GNU/Linux 12 (bookworm)", "Debian GNU/Linux", "12 (bookworm)", "12", "bookworm", "http://deb.debian.org/debian",
                "6.1.0-13-cloud-amd64", "linux-image-cloud-amd64",
                (("libc6", "2.36-9+deb12u3"), ("openssl", "3.0.11-1~deb12u2"),
                 ("openssh-server", "1:9.2p1-2+deb12u1"), ("sudo", "1.9.13p3-1+deb12u1"),
                 ("systemd", "252.19-1~deb12u1"), ("tzdata", "2024a-0+deb12u1"),
                 ("containerd", "1.6.20~ds1-1+b1"))),
    )
}
DEFAULT_IMAGE = "Ubuntu 18.04.5 LTS"


def kernel_package_version(kernel: str) -> str:
    """'5.4.0-1036-gcp' -> '5.4.0.1036': how Ubuntu's kernel metapackages number their versions."""
    release = kernel.split("-")
    return ".".join([release[0], *release[1:2]]) if len(release) > 1 else kernel
