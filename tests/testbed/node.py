"""A real Kubernetes node for the test bed: kubelet + containerd + CNI bridge + kube-router.

`start_cluster(workdir)` starts the control plane of tests/testbed/k8s.py bound to the node's
bridge, then the node, and returns when the Node is Ready and pods can be scheduled:

* **containerd** (v2, built by testbed/k8s/build.sh) with Debian's runc, CRI config
  ``restrict_oom_score_adj`` (root here lacks CAP_SYS_RESOURCE) and the cgroupfs driver; the
  sandbox image and a busybox image are made locally (tests/testbed/images.py) and imported
  with ``ctr``: nothing is pulled (pods use ``imagePullPolicy: Never``).
* **kubelet** with ``failCgroupV1: false`` (this host is cgroup v1), webhook authn/authz, a
  CA-signed serving certificate for the node IP, a private cgroup root.
* **CNI**: Debian's bridge + host-local plugins on the test bed's own bridge.
* **kube-router** in firewall-only mode, so NetworkPolicies are enforced.
* **kube-scheduler** runs with the control plane, so Deployments and Jobs schedule for real.

Everything is private to the test bed: containerd and the kubelet run in their own mount
namespace (held by a ``sleep`` process), in which ``/run``, ``/var/lib`` and ``/var/log`` are the
test bed's own directories and ``/`` is made shared (for mountPropagation) without touching the
host's mounts; the bridge, cgroup root, ports and iptables chains are the test bed's. Inside that
namespace the kubelet and containerd keep their standard paths (``/var/lib/containerd``,
``/var/log/pods``): a collector finds them where it would on a real node. From outside, the node's
filesystem is ``/proc/HOLDER/root`` (:attr:`RealNode.host_root`).

Only one such node runs per machine at a time (kube-router owns the machine's filter table): a
second start waits for the first, saying so. Teardown stops everything by PID, removes the
bridge, cgroups, iptables chains and ipsets the node added, and puts ``ip_forward`` back; a start
after a crash first tears down what the crashed run left (its state file names it).

Run ``python -m tests.testbed.node DIR`` from the repository root to start one by hand.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.testbed import images
from tests.testbed.k8s import (
    ControlPlane,
    ControlPlaneError,
    NodeSpec,
    _tail,
    _write_kubeconfig,
    build_binaries,
    run_by_hand,
    start_control_plane,
)

NODE_NAME = "ir-node-1"
BRIDGE = "irtbk0"
NODE_IP = "10.213.0.1"
POD_CIDR = "10.213.0.0/24"
CLUSTER_CIDR = "10.213.0.0/16"
SERVICE_RANGE = "10.213.192.0/24"
SERVICE_IP = "10.213.192.1"  # the `kubernetes` Service
CGROUP_ROOT = "ir-testbed-node"
CGROUP_CONTROLLERS = (
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "systemd",
)
NAT_CHAIN = "IR-TESTBED-SVC"
STATE_DIR = Path("/run/ir-testbed-node")
LOCK_FILE = Path("/run/ir-testbed-node.lock")
BUSYBOX_IMAGE = images.BUSYBOX_IMAGE
#: RuntimeClass (and containerd handler) of pods whose runtime has no CRIU to checkpoint with.
NO_CRIU = "no-criu"
NO_CRIU_HANDLER = "nocriu"
PAUSE_IMAGE = images.PAUSE_IMAGE


class NodeError(ControlPlaneError):
    """The node could not be started; the message says why (with the log tail)."""


@dataclass
class RealNode:
    """A running node (and the control plane it serves). Stop it with :meth:`stop`."""

    cp: ControlPlane
    workdir: Path
    bin_dir: Path
    holder: subprocess.Popen[bytes] | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    lock_fd: int | None = None
    ip_forward: str | None = None
    name: str = NODE_NAME

    @property
    def host_root(self) -> str:
        """The node's root filesystem as seen from outside its mount namespace."""
        assert self.holder is not None
        return f"/proc/{self.holder.pid}/root"

    @property
    def containerd_socket(self) -> str:
        return f"{self.host_root}/run/containerd/containerd.sock"

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``ctr`` against the node's containerd (namespace k8s.io)."""
        return subprocess.run(
            [str(self.bin_dir / "ctr"), "-a", self.containerd_socket, "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def check_alive(self) -> None:
        self.cp.check_alive()
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise NodeError(
                    f"{name} exited with code {proc.returncode}; log {self.logs[name]}:\n"
                    + _tail(self.logs[name])
                )

    def stop(self) -> None:
        """Tear the node down, then the control plane; safe to call twice."""
        atexit.unregister(self.stop)
        with contextlib.suppress(Exception):  # teardown goes on whatever the apiserver says
            _delete_all_pods(self.cp)
        for name in ("kube-router", "kubelet", "containerd"):
            proc = self.processes.pop(name, None)
            if proc is not None:
                _terminate(proc)
        _teardown_host(_read_state())
        self.holder = None
        self.cp.stop()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def __enter__(self) -> RealNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_cluster(workdir: Path, *, startup_timeout: float = 240.0) -> RealNode:
    """Build (if needed) and start the control plane and the node under `workdir`.

    Returns once the Node is Ready, the `default` ServiceAccount exists and kube-router enforces
    policies. Raises NodeError/ControlPlaneError (with the failing log's tail); nothing is left
    running then."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    env_bin = os.environ.get("IR_TESTBED_K8S_BIN")
    bin_dir = Path(env_bin) if env_bin else build_binaries()
    for tool in ("runc", "ipset", "iptables", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            raise NodeError(f"{tool} is not installed (scripts/setup installs it)")
    if not Path("/usr/lib/cni/bridge").exists():
        raise NodeError("the CNI plugins are missing (Debian package containernetworking-plugins)")

    built = time.monotonic()
    lock_fd = _take_lock()
    locked = time.monotonic()
    _teardown_host(_read_state())  # what a crashed run left
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"pids": {}, "ip_forward": _read("/proc/sys/net/ipv4/ip_forward")}
    _write_state(state)
    _make_bridge()
    state["bridge"] = BRIDGE
    _write_state(state)

    spec = NodeSpec(NODE_NAME, NODE_IP, CLUSTER_CIDR, SERVICE_RANGE)
    try:
        cp = start_control_plane(workdir / "cp", bin_dir=bin_dir, node=spec)
    except BaseException:
        _teardown_host(_read_state())
        os.close(lock_fd)
        raise
    # the control plane's processes too: a run killed with SIGKILL leaves them (own sessions)
    state["pids"].update({name: _pid_record(p.pid) for name, p in cp.processes.items()})
    _write_state(state)
    node = RealNode(cp=cp, workdir=workdir, bin_dir=bin_dir, lock_fd=lock_fd)
    node.timings["build_or_cache_s"] = built - started
    node.timings["lock_wait_s"] = locked - built
    node.timings["control_plane_s"] = time.monotonic() - locked
    atexit.register(node.stop)
    try:
        _start_node(node, state, time.monotonic() + startup_timeout)
    except BaseException:
        node.stop()
        raise
    node.timings["total_s"] = time.monotonic() - started
    return node


# -- start -------------------------------------------------------------------------------------


def _start_node(node: RealNode, state: dict[str, Any], deadline: float) -> None:
    w = node.workdir
    for d in ("run", "varlib", "varlog", "cni-conf", "cni-ipam", "logs", "images"):
        (w / d).mkdir(exist_ok=True)
    _cgroups()
    state["cgroups"] = True
    _service_nat(node.cp.api_port)
    state["nat"] = True
    _write_state(state)

    # The mount namespace: private copy of the host's mounts, with the node's own /run,
    # /var/lib and /var/log; / made shared inside it only (mountPropagation needs it).
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sleep", "infinity"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    node.holder = holder
    state["pids"]["holder"] = _pid_record(holder.pid)
    _write_state(state)
    _wait_for(lambda: _mnt_ns(holder.pid) != _mnt_ns(os.getpid()), deadline, "mount namespace")
    Path("/run/xtables.lock").touch()
    setup = (
        f"mount --bind /run/xtables.lock {w}/xtables.lock; "
        f"mount -t tmpfs -o mode=755 ir-testbed-run /run; "
        "mkdir -p /run/containerd /run/netns /run/lock; touch /run/xtables.lock; "
        f"mount --bind {w}/xtables.lock /run/xtables.lock; "
        f"mount --bind {w}/varlib /var/lib; mount --bind {w}/varlog /var/log; "
        "mount --make-rshared /"
    )
    (w / "xtables.lock").touch()
    subprocess.run(
        [
            "nsenter",
            "-t",
            str(holder.pid),
            "-m",
            "env",
            f"LIBMOUNT_UTAB={w}/utab",
            "sh",
            "-ec",
            setup,
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )

    images_dir = w / "images"
    archives = images.build_node_images(images_dir, node.bin_dir / "pause")
    _write_configs(node)

    t = time.monotonic()
    _spawn(
        node,
        state,
        "containerd",
        [
            "nsenter",
            "-t",
            str(holder.pid),
            "-m",
            "--",
            str(node.bin_dir / "containerd"),
            "--config",
            str(w / "containerd.toml"),
        ],
        env={"PATH": f"{node.bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"},
    )
    _wait_for(lambda: os.path.exists(node.containerd_socket), deadline, "containerd", node)
    for path in archives.values():
        node.ctr("images", "import", str(path))
    node.timings["containerd_s"] = time.monotonic() - t

    t = time.monotonic()
    _spawn(
        node,
        state,
        "kubelet",
        [
            "nsenter",
            "-t",
            str(holder.pid),
            "-m",
            "--",
            str(node.bin_dir / "kubelet"),
            f"--config={w / 'kubelet.yaml'}",
            f"--kubeconfig={w / 'kubelet.kubeconfig'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--v=1",
        ],
    )
    _wait_for(lambda: _node_ready(node.cp), deadline, "the Node to be Ready", node)
    node.timings["kubelet_to_ready_s"] = time.monotonic() - t

    # kube-router rewrites the filter table from a snapshot at each sync: everything of ours is in
    # place before it starts (the NAT chain is in the nat table, which it leaves alone).
    _spawn(
        node,
        state,
        "kube-router",
        [
            str(node.bin_dir / "kube-router"),
            "--run-firewall=true",
            "--run-router=false",
            "--run-service-proxy=false",
            "--enable-ipv6=false",
            f"--kubeconfig={node.cp.kubeconfig}",
            f"--hostname-override={NODE_NAME}",
            "--health-port=0",
            "--metrics-port=0",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            "--iptables-sync-period=10s",
        ],
    )
    _wait_for(lambda: _kube_router_ready(), deadline, "kube-router's firewall chains", node)
    node.cp.api(
        "POST",
        "/apis/node.k8s.io/v1/runtimeclasses",
        {
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": {"name": NO_CRIU},
            "handler": NO_CRIU_HANDLER,
        },
    )


def _write_configs(node: RealNode) -> None:
    w, pki = node.workdir, node.cp.workdir / "pki"
    (w / "containerd.toml").write_text(
        f"""version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"
[plugins."io.containerd.cri.v1.runtime"]
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.{NO_CRIU_HANDLER}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.{NO_CRIU_HANDLER}.options]
        SystemdCgroup = false
        BinaryName = "{w / "runc-without-criu"}"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "{w / "cni-conf"}"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""
    )
    # A second runtime handler whose runc cannot find CRIU: pods of RuntimeClass NO_CRIU meet the
    # "runtime without checkpoint support" refusal (the default handler meets CRIU failing).
    wrapper = w / "runc-without-criu"
    runc = shutil.which("runc") or "/usr/sbin/runc"
    wrapper.write_text(f'#!/bin/sh\nPATH=/nonexistent exec {runc} "$@"\n')
    wrapper.chmod(0o755)
    (w / "cni-conf" / "10-ir-testbed.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "0.4.0",
                "name": "ir-testbed",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": BRIDGE,
                        "isGateway": True,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                            "routes": [{"dst": CLUSTER_CIDR}],
                            "dataDir": str(w / "cni-ipam"),
                        },
                    },
                ],
            },
            indent=1,
        )
    )
    (w / "resolv.conf").write_text(f"nameserver {NODE_IP}\nsearch cluster.local\n")
    (w / "kubelet.yaml").write_text(
        json.dumps(
            {
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                "address": NODE_IP,
                "port": _free_port(),
                "readOnlyPort": 0,
                "healthzPort": 0,
                "tlsCertFile": str(pki / "kubelet-serving.crt"),
                "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
                "authentication": {
                    "anonymous": {"enabled": False},
                    "webhook": {"enabled": True},
                    "x509": {"clientCAFile": str(pki / "ca.crt")},
                },
                "authorization": {"mode": "Webhook"},
                "cgroupDriver": "cgroupfs",
                "cgroupRoot": f"/{CGROUP_ROOT}",
                "cgroupsPerQOS": True,
                "failCgroupV1": False,
                "failSwapOn": False,
                "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
                "resolvConf": str(w / "resolv.conf"),
                "evictionHard": {
                    "memory.available": "100Mi",
                    "nodefs.available": "1%",
                    "imagefs.available": "1%",
                    "nodefs.inodesFree": "1%",
                },
                "imageGCHighThresholdPercent": 100,
                "imageGCLowThresholdPercent": 99,
                "maxPods": 60,
                "serializeImagePulls": False,
                "registerNode": True,
            },
            indent=1,
        )
    )
    _write_kubeconfig(
        w / "kubelet.kubeconfig",
        node.cp.server,
        node.cp.ca_file,
        f"system:node:{NODE_NAME}",
        node.cp.tokens[f"system:node:{NODE_NAME}"],
    )


