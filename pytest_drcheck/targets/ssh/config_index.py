"""One ssh_config file, indexed by the host names its Host lines spell out literally.

paramiko's lookup walks every block of the file for every host and calls ``getpass.getuser``
per block: with a Host block per instance (how a DR site maps names to recovery addresses) a
lookup costs ~0.03 ms per block, so a 1,000-host drill with a 1,000-block file spent ~30 s of
CPU in lookups. A lookup here reads only the blocks that can apply to the host: the lines
before the first block, every block with a pattern (``*``, ``?``, ``[``, ``!``) or a
``Match``, and the blocks whose Host line names the host itself, in file order, so that
paramiko's first-value-wins semantics are unchanged. Files that canonicalize host names (the
lookup runs again under another name) are always read whole.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import paramiko

# Below this many blocks the whole file is cheap enough to read for every host.
INDEX_FROM_BLOCKS = 32
_PATTERN_CHARACTERS = frozenset("*?[!")


class IndexedConfig:
    def __init__(self, text: str) -> None:
        self.whole = paramiko.SSHConfig.from_text(text)  # also validates the whole file
        self.blocks: list[str] = [""]  # [0]: the lines before the first Host or Match
        self.always: list[int] = [0]
        self.literal: dict[str, list[int]] = {}
        self.indexed = True
        for line in text.splitlines(keepends=True):
            stripped = line.strip()
            match = re.match(paramiko.SSHConfig.SETTINGS_REGEX, stripped) if (
                stripped and not stripped.startswith("#")) else None
            key = match.group(1).lower() if match else ""
            if key == "canonicalizehostname":
                self.indexed = False
            if key not in ("host", "match"):
                self.blocks[-1] += line
                continue
            index = len(self.blocks)
            self.blocks.append(line)
            assert match is not None
            names = shlex.split(match.group(2)) if key == "host" else []
            if not names or any(_PATTERN_CHARACTERS & set(name) for name in names):
                self.always.append(index)
            else:
                for name in dict.fromkeys(names):
                    self.literal.setdefault(name, []).append(index)
        if len(self.blocks) < INDEX_FROM_BLOCKS:
            self.indexed = False

    def blocks_for(self, host: str) -> list[int]:
        """The blocks a lookup of ``host`` reads, in file order."""
        if not self.indexed:
            return list(range(len(self.blocks)))
        return sorted(self.always + self.literal.get(host, []))

    def lookup(self, host: str) -> dict[str, Any]:
        if not self.indexed:
            return dict(self.whole.lookup(host))
        text = "".join(self.blocks[i] for i in self.blocks_for(host))
        return dict(paramiko.SSHConfig.from_text(text).lookup(host))
