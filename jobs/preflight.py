"""Before tracing: which nodes can start the sandbox.

A node type whose image lacks bubblewrap, or whose kernel refuses user namespaces, would fail
every trace actor placed on it, and with it the whole job, at every attempt. Each node with
CPUs starts a real jail once and runs a trivial program in it (a Ray task pinned to the node);
the trace actors are then kept off the nodes that failed (Ray's ``ray.io/node-id`` label), the
manifest and the report name those nodes and why, and when no node can start a jail the job
stops at once with one line. A local run probes this machine, in the driver's process.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, replace

from trace_workers.jail.sandbox import Sandbox, SandboxError, SandboxLimits, SandboxSettings

PROBE = "def main_solution():\n    return 1\n"
PROBE_TIMEOUT_S = 180.0
# the probe's run may take this long whatever --timeout-s says: a busy node is slow, not broken
# (with --timeout-s 1, the trivial program once took over 1 s while tests loaded the machine,
# and the job stopped as if no node could start the sandbox)
PROBE_RUN_TIMEOUT_S = 30.0


@dataclass
class NodeHealth:
    healthy: list[str] = field(default_factory=list)  # node ids (a local run: the host name)
    broken: dict[str, dict] = field(default_factory=dict)  # node id -> {"host", "reason"}

    def remote_args(self) -> dict:
        """What keeps an actor that needs the sandbox off the broken nodes."""
        if not self.broken:
            return {}
        return {"label_selector": {"ray.io/node-id": f"!in({','.join(sorted(self.broken))})"}}

    def to_dict(self) -> dict:
        return {"healthy": len(self.healthy), "broken": self.broken}


def start_a_jail(limits: SandboxLimits) -> str:
    """"" when a jail starts on this machine and runs a program, else why not."""
    limits = replace(limits, timeout_s=max(limits.timeout_s, PROBE_RUN_TIMEOUT_S))
    box = Sandbox(SandboxSettings(limits=limits, preload=()))
    try:
        box.start()
        result = box.run(PROBE, "main_solution", "{}", 1, dry_run=False)
        if result.get("status") != "returned":
            said = f"{result.get('status')} {result.get('detail', '')}"
            return f"a trivial program did not return: {said}"[:300]
        return ""
    except (SandboxError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    finally:
        box.close()


def _probe(limits: SandboxLimits) -> tuple[str, str]:
    return socket.gethostname(), start_a_jail(limits)


def probe_nodes(limits: SandboxLimits, on_cluster: bool) -> NodeHealth:
    """Start a jail on every node with CPUs (on this machine only for a local run)."""
    health = NodeHealth()
    if not on_cluster:
        reason = start_a_jail(limits)
        host = socket.gethostname()
        if reason:
            health.broken[host] = {"host": host, "reason": reason}
        else:
            health.healthy.append(host)
        return health
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
    probe = ray.remote(num_cpus=0, max_retries=0)(_probe)
    pending = {node["NodeID"]: probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        node["NodeID"], soft=False)).remote(limits) for node in nodes}
    for node_id, ref in pending.items():
        try:
            host, reason = ray.get(ref, timeout=PROBE_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a node that cannot even run the probe
            host, reason = "?", f"the probe failed: {type(exc).__name__}: {str(exc)[:200]}"
        if reason:
            health.broken[node_id] = {"host": host, "reason": reason}
        else:
            health.healthy.append(node_id)
    return health


def no_jail_anywhere(health: NodeHealth) -> str:
    said = "; ".join(f"{info['host']}: {info['reason']}" for info in health.broken.values())
    return f"no node can start the sandbox ({said})"