def _spawn(
    node: RealNode,
    state: dict[str, Any],
    name: str,
    argv: list[str],
    env: dict[str, str] | None = None,
) -> None:
    log = node.workdir / "logs" / f"{name}.log"
    node.logs[name] = log
    with open(log, "ab") as out:
        out.write(f"\n### {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=node.workdir,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    node.processes[name] = proc
    state["pids"][name] = _pid_record(proc.pid)
    _write_state(state)


def _wait_for(check: Any, deadline: float, what: str, node: RealNode | None = None) -> None:
    while True:
        if node is not None:
            node.check_alive()
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            logs = ""
            if node is not None:
                logs = "".join(f"\n--- {p}:\n{_tail(p, 15)}" for p in node.logs.values())
            raise NodeError(f"timed out waiting for {what}{logs}")
        time.sleep(0.1)


def _node_ready(cp: ControlPlane) -> bool:
    try:
        doc = cp.api("GET", f"/api/v1/nodes/{NODE_NAME}")
    except urllib.error.HTTPError:
        return False
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in doc.get("status", {}).get("conditions", [])
    )


def _kube_router_ready() -> bool:
    out = subprocess.run(
        ["iptables-save", "-t", "filter"], capture_output=True, text=True, check=False
    ).stdout
    return ":KUBE-ROUTER-FORWARD" in out or ":KUBE-NWPLCY-DEFAULT" in out


