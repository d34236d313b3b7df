"""The plug-in through vLLM's OpenAI-compatible server (AsyncLLM inside), hints sent as `vllm_xargs`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.vllm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict, timeout: float = 120.0) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", tiny_model,
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
        "--max-model-len", "1024", "--max-num-seqs", "1", "--no-enable-prefix-caching",
        "--scheduler-cls", "llmsched.vllm_plugin.PolicyScheduler",
        "--additional-config", json.dumps({"llmsched": {"policy": "oracle-sjf"}}),
    ]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(base + "/health", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"server not healthy after 240 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield base, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def waiting_requests(base: str) -> float:
    """The server's `vllm:num_requests_waiting` gauge (Prometheus text format on /metrics)."""
    with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("vllm:num_requests_waiting{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no vllm:num_requests_waiting gauge on /metrics")


def test_openai_server_schedules_by_vllm_xargs_hint(server, tiny_model):
    base, log = server
    done: list[str] = []
    lock = threading.Lock()

    def complete(name: str, tokens: int, hint: int) -> None:
        out = post(base + "/v1/completions", {
            "model": tiny_model, "prompt": f"request {name}", "max_tokens": tokens, "ignore_eos": True,
            "temperature": 0.0, "vllm_xargs": {"ref_output_tokens": hint},
        }, timeout=300)
        assert out["usage"]["completion_tokens"] == tokens
        with lock:
            done.append(name)

    # The blocker holds the only sequence slot; the four others queue behind it. The ordering is only
    # observable if all four are waiting before the blocker finishes, so wait for the server's own gauge
    # rather than for a fixed time (a slow machine tokenizes and enqueues late).
    blocker = threading.Thread(target=complete, args=("blocker", 900, 900))
    blocker.start()
    time.sleep(0.2)
    hints = {"a": 40, "b": 5, "c": 25, "d": 10}
    threads = []
    for name, n in hints.items():
        t = threading.Thread(target=complete, args=(name, n, n))
        t.start()
        threads.append(t)
    deadline = time.monotonic() + 60
    while waiting_requests(base) < len(hints):
        assert blocker.is_alive() and time.monotonic() < deadline, (
            f"the blocker finished (or 60 s passed) before all {len(hints)} requests were waiting: "
            f"the test cannot observe the admission order on this machine")
        time.sleep(0.05)
    assert blocker.is_alive(), "all requests queued, but the blocker had already finished"
    for t in [blocker, *threads]:
        t.join(timeout=300)
    assert done[0] == "blocker"
    assert done[1:] == sorted(hints, key=hints.get), log.read_text()[-2000:]
    assert "waiting queues use policy oracle-sjf" in log.read_text()
