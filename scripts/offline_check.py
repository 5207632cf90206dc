#!/usr/bin/env python3
"""The `./x dist` folder as a static site: served from a sub-folder by a plain static server,
it installs its service worker; then, with the server stopped and the network cut, the page
opens again and trains a step; and a newer build, once served, is offered, replaces the cache
whole, and leaves no file of the older one. Any failure exits non-zero: `./x test page` runs
this.

With --throttle-mbit, it measures instead what a first and a second visit cost on a slow
connection (DevTools' network conditions; the server compresses as web hosts do) and prints
the times: BENCHMARKS.md, "Loading".
"""
import argparse
import gzip
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error

from page_check import WebDriver, _ready, free_port, step_count, wait

SUB_PATH = "gdl-lab"
CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--disable-quic", "--window-size=1400,1800",
               # The CPU path: quicker to start here than WebGPU on SwiftShader.
               "--disable-webgpu"]


def serve(directory, port, compress):
    """Serves `directory` at /gdl-lab/ on `port`; gzip-compressed when `compress` and the
    browser asks for it, as web hosts do. Records each path asked for."""
    root = tempfile.mkdtemp(prefix="gdl-lab-site-")
    os.symlink(os.path.abspath(directory), os.path.join(root, SUB_PATH))
    asked = []
    compressed = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            asked.append(self.path)
            path = self.translate_path(self.path)
            if not (compress and os.path.isfile(path)
                    and "gzip" in self.headers.get("Accept-Encoding", "")):
                return super().do_GET()
            if path not in compressed:
                with open(path, "rb") as file:
                    compressed[path] = gzip.compress(file.read(), 6)
            body = compressed[path]
            self.send_response(200)
            self.send_header("Content-Type", self.guess_type(path))
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    handler = lambda *a, **k: Handler(*a, directory=root, **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, asked


def stop(server):
    server.shutdown()
    server.server_close()


def run_async(webdriver, body):
    """Runs `body` (JavaScript that ends by calling done(value)) in the page: the value."""
    return webdriver.session_call("POST", "/execute/async", {
        "script": "const done = arguments[arguments.length - 1];" + body, "args": []})


def caches(webdriver):
    """The page's caches: {name: number of entries}."""
    return run_async(webdriver, (
        "caches.keys().then(names => Promise.all(names.map(n => caches.open(n)"
        ".then(c => c.keys()).then(k => [n, k.length])))).then(e => done(Object.fromEntries(e)),"
        " e => done(String(e)));"))


def network(webdriver, offline, mbit=None, latency_ms=0):
    webdriver.session_call("POST", "/chromium/send_command", {"cmd": "Network.enable",
                                                              "params": {}})
    throughput = mbit * 1e6 / 8 if mbit else -1
    webdriver.session_call("POST", "/chromium/send_command", {
        "cmd": "Network.emulateNetworkConditions", "params": {
            "offline": offline, "latency": latency_ms, "downloadThroughput": throughput,
            "uploadThroughput": throughput}})


NEWER_MARK = '<meta name="gdl-lab-build" content="newer" />'


def newer_shown(webdriver):
    return webdriver.script("return document.querySelector(\"meta[name='gdl-lab-build']\") !== null;")


def play_enabled(webdriver):
    return webdriver.script("const b = document.querySelector(\"[data-test='play']\");"
                            "return b !== null && !b.disabled;")


def open_page(webdriver, url, timeout):
    """Opens the page and waits for an enabled Play: the seconds it took."""
    started = time.time()
    try:
        webdriver.session_call("POST", "/url", {"url": url})
    except urllib.error.HTTPError as error:
        raise SystemExit(f"offline check: the page did not open ({error.read()[:300]!r})")
    wait("an enabled Play", timeout, lambda: play_enabled(webdriver)
         or webdriver.exists("worker-crashed"), interval=0.1)
    if webdriver.exists("worker-crashed"):
        raise SystemExit(f"offline check: {webdriver.test_text('worker-crashed')}")
    return time.time() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dist", default="dist")
    parser.add_argument("--chrome", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--throttle-mbit", type=float,
                        help="measure first and second visits at this speed instead")
    parser.add_argument("--latency-ms", type=float, default=40)
    options = parser.parse_args()
    if not os.path.isfile(os.path.join(options.dist, "sw.js")):
        raise SystemExit(f"offline check: {options.dist} has no sw.js; build it with ./x dist")

    failures = []

    def expect(condition, message):
        if not condition:
            print(f"FAILED: {message}", flush=True)
            failures.append(message)

    port = free_port()
    url = f"http://127.0.0.1:{port}/{SUB_PATH}/"
    server, asked = serve(options.dist, port, compress=options.throttle_mbit is not None)
    driver_port = free_port()
    driver = subprocess.Popen([options.chromedriver, f"--port={driver_port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    webdriver = WebDriver(f"http://127.0.0.1:{driver_port}")
    newer = None
    try:
        wait("chromedriver", 30, lambda: _ready(webdriver))
        webdriver.start(options.chrome, CHROME_ARGS, tempfile.mkdtemp())
        webdriver.session_call("POST", "/timeouts", {"script": 300000, "pageLoad": 300000})
        # A first visit on a connection slow enough to watch the engine's download: Play is a
        # progress bar that says how far it is.
        network(webdriver, False, options.throttle_mbit or 80, options.latency_ms)
        started = time.time()
        webdriver.session_call("POST", "/url", {"url": url})
        seen = []

        def download_shown():
            text = webdriver.test_text("engine-download")
            if text and " of " in text and text not in seen:
                seen.append(text)
            return play_enabled(webdriver) or webdriver.exists("worker-crashed")
        wait("an enabled Play", 600, download_shown, interval=0.1)
        first = time.time() - started
        print(f"first visit: Play enabled after {first:.1f} s; the download said {seen[:3]}",
              flush=True)
        expect(any(text.startswith("Downloading the training engine:") and text.endswith("MB…")
                   for text in seen), f"Play was no download progress bar: {seen}")
        network(webdriver, False)
        wait("the offline copy", 300, lambda: webdriver.exists("offline-saved"))
        saved = caches(webdriver)
        print(f"saved for offline use: {saved}")
        expect(len(saved) == 1, f"one cache expected after the first visit: {saved}")

        # The network is gone: the server stopped, and the browser offline.
        stop(server)
        network(webdriver, True)
        second = open_page(webdriver, url, 120)
        print(f"second visit, offline: Play enabled after {second:.1f} s", flush=True)
        if options.throttle_mbit:
            return
        expect(webdriver.exists("scan-summary"), "offline, the demo did not load")
        webdriver.click("step-once")
        wait("a step, offline", 300, lambda: step_count(webdriver) >= 1
             or webdriver.exists("train-error") or webdriver.exists("worker-crashed"))
        expect(step_count(webdriver) >= 1,
               f"offline, no step: {webdriver.test_text('train-error')}")
        print(f"offline: trained {step_count(webdriver)} step, "
              f"loss {webdriver.test_text('loss')}")
        # The helper workers that take shares of the batch load offline too (the same saved
        # scripts), so the step was split as online.
        cores = webdriver.script("return navigator.hardwareConcurrency;") or 1
        line = webdriver.test_text("run-device-panel") or ""
        print(f"offline, {cores} cores: {line}")
        expect(cores < 2 or "split across 2 workers" in line,
               f"offline, {cores} cores and the device line says {line!r}")

        # A newer build on the same address (index.html differs, so its files hash to another
        # version): offered, then the only cache, and the page is the new one.
        newer = tempfile.mkdtemp(prefix="gdl-lab-newer-")
        shutil.rmtree(newer)
        shutil.copytree(options.dist, newer)
        index = os.path.join(newer, "index.html")
        with open(index) as file:
            html = file.read()
        with open(index, "w") as file:
            file.write(html.replace("</head>", f"{NEWER_MARK}</head>", 1))
        env = dict(os.environ, TRUNK_PROFILE="release", TRUNK_STAGING_DIR=newer,
                   TRUNK_SOURCE_DIR=os.getcwd())
        subprocess.run([sys.executable, "scripts/offline_files.py"], env=env, check=True)
        network(webdriver, False)
        server, asked = serve(newer, port, compress=False)
        open_page(webdriver, url, 120)
        expect(not newer_shown(webdriver),
               "the newer build replaced the open page without being asked")
        wait("the newer version's offer", 120, lambda: webdriver.exists("offline-update"))
        print(f"offer: {webdriver.test_text('offline-update')}")
        webdriver.click("use-new-version")
        wait("the newer page", 120, lambda: newer_shown(webdriver))
        wait("an enabled Play on the newer page", 120, lambda: play_enabled(webdriver))
        after = caches(webdriver)
        print(f"caches after the update: {after}")
        expect(len(after) == 1 and set(after) != set(saved),
               f"the newer build's cache did not replace the older one: {saved} → {after}")
        foreign = [path for path in asked if not path.startswith(f"/{SUB_PATH}/")]
        expect(not foreign, f"requests outside the page's folder: {foreign}")
        errors = [entry for entry in webdriver.console() if entry.get("level") == "SEVERE"]
        expect(not errors, f"console errors: {errors}")
    finally:
        try:
            webdriver.session_call("DELETE", "")
        except Exception:  # noqa: BLE001 - the session may already be gone
            pass
        driver.terminate()
        if newer:
            shutil.rmtree(newer, ignore_errors=True)
    if failures:
        raise SystemExit(f"offline check: {len(failures)} failure(s)")
    print("offline check: passed")


if __name__ == "__main__":
    main()
