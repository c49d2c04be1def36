"""A share of the machine's CPU for a benchmark's processes: a Linux cgroup with a CPU quota.

    with CpuLimit("instance-a", cpus=0.5) as limit:
        limit.add(process.pid)  # the process and every process it has started, and any it starts later

Used by tests/benchmarks/instances.py to give each service instance the
CPU of a small machine of its own on one shared box. Needs root and the
cgroup v1 `cpu` controller mounted at /sys/fs/cgroup/cpu (what this
project's benchmark machines have); anything else is refused with a clear
error rather than measured without a limit. The kernel enforces the quota
per period (CFS bandwidth control: `cpu.cfs_quota_us` of every
`cpu.cfs_period_us`), so a process over it waits for the next period.
"""

from __future__ import annotations

import uuid
from pathlib import Path

CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000


class CpuLimitUnavailable(RuntimeError):
    pass


class CpuLimit:
    def __init__(self, name: str, cpus: float, root: Path = CGROUP_V1_CPU) -> None:
        if cpus <= 0:
            raise ValueError("cpus must be more than 0")
        self.cpus = cpus
        self.root = root
        self.path = root / f"switchboard-bench-{name}-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> "CpuLimit":
        if not (self.root / "cpu.cfs_quota_us").exists():
            raise CpuLimitUnavailable(
                f"no cgroup v1 cpu controller at {self.root}: CPU limits per instance need it (and root)")
        try:
            self.path.mkdir()
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(round(self.cpus * PERIOD_US)))
        except OSError as error:
            raise CpuLimitUnavailable(f"cannot make a cgroup at {self.path}: {error}") from error
        return self

    def add(self, pid: int) -> int:
        """Move PID and its descendants into the limit; return how many processes moved."""
        moved = 0
        for each in [pid, *_descendants(pid)]:
            try:
                (self.path / "cgroup.procs").write_text(str(each))
                moved += 1
            except ProcessLookupError:
                continue  # it ended in between
        return moved

    def throttled_seconds(self) -> float:
        """How long the kernel has held the limit's processes back so far."""
        for line in (self.path / "cpu.stat").read_text().splitlines():
            name, value = line.split()
            if name == "throttled_time":
                return int(value) / 1e9
        return 0.0

    def __exit__(self, *exc) -> None:
        # Whatever is still running goes back to the parent group; an empty group can be removed.
        for pid in (self.path / "cgroup.procs").read_text().split():
            try:
                (self.root / "cgroup.procs").write_text(pid)
            except ProcessLookupError:
                continue
        self.path.rmdir()


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found
