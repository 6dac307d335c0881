"""Where instances' cgroups are made, and how they are read: cgroup v1 and v2.

This project's machine has cgroup v1; most laptops and CI runners have v2 with systemd's
delegation. The layouts are tested on synthetic hierarchies (plain directories and files),
and the v2 freezer for real in a private mount of cgroup2 (root only).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lambdasim._sandbox import _cgroup
from lambdasim._sandbox._cgroup import CgroupPlace, Hierarchy, InstanceCgroup, find_hierarchies
from tests.conftest import REQUIRE_SANDBOX, Code

V2_STAT = "anon 3145728\nfile 8192\nkernel 1000\nanon_thp 0\ninactive_anon 4096\nshmem 1048576\nshmem_thp 0\n"
V1_STAT = ("cache 0\nrss 1\nshmem 2\ntotal_cache 5\ntotal_rss 2097152\ntotal_rss_huge 0\n"
           "total_shmem 524288\ntotal_mapped_file 0\n")


def _v2_tree(root: Path, controllers: str = "cpu memory pids") -> tuple[Path, Path]:
    """A v2 hierarchy as systemd delegates it: (mountinfo, /proc/self/cgroup) for a process in
    user@1000.service/app.slice/x.scope."""
    service = root / "user.slice" / "user-1000.slice" / "user@1000.service"
    own = service / "app.slice" / "x.scope"
    own.mkdir(parents=True)
    for d in (root, root / "user.slice", root / "user.slice" / "user-1000.slice", service, service / "app.slice", own):
        (d / "cgroup.controllers").write_text(controllers + "\n")
        (d / "cgroup.procs").write_text("")
        (d / "cgroup.subtree_control").write_text("")
    mountinfo = root.parent / "mountinfo"
    mountinfo.write_text(f"30 23 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n")
    proc = root.parent / "cgroup"
    proc.write_text("0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n")
    return mountinfo, proc


def test_v2_candidates_run_from_the_own_group_upwards(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    mountinfo, proc = _v2_tree(root)
    found = find_hierarchies(mountinfo=str(mountinfo), proc_cgroup=str(proc))
    bases = [c[0].base for c in found]
    assert bases[0] == str(root / "user.slice/user-1000.slice/user@1000.service/app.slice/x.scope")
    assert bases[-1] == str(root) and len(bases) == 6
    assert all(c[0].version == 2 and c[0].controllers == {"pids", "memory", "freezer"} for c in found)


def test_v2_without_controllers_can_still_freeze(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    mountinfo, proc = _v2_tree(root, controllers="cpu")
    found = find_hierarchies(mountinfo=str(mountinfo), proc_cgroup=str(proc))
    assert found and all(c[0].controllers == {"freezer"} for c in found)


def test_v1_takes_each_controller_from_its_own_hierarchy(tmp_path: Path) -> None:
    lines = []
    for i, name in enumerate(("pids", "memory", "freezer", "cpu")):
        (tmp_path / name / "sim").mkdir(parents=True)
        lines.append(f"{40 + i} 23 0:{30 + i} / {tmp_path / name} rw - cgroup cgroup rw,{name}\n")
    # memory's hierarchy is mounted from inside a group (a container's view of it).
    (tmp_path / "memory" / "sim").rename(tmp_path / "memory" / "inner")
    lines[1] = f"41 23 0:31 /outer {tmp_path / 'memory'} rw - cgroup cgroup rw,memory\n"
    (tmp_path / "mountinfo").write_text("".join(lines))
    (tmp_path / "cgroup").write_text("4:freezer:/sim\n3:memory:/outer/inner\n2:pids:/sim\n1:cpu:/sim\n0::/\n")
    (found,) = find_hierarchies(mountinfo=str(tmp_path / "mountinfo"), proc_cgroup=str(tmp_path / "cgroup"))
    assert {h.base: set(h.controllers) for h in found} == {
        str(tmp_path / "pids" / "sim"): {"pids"}, str(tmp_path / "memory" / "inner"): {"memory"},
        str(tmp_path / "freezer" / "sim"): {"freezer"}}


def test_a_v2_place_enables_its_controllers_and_puts_the_function_below_the_keeper(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel makes a group's files; on plain directories the writes make them.
    monkeypatch.setattr(_cgroup, "write_file", lambda path, text: Path(path).write_text(text))
    base = tmp_path / "service"
    base.mkdir()
    (base / "cgroup.subtree_control").write_text("")
    place = CgroupPlace([Hierarchy(2, str(base), frozenset({"pids", "memory", "freezer"}))], owner=4242)
    assert place.limits == "cgroup v2"
    (placedir,) = [p for p in base.iterdir() if p.is_dir()]
    assert placedir.name == f"lambdasim-4242-{os.getpid()}"
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (placedir / "cgroup.subtree_control").read_text() == "+memory +pids"
    group = place.create()
    assert group.paths["pids"] == group.paths["memory"]
    assert group.paths["freezer"] == os.path.join(group.paths["pids"], "fn")
    assert group.limits and os.path.isdir(group.paths["freezer"])
    (Path(group.paths["memory"]) / "memory.stat").write_text(V2_STAT)
    (Path(group.paths["memory"]) / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n")
    (Path(group.paths["pids"]) / "pids.current").write_text("7\n")
    assert group.memory() == 3145728 + 1048576, "anon + shmem, not inactive_anon or shmem_thp"
    assert group.oom_kills() == 1 and group.tasks() == 7
    for p in Path(group.paths["memory"]).rglob("*"):
        if p.is_file():
            p.unlink()
    assert group.remove() and not os.path.exists(group.paths["memory"])


def test_v1_memory_and_oom_are_the_hierarchical_totals(tmp_path: Path) -> None:
    (tmp_path / "memory.stat").write_text(V1_STAT)
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 4\n")
    group = InstanceCgroup(1, {"memory": str(tmp_path), "pids": str(tmp_path)})
    assert group.memory() == 2097152 + 524288
    assert group.oom_kills() == 4


def test_a_place_without_limits_says_so(tmp_path: Path) -> None:
    place = CgroupPlace([Hierarchy(1, str(tmp_path), frozenset({"freezer"}))], owner=1)
    assert place.limits == "rlimit+procfs"
    assert not place.create().limits
    place.close()
    assert list(tmp_path.iterdir()) == []


_V2_SCRIPT = """
import json, os, sys, time
import lambdasim
from lambdasim import Simulator
with Simulator(sandbox="namespace") as sim:
    fn = sim.deploy("app.handler", code_dir=sys.argv[1])
    first = fn.invoke({}).payload
    time.sleep(0.3)
    second = fn.invoke({}).payload
    (inst,) = fn.instances
    groups = [line[3:].strip() for line in open(f"/proc/{inst._live.sbx.pid}/cgroup") if line.startswith("0::")]
    out = {"limits": sim._sandbox.limits, "first": first, "second": second, "keeper_cgroup": groups}
    freeze_files = [os.path.join(d, "cgroup.freeze") for d, _, f in os.walk("/sys/fs/cgroup") if "lambdasim-" in d]
    out["frozen_groups"] = sorted(d for d in freeze_files if open(d).read().strip() == "1")
