"""The plug-in through vLLM's OpenAI-compatible server (AsyncLLM inside), hints sent as `vllm_xargs`.

- Admission order: oracle SJF admits queued requests by their `ref_output_tokens` hint.
- Client disconnects: under each policy, requests whose clients hang up while they wait are aborted by the server
  (vLLM's `Scheduler.finish_requests` hands them to both waiting queues); the engine must stay up and serve the
  others in full. One server start costs about 70 s on 2 idle cores (three Python processes import vLLM), so by
  default the test starts one server per distinct queue implementation (policies that differ only in how they
  rank requests share one); LLMSCHED_SERVER_TESTS=all runs every registered policy. The in-process engine tests
  (tests/test_vllm_aborts.py) cover every policy.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from factories import one_per_implementation, policy_hints
from llmsched.policies import POLICIES, RequestView, make_policy

pytestmark = pytest.mark.vllm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict, timeout: float = 120.0) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


SHARED_POLICY = "oracle-sjf"  # the module's shared server (admission-order test, and that policy's disconnects)
# VLLM_ENABLE_V1_MULTIPROCESSING=1, whatever the in-process engine tests left in os.environ: with 0 the CPU build
# runs the model inside the engine-core process (vLLM's "uni" executor), which starts ~13 s faster (two processes
# import vLLM instead of three) but decodes ~5x slower on 2 cores (measured 43-55 ms vs 8 ms per token)
SERVER_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
START_TIMEOUT_S = 300


@dataclass
class Server:
    base: str
    log: Path
    proc: subprocess.Popen
    launched: float  # time.monotonic() at launch

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]


# The disconnect test holds the only sequence slot with a blocker while the others queue. LTR as released would swap
# the blocker out for the shorter queued requests and promote them after 200 idle steps, so its server runs without
# swaps and promotions: the same queue code paths (add, pop, tick, rank) through HTTP, on the test's premise. Its
# swaps and promotions on vLLM's scheduler: tests/test_vllm_aborts.py and tests/test_sim_vllm_scheduler.py.
SERVER_ARGS: dict[str, dict] = {"ltr-released": {"swap_limit": None, "starvation_steps": None}}


def launch_server(model: str, policy: str, log: Path, max_num_seqs: int = 1) -> Server:
    """Start `python -m vllm.entrypoints.openai.api_server` with the plug-in running `policy` (and vLLM's priority
    scheduling for the policies that are vLLM's priority queue); returns at once (see wait_healthy)."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
        "--max-model-len", "4096", "--max-num-seqs", str(max_num_seqs), "--no-enable-prefix-caching",
        "--scheduler-cls", "llmsched.vllm_plugin.PolicyScheduler",
        "--additional-config", json.dumps({"llmsched": {"policy": policy, "args": SERVER_ARGS.get(policy, {})}}),
    ]
    if POLICIES[policy].uses_vllm_priority:
        cmd += ["--scheduling-policy", "priority"]
    env = {**os.environ, **SERVER_ENV}
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    return Server(f"http://127.0.0.1:{port}", log, proc, time.monotonic())


def wait_healthy(server: Server) -> Server:
    while True:
        if server.proc.poll() is not None:
            pytest.fail(f"server exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            urllib.request.urlopen(server.base + "/health", timeout=2)
            return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > server.launched + START_TIMEOUT_S:
                pytest.fail(f"server not healthy after {START_TIMEOUT_S} s:\n{server.log_tail()}")
            time.sleep(0.5)


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@contextlib.contextmanager
def running_server(model: str, policy: str, log: Path, max_num_seqs: int = 1) -> Iterator[Server]:
    """A server running `policy` (launch_server), once /health answers; stopped on exit."""
    server = launch_server(model, policy, log, max_num_seqs)
    try:
        yield wait_healthy(server)
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory, server_pool):
    """The shared server (SHARED_POLICY); the first disconnect tests' servers start at the same time."""
    shared = launch_server(tiny_model, SHARED_POLICY, tmp_path_factory.mktemp("server") / "server.log")
    server_pool.launch_ahead()
    try:
        yield wait_healthy(shared)
    finally:
        stop_server(shared)