def _delete_all_pods(cp: ControlPlane) -> None:
    """Delete every pod so the kubelet stops sandboxes itself (CNI DEL); bounded wait."""
    namespaces = [n["metadata"]["name"] for n in cp.api("GET", "/api/v1/namespaces")["items"]]
    for ns in namespaces:
        for kind in (
            "/apis/apps/v1/namespaces/{}/deployments",
            "/apis/batch/v1/namespaces/{}/jobs",
        ):
            with contextlib.suppress(Exception):
                cp.api("DELETE", kind.format(ns) + "?propagationPolicy=Background")
        with contextlib.suppress(Exception):
            cp.api("DELETE", f"/api/v1/namespaces/{ns}/pods?gracePeriodSeconds=1")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not cp.api("GET", "/api/v1/pods")["items"]:
            return
        time.sleep(0.3)


# -- host state: bridge, cgroups, NAT, lock, teardown -------------------------------------------


def _take_lock() -> int:
    fd = os.open(LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    waited = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if int(time.monotonic() - waited) % 15 == 0:
                print(
                    f"test bed: waiting for the other test bed node on this machine to stop "
                    f"({time.monotonic() - waited:.0f} s; lock {LOCK_FILE})",
                    file=sys.stderr,
                    flush=True,
                )
            time.sleep(1)


def _make_bridge() -> None:
    if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode != 0:
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE], check=True)
    subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)


