"""Asking a host's own nameservers what its system resolver would have been told.

``getent`` exits 2 both when a name does not exist and when the resolver failed (no
nameserver answered). To tell them apart, the nameservers of the host's /etc/resolv.conf are
asked directly, over TCP from the host, the way glibc's stub resolver asks them: in order,
moving to the next on no answer, SERVFAIL or REFUSED, and for a search the names of the
search list in glibc's order. NXDOMAIN and NOERROR are answers; nothing else is.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_drcheck.net.dnsquery import ANSWER_RCODES, NoAnswer, answers, ask, rcode_of
from pytest_drcheck.net.resolvconf import GLIBC_DEFAULT_NAMESERVER, ResolvConf
from pytest_drcheck.targets.base import Target

DNS_PORT = 53


class ResolverFailed(Exception):
    """No nameserver of the host gave an answer; the message lists each one's cause."""


@dataclass(frozen=True)
class StubAnswer:
    # The absolute name asked (with its final dot).
    name: str
    # NOERROR or NXDOMAIN.
    rcode: str
    # Records of the asked type, as comparable text (empty: none of that type).
    values: tuple[str, ...]
    # "10.77.0.53:53": the nameserver that answered.
    server: str
    records: tuple[str, ...]


def first_answer(target: Target, conf: ResolvConf, name: str, record_type: str,
                 budget: float) -> StubAnswer:
    """The answer of the first of the host's nameservers that gives one, within ``budget``
    seconds (an equal share each: a message can then say exactly how long one was given)."""
    causes: list[str] = []
    servers = conf.asked
    share = budget / len(servers)
    for server in servers:
        shown = f"{server}:{DNS_PORT}"
        try:
            response = ask(target, (server, DNS_PORT), name, record_type, share)
        except NoAnswer as exc:
            causes.append(f"nameserver {shown} {exc}")
            continue
        rcode = rcode_of(response)
        if rcode not in ANSWER_RCODES:
            causes.append(f"nameserver {shown} answered {rcode} for {name.rstrip('.')}")
            continue
        return StubAnswer(name, rcode, tuple(answers(response, record_type)), shown,
                          tuple(str(r) for r in response.answer))
    if not conf.nameservers:
        causes[0] = (f"/etc/resolv.conf lists no nameserver, and {causes[0]} "
                     f"({GLIBC_DEFAULT_NAMESERVER} is glibc's default)")
    raise ResolverFailed("; ".join(causes))


def search(target: Target, conf: ResolvConf, name: str, record_type: str,
           budget: float) -> StubAnswer:
    """What a search for ``name`` finds: the first name of the search order with records of
    the type; else, when every name of the order was answered without any, the answer for
    ``name`` itself (NXDOMAIN, or NOERROR with no record of the type)."""
    candidates = conf.candidates(name)
    own: StubAnswer | None = None
    for candidate in candidates:
        answer = first_answer(target, conf, candidate, record_type, budget / len(candidates))
        if answer.values:
            return answer
        if candidate.rstrip(".") == name.rstrip("."):
            own = answer
    assert own is not None  # the name itself is always one of the candidates
    return own
