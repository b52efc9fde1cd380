"""Load, validate and expand an inventory into a Plan."""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from pytest_drcheck import extensions
from pytest_drcheck.checks import registry
from pytest_drcheck.checks.base import ExpansionError
from pytest_drcheck.durations import parse_duration
from pytest_drcheck.gcpause import collector_paused
from pytest_drcheck.inventory import schema
from pytest_drcheck.inventory.errors import InventoryError, Problem
from pytest_drcheck.inventory.plan import ConnectionSpec, DrillSpec, HostSpec, Plan
from pytest_drcheck.inventory.secrets import SecretRef
from pytest_drcheck.inventory.waivers import parse_waivers
from pytest_drcheck.inventory.yamldoc import Document, load_document, place_of
from pytest_drcheck.model import Location, PlanItem, freeze

BUILTIN_SUITES = Path(__file__).resolve().parent.parent / "suites"
DEFAULT_CHECK_TIMEOUT = 30.0
_DURATION_KEYS = ("connect_timeout", "command_timeout")


@dataclass(frozen=True)
class _Source:
    """A `checks:` mapping and where it was written (inventory or a suite file)."""

    doc: Document
    path: tuple[str | int, ...]
    checks: Mapping[str, Any]
    # For a suite: where the inventory applies it, and whether the plugin ships it (then a
    # mistake it reveals is the inventory's, and is reported there).
    applied_at: tuple[str | int, ...] = ()
    shipped: bool = False


