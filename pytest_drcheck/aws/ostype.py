"""Which source operating systems boot on which EC2 instance types.

Nitro instance types (C5, M5, R5, T3 and every later generation) expose disks as NVMe and the
network as ENA; operating systems without those drivers do not boot on them. DRS records its
own verdict from the replicated disks (``sourceProperties.supportsNitroInstances``); the known
rule (RHEL/CentOS 6 and earlier, Windows Server 2008 and earlier) is applied as well, because a
launch template can name a Nitro type whatever DRS recommends. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Families that run on the Xen hypervisor (previous generations); used when EC2 does not say.
XEN_FAMILIES = {"t1", "t2", "m1", "m2", "m3", "m4", "c1", "c3", "c4", "r3", "r4", "i2", "i3",
                "d2", "g2", "g3", "g3s", "p2", "p3", "x1", "x1e", "h1", "f1", "cc2", "cr1", "hs1"}
_RHEL = re.compile(r"\b(?:red\s*hat|rhel|centos)\b\D*?(\d+)(?:\.\d+)*", re.IGNORECASE)
_WINDOWS = re.compile(r"windows\s+server\s+(\d{4})(\s*r2)?", re.IGNORECASE)
_OLD_WINDOWS = re.compile(r"windows\s+(?:2000|2003|nt)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    compatible: bool
    # Why not, in words (empty when compatible).
    reason: str = ""


def is_nitro(instance_type: str, description: Mapping[str, Any] | None = None) -> bool:
    """From DescribeInstanceTypes when available (Hypervisor, BareMetal), else the family."""
    if description:
        if description.get("Hypervisor"):
            return str(description["Hypervisor"]).lower() == "nitro"
        if description.get("BareMetal"):
            return True
    family = instance_type.split(".", 1)[0].lower()
    return family not in XEN_FAMILIES


def legacy_os(os_name: str) -> str | None:
    """The rule a source OS falls under if it cannot boot on Nitro types, else None."""
    rhel = _RHEL.search(os_name)
    if rhel and int(rhel.group(1)) <= 6:
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
        return Verdict(True)
    if supports_nitro is False:
        return Verdict(False, f"{instance_type} is a Nitro type and DRS reports that the source "
                              f"({os_name or 'unknown OS'}) does not support Nitro "
                              "(supportsNitroInstances false); use a Xen type (e.g. m4, c4, r4, "
                              "t2) or add NVMe and ENA drivers to the source")
    rule = legacy_os(os_name)
    if rule:
        return Verdict(False, f"{instance_type} is a Nitro type and {os_name} falls under "
                              f"'{rule} do not boot on Nitro'; use a Xen type (e.g. m4, c4, r4, "
                              "t2)")
    return Verdict(True)