def gauges(base: str) -> dict[str, float]:
    """The server's `vllm:num_requests_waiting` and `vllm:num_requests_running` gauges (Prometheus text on
    /metrics), as {"waiting": .., "running": ..}."""
    out = {}
    with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            for key in ("waiting", "running"):
                if line.startswith(f"vllm:num_requests_{key}{{"):
                    out[key] = float(line.rsplit(" ", 1)[1])
    assert set(out) == {"waiting", "running"}, "no vllm:num_requests_waiting/running gauges on /metrics"
    return out


def waiting_requests(base: str) -> float:
    """The server's `vllm:num_requests_waiting` gauge."""
    return gauges(base)["waiting"]


def test_openai_server_schedules_by_vllm_xargs_hint(server, tiny_model):
    base, log = server.base, server.log
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


# --- client disconnects while waiting, per policy -----------------------------------------------------------------

N_QUEUED = 50
N_CANCELLED = N_QUEUED // 5
BLOCKER_TOKENS = 4000  # ~30 s of decoding on 2 idle cores: cancelled once the waiting requests' aborts are seen
GAUGE_TIMEOUT_S = 120


def server_policies() -> list:
    """Every registered policy; those whose queue code another policy already runs here are skipped unless
    LLMSCHED_SERVER_TESTS=all (the shared policy first, then by name, represents its group)."""
    return one_per_implementation(SHARED_POLICY, "~70 s")


def completion_body(model: str, policy: str, name: str, max_tokens: int) -> dict:
    """One completion request as a client sends it under `policy`: greedy, exactly max_tokens tokens, hints every
    policy reads as `vllm_xargs`, and for vLLM's priority policies the request priority the policy gives it."""
    hints = policy_hints(max_tokens)
    body = {"model": model, "prompt": f"request {name}", "max_tokens": max_tokens, "ignore_eos": True,
            "temperature": 0.0, "vllm_xargs": hints}
    queue = make_policy(policy)
    if queue.uses_vllm_priority:
        body["priority"] = queue.priority_of(RequestView(name, 0.0, 0, hints))
    return body


def send(server: Server, body: dict) -> http.client.HTTPConnection:
    """POST a completion on its own connection; the response is read later (or the connection closed)."""
    host, port = server.base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    return conn


def hang_up(conn: http.client.HTTPConnection) -> None:
    """The client goes away: close the connection without reading the response."""
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()


def has_response(conn: http.client.HTTPConnection) -> bool:
    """Whether the server has started answering on `conn` (the request finished)."""
    return bool(select.select([conn.sock], [], [], 0)[0])


def wait_for_gauges(server: Server, ok: Callable[[dict], bool], what: str) -> dict:
    deadline = time.monotonic() + GAUGE_TIMEOUT_S
    while True:
        assert server.proc.poll() is None, f"the server exited ({server.proc.returncode}):\n{server.log_tail()}"
        try:
            g = gauges(server.base)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            g = {"error": repr(e)}
        if "error" not in g and ok(g):
            return g
        assert time.monotonic() < deadline, f"{what}: gauges {g} after {GAUGE_TIMEOUT_S} s\n{server.log_tail()}"
        time.sleep(0.05)


# servers launched ahead of their tests: starts overlap (each of a server's three processes imports vLLM on one
# core for ~20 s); at most 1 + LAUNCH_AHEAD servers start at once (~3 GB of memory each)
LAUNCH_AHEAD = 2


DISCONNECT_TEST = "test_openai_server_survives_client_disconnects_while_waiting"


