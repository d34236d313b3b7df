"""Open a web report in headless Chromium and check it as a reader would see it.

    result = check_report(Path("results/report/smoke/index.html"))   # BrowserCheck; result.ok, result.summary()

Chromium (Debian's `chromium`, or $LLMSCHED_CHROMIUM) runs headless with its DevTools protocol on a local port;
the check drives it over that protocol's websocket (tornado's client):
  - loads index.html from disk and waits for its load event;
  - asks the page for every <img> (loaded: `complete` and a natural width > 0) and every <a href>;
  - a link to a file must name a file that exists (fragments dropped); an http(s) link is listed, not fetched;
  - opens every linked .html page (the rendered notebooks) the same way: it must load, with text, and its own
    images must load;
  - saves a screenshot of the report's first screen (1280 × 1600) beside the check's JSON summary.
`chromium_path()` is None where no Chromium is installed; callers decide whether that skips or fails.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# what the page reports about itself: its images and links, as the browser resolved them
_PROBE = """JSON.stringify({
  title: document.title,
  text: document.body ? document.body.innerText.length : 0,
  images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
  links: Array.from(document.links).map(a => a.href)
})"""


def chromium_path() -> str | None:
    """The Chromium binary to use ($LLMSCHED_CHROMIUM, else the first of CANDIDATES on PATH), or None."""
    env = os.environ.get("LLMSCHED_CHROMIUM")
    if env:
        return env if Path(env).exists() or shutil.which(env) else None
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


@dataclass
class BrowserCheck:
    """What the browser saw: pages opened, broken images and links, external links, the screenshot."""

    index: str
    pages: list[dict[str, Any]] = field(default_factory=list)  # {url, title, text, images, links}
    broken_images: list[str] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    external_links: list[str] = field(default_factory=list)
    empty_pages: list[str] = field(default_factory=list)
    screenshot: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.pages) and not (self.broken_images or self.broken_links or self.empty_pages)

    def summary(self) -> dict[str, Any]:
        return {"index": self.index, "ok": self.ok, "pages": len(self.pages),
                "images": sum(p["images"] for p in self.pages), "links": sum(p["links"] for p in self.pages),
                "broken_images": self.broken_images, "broken_links": self.broken_links,
                "empty_pages": self.empty_pages, "external_links": sorted(set(self.external_links)),
                "screenshot": self.screenshot, "seconds": round(self.seconds, 1)}


class _DevTools:
    """One page target of a running Chromium, driven over its DevTools websocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        await self.ws.write_message(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = await asyncio.wait_for(self.ws.read_message(), max(0.1, deadline - time.monotonic()))
            if msg is None:
                raise RuntimeError(f"Chromium closed the DevTools connection during {method}")
            data = json.loads(msg)
            if data.get("id") == my_id:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return data.get("result", {})
            self.events.append(data)

    async def wait_event(self, method: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            msg = await asyncio.wait_for(self.ws.read_message(), max(0.1, deadline - time.monotonic()))
            if msg is None:
                raise RuntimeError(f"Chromium closed the DevTools connection waiting for {method}")
            self.events.append(json.loads(msg))

    async def open(self, url: str) -> dict[str, Any]:
        """Navigate, wait for the load event, return the page's probe (_PROBE)."""
        self.events.clear()
        await self.call("Page.navigate", url=url)
        await self.wait_event("Page.loadEventFired")
        res = await self.call("Runtime.evaluate", expression=_PROBE, returnByValue=True)
        return json.loads(res["result"]["value"])


def _file_of(url: str) -> Path | None:
    u = urlparse(url)
    return Path(unquote(u.path)) if u.scheme == "file" else None


def _start(binary: str, profile_dir: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--allow-file-access-from-files", "--window-size=1280,1600", "--remote-debugging-port=0",
         f"--user-data-dir={profile_dir}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile_dir / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{binary} exited with {proc.returncode} before opening its DevTools port")
        if port_file.exists() and port_file.read_text().strip():
            return proc, int(port_file.read_text().split()[0])
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{binary} opened no DevTools port within 60 s")


async def _check(index: Path, port: int, result: BrowserCheck, shot: Path) -> None:
    from tornado.websocket import websocket_connect

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
        targets = [t for t in json.load(r) if t.get("type") == "page"]
    ws = await websocket_connect(targets[0]["webSocketDebuggerUrl"], max_message_size=256 * 1024 * 1024)
    try:
        dt = _DevTools(ws)
        await dt.call("Page.enable")
        first = index.resolve().as_uri()
        todo, seen = [first], set()
        while todo:
            url = todo.pop(0)
            if url in seen:
                continue
            seen.add(url)
            probe = await dt.open(url)
            result.pages.append({"url": url, "title": probe["title"], "text": probe["text"],
                                 "images": len(probe["images"]), "links": len(probe["links"])})
            if probe["text"] == 0:
                result.empty_pages.append(url)
            result.broken_images += [f"{url}: {i['src']}" for i in probe["images"] if not i["ok"]]
            for link in probe["links"]:
                path = _file_of(link)
                if path is None:
                    if urlparse(link).scheme in ("http", "https"):
                        result.external_links.append(link)
                    continue
                if not path.exists():
                    result.broken_links.append(f"{url}: {link}")
                elif url == first and path.suffix == ".html":
                    todo.append(path.resolve().as_uri())  # the pages the report links to, one level deep
            if len(result.pages) == 1:
                png = await dt.call("Page.captureScreenshot", format="png")
                shot.write_bytes(base64.b64decode(png["data"]))
                result.screenshot = str(shot)
    finally:
        ws.close()


def check_report(index: str | Path, out_dir: str | Path | None = None, binary: str | None = None) -> BrowserCheck:
    """Open `index` (and the pages it links to) in headless Chromium; write browser-check.json and
    screenshot.png into `out_dir` (default: <index's folder>/browser-check/). RuntimeError without Chromium."""
    index = Path(index)
    if not index.exists():
        raise FileNotFoundError(f"no report at {index}")
    binary = binary or chromium_path()
    if binary is None:
        raise RuntimeError(f"no Chromium found (tried $LLMSCHED_CHROMIUM and {', '.join(CANDIDATES)}); on Debian: "
                           "apt-get install chromium")
    out = Path(out_dir) if out_dir is not None else index.parent / "browser-check"
    out.mkdir(parents=True, exist_ok=True)
    result = BrowserCheck(index=str(index))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmsched-chromium-") as tmp:
        proc, port = _start(binary, Path(tmp))
        try:
            asyncio.run(_check(index, port, result, out / "screenshot.png"))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    result.seconds = time.perf_counter() - t0
    (out / "browser-check.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
    return result
