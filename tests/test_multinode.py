"""Several nodes: two ``accelerate launch --num_machines 2 --machine_rank {0,1} --main_process_ip 127.0.0.1`` launchers
of one process each form one run on the loopback address, and the recipe path is node-aware both ways.

``save_on_each_node: true`` is a cluster whose nodes have their own disks: here each node runs in its own folder (the
relative ``output_dir`` lands on "its" disk) with its own ``HF_HOME`` (the datasets and feature caches). Each node's
main process then writes a complete model folder, its checkpoints and its feature cache there. ``false`` is a shared
file system: both nodes share the folder and the caches, and only the first node's main process writes. Either way
the push to the (loopback) Hub happens once, from the first node.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch

from tests.hub_fixtures import LocalHubHandle
from tests.multiprocess import (
    TIMEOUT,
    Launch,
    _rank_logs,
    accelerate_cli,
    launch_env,
    requires_accelerate,
    reserve_port,
)
from tests.recipe_helpers import load_weights, tiny_recipe, write_image_dataset, write_recipe

pytestmark = [requires_accelerate, pytest.mark.slow]

CACHE_WRITTEN = "feature cache written:"


def launch_nodes(args: list[str], tmp_path: Path, node_dirs: list[Path], envs: list[dict[str, str]]) -> list[Launch]:
    """One ``accelerate launch`` per "node", started together (a static rendezvous waits for both), 1 process each."""
    port = str(reserve_port())
    processes, commands, log_dirs = [], [], []
    for rank, (cwd, env) in enumerate(zip(node_dirs, envs)):
        log_dir = Path(tempfile.mkdtemp(prefix=f"node{rank}-logs-", dir=tmp_path))
        command = [accelerate_cli(), "launch", "--multi_gpu", "--num_machines", "2", "--num_processes", "2",
                   "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", port,
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--tee", "3", "--log_dir", str(log_dir), *args]
        processes.append(subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, start_new_session=True))
        commands.append(command)
        log_dirs.append(log_dir)
    results = []
    try:
        for process, command, log_dir in zip(processes, commands, log_dirs):
            stdout, stderr = process.communicate(timeout=TIMEOUT)
            results.append(Launch(command, process.returncode, stdout, stderr, _rank_logs(log_dir)))
    except subprocess.TimeoutExpired:
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"the 2-node launch still ran after {TIMEOUT} s (killed)")
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    for result in results:
        result.check()
    return results


@pytest.mark.parametrize("save_on_each_node", [True, False], ids=["node-local-disks", "shared-file-system"])
def test_two_nodes_on_loopback(tmp_path, local_hub: LocalHubHandle, save_on_each_node):
    data = write_image_dataset(tmp_path / "data", 24, seed=1)
    repo_id = local_hub.repo_id(f"two-nodes-{save_on_each_node}".lower())
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(
        data, Path("out"), max_steps=2, heads_only_epochs=1, freeze_policy="top_n", max_eval_samples=8,
        save_strategy="steps", save_steps=1, final_model="last", save_on_each_node=save_on_each_node,
        push_to_hub=True, hub_model_id=repo_id, hub_strategy="end"))
    shared = tmp_path / "shared"
    nodes = [tmp_path / "node0", tmp_path / "node1"] if save_on_each_node else [shared, shared]
    envs = []
    for folder in nodes:
        folder.mkdir(exist_ok=True)
        home = folder / "hf_home"  # the node's caches (the Hub fixture's HF_DATASETS_CACHE would be shared)
        envs.append(launch_env(folder, HF_HUB_OFFLINE="0", HF_DATASETS_CACHE=str(home / "datasets"),
                               HF_ASSETS_CACHE=str(home / "assets")))
    launches = launch_nodes(["-m", "hf_mtl.cli", "train", str(recipe)], tmp_path, nodes, envs)
    logs = [launch.stdout + launch.stderr for launch in launches]

    writers = nodes if save_on_each_node else nodes[:1]
    for rank, folder in enumerate(writers):
        out = folder / "out"
        names = {p.name for p in out.iterdir()}
        assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md",
                "per_label_metrics.json"} <= names, (rank, names)
        assert not [n for n in names if n.startswith("_tmp-")]  # every checkpoint was published
        for step in (1, 2):
            ranks = {p.name for p in (out / f"checkpoint-{step}").glob("rng_state_*.pth")}
            # node-local disks: each node's checkpoint holds its own process's state; shared: both in one folder
            assert ranks == ({f"rng_state_{rank}.pth"} if save_on_each_node else {"rng_state_0.pth", "rng_state_1.pth"})
            assert (out / f"checkpoint-{step}" / "model.safetensors").is_file()
        caches = list((folder / "hf_home").rglob("features-*"))
        assert caches, f"node {rank}: no feature cache under its HF_HOME"
    # every process computes its share of each cache (heads-only stage, main stage) into its own Arrow part: node-local
    # disks hold a whole cache per node (one part: one process per node), a shared file system one cache of 2 parts
    assert [log.count(CACHE_WRITTEN) for log in logs] == [2, 2]
    for folder in writers:
        indexes = list((folder / "hf_home").rglob("parts.json"))
        assert indexes, f"{folder}: no published feature cache"
        for index in indexes:
            parts = json.loads(index.read_text())["parts"]
            assert len(parts) == (1 if save_on_each_node else 2), (index, parts)
    if save_on_each_node:
        first, second = load_weights(nodes[0] / "out"), load_weights(nodes[1] / "out")
        assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    # one push, from the first node
    commits = [r for r in local_hub.server.requests if r.method == "POST" and f"/{repo_id}/commit/" in r.path]
    assert len(commits) == 1, commits
    remote = set(local_hub.api().list_repo_files(repo_id))
    assert {"model.safetensors", "config.json", "README.md"} <= remote