print(json.dumps(out))
lambdasim.shutdown()  # the zygote, kept for a later simulator of the process, removes its place as it ends
left = [d for d, _, _ in os.walk("/sys/fs/cgroup") if "lambdasim-" in d]
print(json.dumps(left))
"""

TICKER = """
import os, threading, time
ticks = 0
def tick():
    global ticks
    while True:
        time.sleep(0.002)
        ticks += 1
threading.Thread(target=tick, daemon=True).start()
def handler(event, context):
    return {"ticks": ticks, "pid": os.getpid()}
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare(1)")
def test_cgroup_v2_freezes_for_real(code: Code) -> None:
    """This machine has cgroup v1; in a private mount namespace cgroup2 is mounted at
    /sys/fs/cgroup (without controllers: they are v1's here), so the sandbox finds v2, freezes
    with cgroup.freeze and falls back to rlimits and procfs for the limits."""
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t cgroup2 none /sys/fs/cgroup"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        if REQUIRE_SANDBOX:
            pytest.fail(f"cannot mount cgroup2 in a private mount namespace: {probe.stderr}")
        pytest.skip(f"cannot mount cgroup2 here: {probe.stderr.strip()}")
    script = textwrap.dedent(_V2_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         'mount -t cgroup2 none /sys/fs/cgroup && exec "$0" -c "$1" "$2"', sys.executable, script, str(code(TICKER))],
        capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr

    out_line, left_line = proc.stdout.strip().splitlines()[-2:]
    out = json.loads(out_line)
    assert out["limits"] == "rlimit+procfs"
    assert out["second"]["ticks"] - out["first"]["ticks"] < 20, "the ticker did not run for the 0.3 s between"
    (keeper_group,) = out["keeper_cgroup"]
    assert not keeper_group.endswith("/fn"), "the keeper is not in the group that is frozen"
    assert len(out["frozen_groups"]) == 1 and out["frozen_groups"][0].endswith("/fn/cgroup.freeze")
    assert json.loads(left_line) == [], "every group is removed with the simulator"
