"""What a run writes while it goes: its JSON (atomically) and its progress."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from harness.timing import Timing


def _json_default(obj):
    if isinstance(obj, (torch.dtype, torch.device, Path)):
        return str(obj)
    if isinstance(obj, Timing):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def write_json(path: str | Path, data) -> Path:
    """Write ``data`` as indented JSON, atomically: a run killed mid-write (a stage timeout)
    leaves the previous complete file, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=_json_default, allow_nan=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


class Progress:
    """A progress bar when tqdm is installed and stderr is a terminal, else one stderr line
    per case (a bar redrawn into a log file is unreadable).

    Use :meth:`write` for anything printed while it is open, so tables and the bar do not
    overwrite each other.
    """

    def __init__(self, total: int, desc: str = "", enabled: bool = True):
        self.total, self.done, self.desc, self.enabled = total, 0, desc, enabled
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None and sys.stderr.isatty():
                self._bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False)
        self._t0 = time.perf_counter()

    def update(self, label: str, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.set_postfix_str(label, refresh=False)
            self._bar.update(n)
        elif self.enabled:
            elapsed = time.perf_counter() - self._t0
            print(
                f"[{self.done}/{self.total} {elapsed:6.1f}s] {self.desc} {label}",
                file=sys.stderr,
                flush=True,
            )

    def write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