def _connection(layers: Sequence[Mapping[str, Any]], host_name: str) -> ConnectionSpec:
    """Later layers (defaults < groups < host) override earlier ones key by key. A jump
    inherited from defaults or a group does not apply to the jump host itself (the README's
    `defaults: {connection: {jump: bastion}}`); the host's own `jump: null` opts out too."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    if merged.get("jump") == host_name and "jump" not in layers[-1]:
        merged["jump"] = None
    known = {f.name for f in fields(ConnectionSpec)}
    values: dict[str, Any] = {}
    for key, value in merged.items():
        if key == "password":
            values[key] = SecretRef.parse(value)
        elif key in _DURATION_KEYS:
            values[key] = parse_duration(value)
        elif key in known:
            values[key] = value
    extra = {key: value for key, value in merged.items() if key not in known}
    return ConnectionSpec(**values, extra=freeze(extra))


class _Loader:
    def __init__(self, path: Path, suite_dirs: Sequence[Path], display_name: str) -> None:
        self.path = path
        self.display_name = display_name
        self.suite_dirs = list(suite_dirs)
        self.problems: list[Problem] = []
        self.suites: dict[str, Document | None] = {}
        # Suites the plugin ships (resolved: the package's suites/ may be a link).
        self.shipped_files: set[str] = set()

    def load(self) -> Plan:
        doc = self.doc = load_document(self.path, self.display_name)
        if not isinstance(doc.data, dict):
            raise InventoryError([doc.problem((), "an inventory must be a mapping; write "
                                                  "version, drill and hosts at the top level")])
        site = doc.data.get("site")
        problems = validate(doc, schema.inventory_schema(
            schema.check_types_used(doc.data, ("groups", "hosts")),
            site=bool(site) and isinstance(site, dict)))
        if problems:
            raise InventoryError(problems)
        data: dict[str, Any] = doc.data
        base = self.path.parent
        self.suite_dirs = [base / p for p in data.get("suite_paths", [])] + self.suite_dirs + [
            base / "suites", base.parent / "suites", BUILTIN_SUITES]
        drill_data = data["drill"]
        drill = DrillSpec(
            name=drill_data["name"], description=drill_data.get("description", ""),
            rto_seconds=parse_duration(drill_data["rto"]) if "rto" in drill_data else None,
            rpo_seconds=parse_duration(drill_data["rpo"]) if "rpo" in drill_data else None)
        self.drill = drill
        # Each host's source server (`source:`), known before expansion: families that
        # measure against it (rpo) get it, and the drill's objectives, in their entry.
        self.source_of = {name: (source if isinstance(source, str) else f"{name}.source")
                          for name, host_data in data["hosts"].items()
                          if (source := host_data.get("source")) is not None}
        # Per source, its recovery hosts found through an extension (drs:/ec2:): replication
        # reads the recovery service's settings for the source through their targets.
        self.linked_by: dict[str, list[str]] = {}
        for name in sorted(self.source_of):
            if set(extensions.host_keys()) & set(data["hosts"][name]):
                self.linked_by.setdefault(self.source_of[name], []).append(name)
        # Once, not per entry (sorted again for each entry, quadratic in the hosts); a tuple,
        # as every entry shares it.
        self.sources = tuple(sorted(set(self.source_of.values())))
        self._recovering: dict[str, list[tuple[str, str | None]]] | None = None
        self._check_site_sections(doc, data.get("site", {}))
        defaults = data.get("defaults", {})
        default_timeout = parse_duration(defaults.get("timeout", DEFAULT_CHECK_TIMEOUT))
        groups: dict[str, Any] = data.get("groups", {})
        site = data.get("site", {})
        hosts: dict[str, HostSpec] = {}
        items: dict[str, PlanItem] = {}
        host_keys = tuple(extensions.host_keys())  # once, not per host
        for host_name, host_data in sorted(data["hosts"].items()):
            host_path: tuple[str | int, ...] = ("hosts", host_name)
            for index, group_name in enumerate(host_data.get("groups", [])):
                if group_name not in groups:
                    self.problems.append(doc.problem(
                        (*host_path, "groups", index),
                        f"group '{group_name}' is not defined under groups:; define it or fix "
                        f"the name{_hint(group_name, groups)}"))
            member_groups = [g for g in host_data.get("groups", []) if g in groups]
            layers = [defaults.get("connection", {})]
            layers += [groups[g].get("connection", {}) for g in member_groups]
            layers.append(host_data.get("connection", {}))
            connection = _connection(layers, host_name)
            address = host_data.get("address")
            aws = {key: host_data[key] for key in host_keys if key in host_data}
            if connection.type in ("ssh", "winrm") and not address and not aws:
                hints = ", or ".join(e.host_keys_hint for e in extensions.extensions()
                                     if e.host_keys_hint)
                self.problems.append(doc.problem(
                    host_path, "missing required key 'address'; add the host's address or DNS "
                    f"name{f' (or {hints})' if hints else ''}"))
            platform = self._platform(doc, host_path, host_data, connection)
            hosts[host_name] = HostSpec(host_name, address, connection, tuple(member_groups),
                                        freeze(host_data.get("attributes", {})), freeze(aws),
                                        platform)
            for source in self._sources(doc, host_path, host_data, groups, member_groups):
                # Later sources override earlier ones.
                items.update(self._expand(source, host_name, site, default_timeout, platform))
        self._add_sources(doc, data, defaults, hosts)
        self._check_read_only(hosts, items.values())
        self._check_jumps(doc, hosts)
        self._check_host_references(doc, site, hosts)
        for find_problems in extensions.problem_finders():
            self.problems += find_problems(doc, data, hosts, items.values())
        waivers = parse_waivers(doc, data.get("waivers", []), self.problems)
        if self.problems:
            raise InventoryError(self.problems)
        return Plan(
            path=str(self.path), display_name=self.display_name,
            sha256=hashlib.sha256(self.path.read_bytes()).hexdigest(), drill=drill,
            hosts=hosts, items=tuple(items[key] for key in sorted(items)),
            site=freeze(site), document=freeze(data), waivers=waivers)

    def _add_sources(self, doc: Document, data: Mapping[str, Any],
                     defaults: Mapping[str, Any], hosts: dict[str, HostSpec]) -> None:
        """`source:` of each host: a named inventory host, or a host of its own made here
        (``<host>.source``); either is marked read-only."""
        for name, host_data in data["hosts"].items():
            source = host_data.get("source")
            where = ("hosts", name, "source")
            if source is None:
                continue
            if isinstance(source, str):
                if source == name or source not in hosts:
                    why = ("a host cannot be its own source" if source == name else
                           f"source '{source}' is not a host of this inventory"
                           f"{_hint(source, hosts)}")
                    self.problems.append(doc.problem(where, f"{why}; name another host or "
                                                            "write {address, connection}"))
                    continue
                source_name = source
            else:
                source_name = f"{name}.source"
                if source_name in data["hosts"]:
                    self.problems.append(doc.problem(where, (
                        f"host '{source_name}' already exists; write source: {source_name} "
                        "to use it, or rename it")))
                    continue
                connection = _connection([defaults.get("connection", {}),
                                          source.get("connection", {})], source_name)
                hosts[source_name] = HostSpec(source_name, source["address"], connection, ())
            hosts[source_name] = replace(hosts[source_name], read_only=True)
            hosts[name] = replace(hosts[name], source=source_name)

    def _check_read_only(self, hosts: Mapping[str, HostSpec], items: Iterable[PlanItem]
                         ) -> None:
        """A source server's checks must only read it: refused here, before any drill."""
        for item in items:
            if not hosts[item.host].read_only:
                continue
            # Imported here, for inventories that have a source server: not at every load.
            from pytest_drcheck.targets.readonly import is_read_only

            commands = registry.get(item.check).commands(item)
            if not all(is_read_only(command) for command in commands):
                where = item.source
                self.problems.append(Problem(where.file, where.line, where.place, (
                    f"{item.host} is a source server (read-only) and "
                    f"{item.check} '{item.subject}' runs commands that are not known to only "
                    "read it; check it from its recovery instance or leave it out")))

    def _sources(self, doc: Document, host_path: tuple[str | int, ...],
                 host_data: Mapping[str, Any], groups: Mapping[str, Any],
                 member_groups: list[str]) -> list[_Source]:
        """Precedence, lowest first: group suites, group checks, host suites, host checks."""
        sources: list[_Source] = []
        for group_name in member_groups:
            group = groups[group_name]
            for index, suite in enumerate(group.get("suites", [])):
                sources += self._suite(doc, ("groups", group_name, "suites", index), suite)
            if "checks" in group:
                sources.append(_Source(doc, ("groups", group_name, "checks"), group["checks"]))
        for index, suite in enumerate(host_data.get("suites", [])):
            sources += self._suite(doc, (*host_path, "suites", index), suite)
        if "checks" in host_data:
            sources.append(_Source(doc, (*host_path, "checks"), host_data["checks"]))
        return sources

    def _suite(self, doc: Document, where: tuple[str | int, ...], name: str) -> list[_Source]:
        if name not in self.suites:
            self.suites[name] = self._load_suite(doc, where, name)
        suite = self.suites[name]
        if suite is None:
            return []
        return [_Source(suite, ("checks",), suite.data["checks"], where,
                        suite.file in self.shipped_files)]

    def _load_suite(self, doc: Document, where: tuple[str | int, ...],
                    name: str) -> Document | None:
        for directory in self.suite_dirs:
            candidate = directory / f"{name}.yaml"
            try:
                found = candidate.is_file()
            except OSError:
                found = False  # a name the file system refuses cannot be a suite file
            if found:
                try:
                    suite = load_document(candidate)
                except InventoryError as exc:
                    self.problems += exc.problems
                    return None
                if candidate.resolve().parent == BUILTIN_SUITES.resolve():
                    self.shipped_files.add(suite.file)
                problems = validate(suite, schema.suite_schema(
                    schema.check_types_used(suite.data, ("checks",))))
                if not problems and suite.data["suite"] != name:
                    problems.append(suite.problem(("suite",), (
                        f"suite is named '{suite.data['suite']}' but its file is {name}.yaml; "
                        "make them the same")))
                self.problems += problems
                return None if problems else suite
        searched = ", ".join(str(d) for d in dict.fromkeys(self.suite_dirs))
        self.problems.append(doc.problem(
            where, f"suite '{name}' not found (looked for {name}.yaml in {searched}); fix the "
                   "name or add suite_paths:"))
        return None

    def _platform(self, doc: Document, host_path: tuple[str | int, ...],
                  host_data: Mapping[str, Any], connection: ConnectionSpec) -> str:
        """linux unless written; WinRM reaches Windows only."""
        platform = str(host_data.get("platform", "windows" if connection.type == "winrm"
                                     else "linux"))
        if connection.type == "winrm" and platform != "windows":
            self.problems.append(doc.problem((*host_path, "platform"), (
                "connection type winrm reaches Windows hosts only; write platform: windows or "
                "use ssh")))
        # Written on the host itself (defaults and groups may serve winrm and ssh hosts alike).
        written = set(host_data.get("connection", {})) & set(connection.extra)
        if connection.type != "winrm" and written:
            keys = ", ".join(sorted(written))
            self.problems.append(doc.problem((*host_path, "connection"), (
                f"{keys} apply to connection type winrm only; remove them or set type: winrm")))
        return platform

    def _expand(self, source: _Source, host: str, site: Mapping[str, Any],
                default_timeout: float, platform: str = "linux") -> dict[str, PlanItem]:
        """The source's items by key (each item's key made once: a large drill has many)."""
        items: dict[str, PlanItem] = {}
        # The host's context, made once for its entries (families only read it).
        host_context: dict[str, Any] | None = None
        for check_type, entries in sorted(source.checks.items()):
            check = registry.get(check_type)
            # place_of(entry_path), built once per list: every entry of a large drill had it.
            places = place_of((*source.path, check_type))
            wants_host_context = getattr(check, "wants_host_context", False)
            for index, entry in enumerate(entries):
                entry_path = (*source.path, check_type, index)
                params = {k: v for k, v in entry.items() if k not in ("timeout", "description")}
                if wants_host_context:
                    if host_context is None:
                        host_context = {"source": self.source_of.get(host),
                                        "sources": self.sources, "linked_by": self.linked_by,
                                        "drill_rpo_s": self.drill.rpo_seconds, "host": host,
                                        "recovered_by": self._recovered_by(host)}
                    params["host_context"] = host_context
                try:
                    subjects = check.expand(params, site)
                except ExpansionError as exc:
                    self.problems.append(self._expansion_problem(source, entry_path, exc))
                    continue
                timeout = (parse_duration(entry["timeout"]) if "timeout" in entry
                           else default_timeout)
                location = Location(source.doc.file, source.doc.line_of(entry_path),
                                    f"{places}[{index}]")
                for subject in subjects:
                    item = PlanItem(host, check_type, subject.name, freeze(subject.params),
                                    location, timeout, subject.requires, platform)
                    key = item.key
                    if key in items:
                        if entry.get("site") and items[key].source == location:
                            continue  # the site: section lists it twice: reported there
                        earlier = items[key]
                        shared = any(f"{check_type}[{subject.name}]" in other.requires
                                     for other in subjects)
                        if shared and (earlier.params, earlier.requires) == (item.params,
                                                                             item.requires):
                            # A precondition two entries share (nic[interfaces]): the very
                            # same test, run and reported once.
                            continue
                        self.problems.append(source.doc.problem(entry_path, (
                            f"{check_type} '{subject.name}' is already checked by "
                            f"{items[key].source.place}; remove one of them")))
                        continue
                    items[key] = item
        return items

    def _recovered_by(self, host: str) -> list[tuple[str, str | None]]:
        """(name, written address) of the hosts whose ``source:`` names ``host`` (failback
        dials them from it)."""
        if self._recovering is None:  # indexed once: entries of every host ask
            hosts: Mapping[str, Any] = self.doc.data["hosts"]
            self._recovering = {}
            for name, source in sorted(self.source_of.items()):
                self._recovering.setdefault(source, []).append(
                    (name, hosts[name].get("address")))
        return list(self._recovering.get(host, ()))

    def _expansion_problem(self, source: _Source, entry_path: tuple[str | int, ...],
                           exc: ExpansionError) -> Problem:
        """Where the user has to make the fix: the site: entry at fault, the entry, or (for a
        suite the plugin ships, which the user did not write) where the inventory applies it."""
        message = _with_fix(str(exc), "fix it there" if exc.site_path else "fix the entry")
        if exc.site_path:
            return self.doc.problem(("site", *exc.site_path), message)
        where = entry_path
        if exc.place_suffix:
            where = (*entry_path, exc.place_suffix.lstrip("."))
        if source.shipped and source.applied_at:
            return self.doc.problem(source.applied_at, (
                f"{message} (in the shipped suite's {place_of(where)})"))
        return source.doc.problem(where, message)

    def _check_site_sections(self, doc: Document, site: Mapping[str, Any]) -> None:
        """site: entries are checked whether or not a check uses them yet: expanding a family's
        'site: true' entry finds the mistakes inside its section (a policy cell naming an
        undefined proxy, say)."""
        if not site:
            return  # no section to check (and no family to import for it)
        for check_type in registry.names():
            check = registry.get(check_type)
            if not check.site_key or check.site_key not in site:
                continue
            if "site" not in check.entry_schema.get("properties", {}):
                continue
            try:
                subjects = check.expand({"site": True}, site)
            except ExpansionError as exc:
                if exc.site_path:
                    self.problems.append(doc.problem(("site", *exc.site_path),
                                                     _with_fix(str(exc), "fix it there")))
                continue
            names = [subject.name for subject in subjects]
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                self.problems.append(doc.problem(("site", check.site_key), (
                    f"{check_type} '{twice[0]}' is listed twice in site.{check.site_key}; "
                    "remove one of them")))

    def _check_host_references(self, doc: Document, site: Mapping[str, Any],
                               hosts: Mapping[str, HostSpec]) -> None:
        if not site:
            return
        for check_type in registry.names():
            check = registry.get(check_type)
            if not check.site_key or check.site_key not in site:
                continue
            for path, name in check.site_host_references(site[check.site_key]):
                if name not in hosts:
                    self.problems.append(doc.problem(
                        ("site", check.site_key, *path),
                        f"host '{name}' is not a host of this inventory{_hint(name, hosts)}; "
                        "add it under hosts: (checks run through its connection)"))

    def _check_jumps(self, doc: Document, hosts: dict[str, HostSpec]) -> None:
        cycles: set[frozenset[str]] = set()
        for name, host in hosts.items():
            jump = host.connection.jump
            where = ("hosts", name, "connection", "jump")
            if jump is None:
                continue
            if jump == name:
                self.problems.append(doc.problem(where, (
                    "a host cannot be its own jump host; remove jump here or set jump: null")))
                continue
            if jump in hosts:
                cycle = _jump_cycle(name, hosts)
                if cycle and frozenset(cycle) not in cycles:
                    cycles.add(frozenset(cycle))
                    self.problems.append(doc.problem(where, (
                        f"jump hosts form a cycle: {' -> '.join([*cycle, cycle[0]])}; one of "
                        "them must be reached directly (jump: null)")))
                continue
            if "." not in jump and ":" not in jump:
                self.problems.append(doc.problem(where, (
                    f"jump '{jump}' is neither a host of this inventory{_hint(jump, hosts)} "
                    "nor an address; add the host or write user@bastion.example.com:22")))