class ServerPool:
    """The disconnect tests' servers, one per policy (`plan`: the policies of the disconnect tests this session
    runs, in order); each test launches the servers of the next LAUNCH_AHEAD tests before it waits for its own."""

    def __init__(self, model: str, logs: Path, plan: list[str]) -> None:
        self.model, self.logs, self.plan = model, logs, plan
        self.servers: dict[str, Server] = {}

    def launch_ahead(self, after: str | None = None) -> None:
        """Launch the servers of the next LAUNCH_AHEAD planned policies after `after` (None: the first ones)."""
        rest = self.plan[self.plan.index(after) + 1:] if after is not None else self.plan
        for policy in [p for p in rest if p != SHARED_POLICY][:LAUNCH_AHEAD]:
            self.launch(policy)

    def launch(self, policy: str) -> None:
        if policy not in self.servers:
            self.servers[policy] = launch_server(self.model, policy, self.logs / f"{policy}.log")

    def take(self, policy: str) -> Server:
        self.launch(policy)
        return wait_healthy(self.servers[policy])

    def stop(self, policy: str) -> None:
        server = self.servers.pop(policy, None)
        if server is not None:
            stop_server(server)

    def close(self) -> None:
        for policy in list(self.servers):
            self.stop(policy)


@pytest.fixture(scope="module")
def server_pool(request, tiny_model, tmp_path_factory):
    plan = [i.callspec.params["policy"] for i in request.session.items
            if getattr(i, "originalname", None) == DISCONNECT_TEST and i.get_closest_marker("skip") is None]
    pool = ServerPool(tiny_model, tmp_path_factory.mktemp("servers"), plan)
    yield pool
    pool.close()


@pytest.mark.parametrize("policy", server_policies())
def test_openai_server_survives_client_disconnects_while_waiting(policy, request, server_pool, tiny_model):
    with contextlib.ExitStack() as stack:
        if policy != SHARED_POLICY:
            server_pool.launch(policy)
        server_pool.launch_ahead(after=policy)
        if policy == SHARED_POLICY:
            srv = request.getfixturevalue("server")
        else:
            srv = server_pool.take(policy)
            stack.callback(server_pool.stop, policy)
        # one sequence slot: the blocker holds it, and everything sent after it waits in the policy's queue
        blocker = send(srv, completion_body(tiny_model, policy, "blocker", BLOCKER_TOKENS))
        wait_for_gauges(srv, lambda g: g["running"] == 1, "the blocker never started")
        rng = random.Random(20240601)
        lengths = [rng.randint(2, 12) for _ in range(N_QUEUED)]
        conns = [send(srv, completion_body(tiny_model, policy, f"q{i}", n)) for i, n in enumerate(lengths)]
        g = wait_for_gauges(srv, lambda g: g["waiting"] >= N_QUEUED or has_response(blocker), "queueing")
        assert not has_response(blocker), "the blocker finished before all requests were queued (machine too slow)"
        assert g == {"waiting": N_QUEUED, "running": 1}, g

        cancelled = set(rng.sample(range(N_QUEUED), N_CANCELLED))
        for i in sorted(cancelled):
            hang_up(conns[i])
        # the server aborted exactly those, while they waited: the blocker still holds the only slot
        g = wait_for_gauges(srv, lambda g: g["waiting"] <= N_QUEUED - N_CANCELLED, "disconnects not aborted")
        assert not has_response(blocker), "the blocker finished before the aborts were seen (machine too slow)"
        assert g == {"waiting": N_QUEUED - N_CANCELLED, "running": 1}, g
        hang_up(blocker)  # and a running request's client goes away too

        for i, conn in enumerate(conns):
            if i in cancelled:
                continue
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, (i, body[:500])
            assert json.loads(body)["usage"]["completion_tokens"] == lengths[i], i
            conn.close()
        wait_for_gauges(srv, lambda g: g == {"waiting": 0, "running": 0}, "requests left in the engine")
        assert srv.proc.poll() is None
        with urllib.request.urlopen(srv.base + "/health", timeout=10) as resp:
            assert resp.status == 200
        after = post(srv.base + "/v1/completions", completion_body(tiny_model, policy, "after", 3))
        assert after["usage"]["completion_tokens"] == 3
