"""Which source operating systems boot on which EC2 instance types.

Nitro instance types (C5, M5, R5, T3 and every later generation) expose disks as NVMe and the
network as ENA; operating systems without those drivers do not boot on them. DRS records its
own verdict from the replicated disks (``sourceProperties.supportsNitroInstances``); the known
rule (RHEL/CentOS 6 and earlier, Windows Server 2008 and earlier) is applied as well, because a
launch template can name a Nitro type whatever DRS recommends. Either one saying "no" fails,
and the verdict names which one decided. Pure functions, no I/O.

For Linux, DRS's ``os.fullString`` is the kernel banner (``Linux version
3.10.0-1160.90.1.el7.x86_64 (mockbuild@kbuilder.bsys.centos.org) (gcc version 4.8.5 ...)``):
the release is read from the kernel release only (``el7``), never from the builder's host name
or the compiler's version. Release strings (``CentOS Linux release 7.9.2009``), as other
tools write them, are read too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Families that run on the Xen hypervisor (previous generations); used when EC2 does not say.
XEN_FAMILIES = {"t1", "t2", "m1", "m2", "m3", "m4", "c1", "c3", "c4", "r3", "r4", "i2", "i3",
                "d2", "g2", "g3", "g3s", "p2", "p3", "x1", "x1e", "h1", "f1", "cc2", "cr1", "hs1"}
# "Linux version <kernel release> (...)": the banner DRS reports for Linux sources.
_KERNEL_BANNER = re.compile(r"^\s*Linux version (\S+)", re.IGNORECASE)
# Enterprise Linux kernels (RHEL, CentOS, Oracle, Rocky, Alma): 2.6.32-754.el6.x86_64,
# 3.10.0-1160.el7.x86_64, 4.18.0-477.el8_8.x86_64; Oracle's UEK: 4.1.12-124.el6uek.
_EL_KERNEL = re.compile(r"\.el(\d+)(?:[_.a-z0-9]*)", re.IGNORECASE)
# A release string: "CentOS release 6.10 (Final)", "Red Hat Enterprise Linux Server release 6.10".
_RHEL_RELEASE = re.compile(r"^\s*(?:red\s*hat\b[^0-9]*?|rhel\b\D*?|centos\b(?:\s+linux)?"
                           r"\s+(?:release\s+)?)(\d+)(?:\.\d+)*", re.IGNORECASE)
_WINDOWS = re.compile(r"windows\s+server\s+(\d{4})(\s*r2)?", re.IGNORECASE)
_OLD_WINDOWS = re.compile(r"windows\s+(?:2000|2003|nt)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    compatible: bool
    # Why not, in words (empty when compatible).
    reason: str = ""
    # What decided: "instance type", "DRS supportsNitroInstances", "kernel release",
    # "OS name" (evidence for the auditor).
    decided_by: str = ""


def is_nitro(instance_type: str, description: Mapping[str, Any] | None = None) -> bool:
    """From DescribeInstanceTypes when available (Hypervisor, BareMetal), else the family."""
    if description:
        if description.get("Hypervisor"):
            return str(description["Hypervisor"]).lower() == "nitro"
        if description.get("BareMetal"):
            return True
    family = instance_type.split(".", 1)[0].lower()
    return family not in XEN_FAMILIES


def enterprise_linux_release(os_name: str) -> int | None:
    """The RHEL/CentOS major release of a kernel banner (its ``elN``) or a release string."""
    banner = _KERNEL_BANNER.match(os_name)
    if banner:
        el = _EL_KERNEL.search(banner.group(1))
        return int(el.group(1)) if el else None
    release = _RHEL_RELEASE.match(os_name)
    return int(release.group(1)) if release else None


def short_name(os_name: str) -> str:
    """The OS as a reader wants it in one line: a kernel banner becomes its release."""
    banner = _KERNEL_BANNER.match(os_name)
    return f"kernel {banner.group(1)}" if banner else os_name.strip()


def legacy_os(os_name: str) -> str | None:
    """The rule a source OS falls under if it cannot boot on Nitro types, else None."""
    release = enterprise_linux_release(os_name)
    if release is not None and release <= 6:
        return "RHEL/CentOS 6 and earlier"
    windows = _WINDOWS.search(os_name)
    if windows and (int(windows.group(1)) < 2008
                    or (int(windows.group(1)) == 2008 and not windows.group(2))):
        return "Windows Server 2008 and earlier"
    if _OLD_WINDOWS.search(os_name):
        return "Windows Server 2008 and earlier"
    return None


def compatible(instance_type: str, nitro: bool, os_name: str,
               supports_nitro: bool | None) -> Verdict:
    if not nitro:
        return Verdict(True, decided_by="instance type (Xen)")
    if supports_nitro is False:
        return Verdict(False, f"{instance_type} is a Nitro type and DRS reports that the source "
                              f"({short_name(os_name) or 'unknown OS'}) does not support Nitro "
                              "(supportsNitroInstances false); use a Xen type (e.g. m4, c4, r4, "
                              "t2) or add NVMe and ENA drivers to the source",
                       "DRS supportsNitroInstances")
    rule = legacy_os(os_name)
    if rule:
        release = enterprise_linux_release(os_name)
        banner = _KERNEL_BANNER.match(os_name)
        shown = (f"kernel {banner.group(1)} (el{release})" if banner and release is not None
                 else os_name)
        return Verdict(False, f"{instance_type} is a Nitro type and {shown} falls under "
                              f"'{rule} do not boot on Nitro'; use a Xen type (e.g. m4, c4, "
                              "r4, t2)", "kernel release" if banner else "OS name")
    if supports_nitro:
        return Verdict(True, decided_by="DRS supportsNitroInstances")
    return Verdict(True, decided_by="kernel release" if _KERNEL_BANNER.match(os_name)
                   else "OS name")