def validate(doc: Document, document_schema: Mapping[str, Any]) -> list[Problem]:
    """The problems jsonschema finds (imported on first use: a plugin load without an
    inventory never needs it)."""
    from pytest_drcheck.inventory.validation import validate as find_problems

    return find_problems(doc, document_schema)


def _with_fix(message: str, fix: str) -> str:
    """Every line says what to do: a check family's message (ours, or a plugin's) that only
    states the problem gets a generic fix."""
    return message if "; " in message or "did you mean" in message else f"{message}; {fix}"


def _jump_cycle(start: str, hosts: Mapping[str, HostSpec]) -> list[str]:
    """The hosts of the jump cycle ``start`` is on, in order from ``start``; [] if none."""
    chain = [start]
    current = hosts[start].connection.jump
    while current is not None and current in hosts:
        if current == start:
            return chain
        if current in chain:
            return []  # start leads into a cycle it is not part of (reported from the cycle)
        chain.append(current)
        current = hosts[current].connection.jump
    return []


def _hint(word: str, names: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(word, list(names), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def load_plan(path: str | Path, suite_dirs: Sequence[str | Path] = (),
              display_name: str | None = None) -> Plan:
    """Load an inventory. Raises InventoryError listing every problem found, one per line."""
    path = Path(path)
    with collector_paused():
        return _Loader(path, [Path(d) for d in suite_dirs], display_name or str(path)).load()


def with_host_address(host: HostSpec, address: str) -> HostSpec:
    """A copy of a host with a discovered address (used by discovery layers)."""
    return replace(host, address=address)
