"""cluster.yaml: a Ray cluster launcher config that Ray's own schema accepts, shaped for the
pipeline: a head that does no compute, spot CPU workers for tracing, GPU workers for vLLM."""

from __future__ import annotations

import yaml
from conftest import ROOT

from jobs.config import TranslateConfig

CLUSTER = yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_ray_accepts_the_cluster_config_and_refuses_a_broken_one():
    import copy

    import pytest
    from ray.autoscaler._private.util import prepare_config, validate_config

    # what `ray up` does before it launches anything: fill defaults, check the schema
    validate_config(prepare_config(copy.deepcopy(CLUSTER)))
    broken = copy.deepcopy(CLUSTER)
    broken["available_node_types"]["cpu_trace"]["resources"] = {"CPU": -1}
    with pytest.raises(Exception, match="CPU|-1"):
        validate_config(prepare_config(broken))


def test_the_head_does_no_compute_and_workers_scale_from_zero():
    types = CLUSTER["available_node_types"]
    head = types[CLUSTER["head_node_type"]]
    assert head["resources"] == {"CPU": 0} and head["max_workers"] == 0
    assert all(t["min_workers"] == 0 and t["max_workers"] > 0
               for name, t in types.items() if name != CLUSTER["head_node_type"])
    assert sum(t["max_workers"] for t in types.values()) <= CLUSTER["max_workers"]
    assert "--num-cpus=0" in " ".join(CLUSTER["head_start_ray_commands"])


def test_there_is_a_spot_cpu_type_for_tracing_and_a_gpu_type_for_the_engines():
    types = CLUSTER["available_node_types"].values()
    cpu = [t for t in types if t["resources"].get("CPU", 0) > 0 and not t["resources"].get("GPU")]
    gpu = [t for t in types if t["resources"].get("GPU", 0) > 0]
    assert any(t["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot" for t in cpu)
    # one engine needs tensor_parallel_size GPUs on one node
    assert gpu and max(t["resources"]["GPU"] for t in gpu) >= TranslateConfig().tensor_parallel_size
    assert all("vllm" in " ".join(t["worker_setup_commands"]) for t in gpu)


def test_every_node_installs_the_project_and_the_sandbox():
    commands = " ".join(CLUSTER["setup_commands"])
    assert "bubblewrap" in commands and "pip install -q -e ." in commands
    assert CLUSTER["file_mounts"] == {"~/groundtrace": "."}
