"""What glibc's stub resolver reads from /etc/resolv.conf: nameservers, search list, ndots.

Only what decides which nameservers are asked, and for which names; options that tune
timeouts or retries do not change the answer, so they are not read.
"""

from __future__ import annotations

from dataclasses import dataclass

# resolv.conf(5): with no nameserver line, the resolver asks the local machine.
GLIBC_DEFAULT_NAMESERVER = "127.0.0.1"
# glibc uses the first three nameserver lines (MAXNS) and ignores the rest.
MAX_NAMESERVERS = 3
DEFAULT_NDOTS = 1


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...]
    search: tuple[str, ...] = ()
    ndots: int = DEFAULT_NDOTS

    @property
    def asked(self) -> tuple[str, ...]:
        """The nameservers glibc really asks, in order."""
        return self.nameservers[:MAX_NAMESERVERS] or (GLIBC_DEFAULT_NAMESERVER,)

    def candidates(self, name: str) -> tuple[str, ...]:
        """The absolute names glibc's res_search tries for ``name``, in order."""
        if name.endswith("."):
            return (name,)
        searched = tuple(f"{name}.{domain.rstrip('.')}." for domain in self.search)
        absolute = f"{name}."
        if name.count(".") >= self.ndots:
            return (absolute, *searched)
        return (*searched, absolute)


def parse_nameservers(resolv_conf: str) -> list[str]:
    return list(parse_resolv_conf(resolv_conf).nameservers)


def parse_resolv_conf(text: str) -> ResolvConf:
    nameservers: list[str] = []
    search: tuple[str, ...] = ()
    ndots = DEFAULT_NDOTS
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith(("#", ";")):
            continue
        keyword, values = parts[0], parts[1:]
        if keyword == "nameserver" and values:
            nameservers.append(values[0])
        # The last of 'search' and 'domain' wins, as in glibc.
        elif keyword == "search":
            search = tuple(values)
        elif keyword == "domain" and values:
            search = (values[0],)
        elif keyword == "options":
            for option in values:
                if option.startswith("ndots:") and option[6:].isdigit():
                    ndots = min(int(option[6:]), 15)
    return ResolvConf(tuple(nameservers), search, ndots)