def _cgroups() -> None:
    base = Path("/sys/fs/cgroup")
    for c in CGROUP_CONTROLLERS:
        if (base / c).is_dir():
            (base / c / CGROUP_ROOT).mkdir(exist_ok=True)
    cpuset = base / "cpuset"
    if cpuset.is_dir():
        for f in ("cpuset.cpus", "cpuset.mems"):
            (cpuset / CGROUP_ROOT / f).write_text((cpuset / f).read_text())


def _service_nat(api_port: int) -> None:
    """Pods reach the `kubernetes` Service (no kube-proxy runs): DNAT to the apiserver."""
    ipt = ["iptables", "-w", "-t", "nat"]
    subprocess.run([*ipt, "-N", NAT_CHAIN], capture_output=True)
    subprocess.run([*ipt, "-F", NAT_CHAIN], check=True)
    subprocess.run(
        [
            *ipt,
            "-A",
            NAT_CHAIN,
            "-d",
            SERVICE_IP,
            "-p",
            "tcp",
            "--dport",
            "443",
            "-j",
            "DNAT",
            "--to-destination",
            f"{NODE_IP}:{api_port}",
        ],
        check=True,
    )
    for hook in ("PREROUTING", "OUTPUT"):
        rule = [hook, "-d", SERVICE_IP, "-j", NAT_CHAIN]
        if subprocess.run([*ipt, "-C", *rule], capture_output=True).returncode != 0:
            subprocess.run([*ipt, "-A", *rule], check=True)


def _teardown_host(state: dict[str, Any] | None) -> None:
    """Undo what a node run did to the host, from its state file; safe on a partial state."""
    if not state:
        return
    pids = state.get("pids", {})
    for name in ("kube-router", "kubelet", "containerd"):
        _kill_recorded(pids.get(name))
    holder = pids.get("holder")
    holder_ns = _mnt_ns(holder["pid"]) if holder and _same_process(holder) else None
    if holder_ns and holder_ns != _mnt_ns(os.getpid()):
        # shims and containers of this node: every process left in its mount namespace
        for p in _all_pids():
            if p != holder["pid"] and _mnt_ns(p) == holder_ns:
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
    for procs in Path("/sys/fs/cgroup/pids", CGROUP_ROOT).rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            for line in procs.read_text().split():
                os.kill(int(line), signal.SIGKILL)
    _kill_recorded(holder)  # its mounts (rootfs overlays, netns, tmpfs) go with it
    for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
        _kill_recorded(pids.get(name))
    time.sleep(0.5)
    for c in CGROUP_CONTROLLERS:
        root = Path("/sys/fs/cgroup", c, CGROUP_ROOT)
        if root.is_dir():
            for d in sorted(
                (p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
            ):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
    _iptables_cleanup()
    if state.get("ip_forward") is not None:
        with contextlib.suppress(OSError):
            Path("/proc/sys/net/ipv4/ip_forward").write_text(state["ip_forward"])
    with contextlib.suppress(OSError):
        (STATE_DIR / "state.json").unlink()


def _iptables_cleanup() -> None:
    """Remove the chains the kubelet (KUBE-FIREWALL, -CANARY, -HINT) and kube-router's firewall
    (KUBE-ROUTER-*, KUBE-POD-FW-*, KUBE-NWPLCY-*, KUBE-SRC-/DST-*) added, the test bed's NAT
    chain, and kube-router's ipsets. Never `kube-router --cleanup-config` (it flushes every IPVS
    table of the machine). Valid because one test bed node runs per machine (the lock) and no
    other kubelet or kube-router runs on a test machine."""
    for ipt in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            dump = subprocess.run(
                [f"{ipt}-save", "-t", table], capture_output=True, text=True, check=False
            ).stdout
            for line in dump.splitlines():
                if line.startswith("-A ") and (" -j KUBE-" in line or f" -j {NAT_CHAIN}" in line):
                    parts = line.split()
                    if parts[1].startswith(("KUBE-", NAT_CHAIN)):
                        continue
                    subprocess.run(
                        [ipt, "-w", "-t", table, "-D", *_unquote(line[3:])], capture_output=True
                    )
            chains = [
                ln[1:].split()[0]
                for ln in dump.splitlines()
                if ln.startswith(":") and ln[1:].startswith(("KUBE-", NAT_CHAIN))
            ]
            for chain in chains:
                subprocess.run([ipt, "-w", "-t", table, "-F", chain], capture_output=True)
            for chain in chains:
                subprocess.run([ipt, "-w", "-t", table, "-X", chain], capture_output=True)
    sets = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True).stdout
    for name in sets.split():
        if name.startswith(("KUBE-", "kube-router", "inet6:KUBE-")):
            subprocess.run(["ipset", "destroy", name], capture_output=True)


def _unquote(rule: str) -> list[str]:
    import shlex

    return shlex.split(rule)


def _pid_record(pid: int) -> dict[str, Any]:
    return {"pid": pid, "start": _start_ticks(pid)}


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _same_process(record: dict[str, Any] | None) -> bool:
    return record is not None and _start_ticks(record["pid"]) == record.get("start")


def _kill_recorded(record: dict[str, Any] | None, grace: float = 10.0) -> None:
    if not record or not _same_process(record):
        return
    pid = record["pid"]
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _same_process(record):
        time.sleep(0.1)
    if _same_process(record):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _terminate(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _mnt_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _read_state() -> dict[str, Any] | None:
    try:
        data = json.loads((STATE_DIR / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(state: dict[str, Any]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = STATE_DIR / "state.json.part"
    tmp.write_text(json.dumps(state))
    tmp.rename(STATE_DIR / "state.json")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((NODE_IP if _has_ip() else "127.0.0.1", 0))
        return int(s.getsockname()[1])


def _has_ip() -> bool:
    out = subprocess.run(["ip", "-o", "addr", "show", BRIDGE], capture_output=True, text=True)
    return NODE_IP in out.stdout


def main(argv: list[str]) -> int:
    def describe(node: RealNode) -> list[str]:
        return [
            f"cluster ready: {json.dumps({k: round(v, 1) for k, v in node.timings.items()})}",
            f"export KUBECONFIG={node.cp.kubeconfig}",
            f"node root (outside its mount namespace): {node.host_root}",
        ]

    return run_by_hand("tests.testbed.node", argv, start_cluster, describe)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
