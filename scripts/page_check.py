#!/usr/bin/env python3
"""Opens the built page in headless Chromium as a new user would and checks the journey.

Serves `dist/` on 127.0.0.1, then: the demo scan loads by itself; on a slow adapter the user
takes the page's offer of small settings; training runs with the charts moving (screenshot);
every lab cause is toggled (its value and sentence are printed; screenshot); the prediction,
loss history and weights download; real NIfTI files load through the pickers, a malformed one
gives its sentence; the console shows no error and no request leaves the page's origin.

Speaks the W3C WebDriver protocol to chromedriver over HTTP with the standard library: the
handful of calls needed here do not justify a Selenium install.
"""
import argparse
import base64
import functools
import gzip
import http.server
import json
import os
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(directory):
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class WebDriver:
    def __init__(self, url):
        self.url = url
        self.session = None

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.load(response)["value"]

    def session_call(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def start(self, chrome, args, downloads):
        capabilities = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": chrome, "args": args, "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": False}}}}}
        self.session = self.call("POST", "/session", capabilities)["sessionId"]

    def find(self, css):
        found = self.session_call("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def text(self, css):
        return self.session_call("GET", f"/element/{self.find(css)}/text")

    def script(self, source):
        return self.session_call("POST", "/execute/sync", {"script": source, "args": []})

    def click(self, test_id):
        self.script(f"document.querySelector(\"[data-test='{test_id}']\").click(); return 0;")

    def exists(self, test_id):
        return self.script(f"return document.querySelector(\"[data-test='{test_id}']\") !== null;")

    def test_text(self, test_id):
        return self.script(
            f"const e = document.querySelector(\"[data-test='{test_id}']\");"
            "return e === null ? null : e.innerText;")

    def upload(self, css, path):
        self.session_call("POST", f"/element/{self.find(css)}/value", {"text": path})

    def console(self):
        return self.session_call("POST", "/se/log", {"type": "browser"})


def serve_with_chromedriver(dist, chromedriver):
    """Serves `dist` on a free port and starts chromedriver on another:
    (server, the page's origin, the chromedriver process, a WebDriver client)."""
    server = serve(dist)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    port = free_port()
    driver = subprocess.Popen([chromedriver, f"--port={port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return server, origin, driver, WebDriver(f"http://127.0.0.1:{port}")


def wait(what, timeout, condition):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise SystemExit(f"page check: timed out waiting for {what}")
        time.sleep(0.5)


def step_count(webdriver):
    try:
        return int(webdriver.test_text("step") or 0)
    except ValueError:
        return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dist", default="dist")
    parser.add_argument("--chrome", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--out", default="docs", help="folder for the screenshots")
    parser.add_argument("--prefix", default="screenshot", help="screenshot file names start so")
    parser.add_argument("--steps", type=int, default=12, help="steps before the first shot")
    parser.add_argument("--lab-steps", type=int, default=120,
                        help="steps to train on the CPU backend before the lab")
    parser.add_argument("--image", help="a NIfTI image to load through the picker")
    parser.add_argument("--label", help="its label map")
    parser.add_argument("--bad", help="a malformed file that must give a sentence")
    parser.add_argument("--no-webgpu", action="store_true",
                        help="start Chromium without WebGPU, to show the CPU fallback")
    options = parser.parse_args()

    server, origin, driver, webdriver = serve_with_chromedriver(options.dist, options.chromedriver)
    downloads = tempfile.mkdtemp(prefix="gdl-lab-downloads-")
    failures = []
    try:
        wait("chromedriver", 30, lambda: _ready(webdriver))
        webgpu = ["--disable-webgpu"] if options.no_webgpu else ["--enable-unsafe-webgpu"]
        webdriver.start(options.chrome, webgpu + [
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-quic",
            "--window-size=1400,1800", "--hide-scrollbars"], downloads)
        # A software adapter can keep the page busy for many seconds while it compiles kernels.
        webdriver.session_call("POST", "/timeouts", {"script": 600000, "pageLoad": 600000})
        # Headless Chromium ignores the download preference; the DevTools command sets it.
        webdriver.session_call("POST", "/chromium/send_command", {
            "cmd": "Browser.setDownloadBehavior",
            "params": {"behavior": "allow", "downloadPath": downloads}})
        webdriver.session_call("POST", "/url", {"url": origin + "/"})
        wait("the demo scan", 120, lambda: webdriver.exists("scan-summary"))
        print(f"demo loaded: {webdriver.test_text('scan-name')} {webdriver.test_text('scan-dims')}")
        wait("the device", 120, lambda: webdriver.script(
            "const b = document.querySelector(\"[data-test='play']\");"
            "return b !== null && !b.disabled;"))
        if webdriver.exists("use-small"):
            print("slow adapter: taking the page's small settings")
            webdriver.click("use-small")
            wait("the demo scan", 120, lambda: webdriver.exists("scan-summary"))
        webdriver.click("demo")
        wait("the demo scan", 120, lambda: webdriver.exists("scan-summary"))
        webdriver.click("play")
        started = time.time()

        def trained(steps):
            def enough():
                print(f"  {time.time() - started:5.0f} s: step {step_count(webdriver)}, "
                      f"status {webdriver.test_text('status')!r}", flush=True)
                return step_count(webdriver) >= steps
            return enough

        wait(f"{options.steps} steps", 900, trained(options.steps))
        shoot(webdriver, f"{options.out}/{options.prefix}.png")
        print(f"step {webdriver.test_text('step')}, loss {webdriver.test_text('loss')}, "
              f"{webdriver.test_text('millis')} ms/step, "
              f"chart points {webdriver.script('return document.querySelector(`[data-test=chart-total]`).dataset.points')}")
        webdriver.click("pause")
        wait("the pause", 120, lambda: webdriver.test_text("status") in ("paused", "finished"))

        # The causes show as the net gets better, not at the start: train longer first, on the
        # CPU backend when the GPU is a slow software adapter.
        if options.lab_steps:
            webdriver.script("const s = document.getElementById('backend'); s.value = 'cpu';"
                             "s.dispatchEvent(new Event('change')); return 0;")
            webdriver.click("play")
            started = time.time()
            wait(f"{options.lab_steps} steps on the CPU", 900, trained(options.lab_steps))
            webdriver.click("pause")
            wait("the pause", 120, lambda: webdriver.test_text("status") in ("paused", "finished"))
        print("lab (value with the cause / correct value):")
        for toggle in webdriver.script(
                "return [...document.querySelectorAll('[data-test^=lab-].toggle')]"
                ".map(b => b.dataset.test);"):
            webdriver.click(toggle)
            key = toggle.removeprefix("lab-")
            wait(f"the lab reading for {toggle}", 120, lambda: webdriver.script(
                "const e = document.querySelector(\"[data-test='lab-misused']\");"
                f"return e !== null && e.dataset.misuse === '{key}';")
                 or webdriver.exists("train-error"))
            misused, correct = webdriver.test_text("lab-misused"), webdriver.test_text("lab-correct")
            sentence = webdriver.test_text("lab-explanation") or ""
            print(f"  {toggle:28} {misused:>12} / {correct:<9} {sentence[:110]}")
            if not sentence:
                failures.append(f"{toggle}: no explanation shown")
        webdriver.click("lab-mask255")
        wait("the 0/255 reading", 120, lambda: webdriver.script(
            "return document.querySelector(\"[data-test='lab-misused']\").dataset.misuse"
            " === 'mask255';"))
        shoot(webdriver, f"{options.out}/{options.prefix}-lab.png", "charts-title")

        count = lambda: webdriver.script(
            "return document.querySelector(\"[data-test='prediction-status']\").dataset.count;")
        before = count()
        webdriver.click("predict")
        wait("a prediction", 600, lambda: count() != before)
        print(webdriver.test_text("prediction-status"))
        for button in ("export-prediction", "export-history", "export-weights"):
            webdriver.click(button)
        time.sleep(1)
        if webdriver.exists("export-error"):
            failures.append(f"export: {webdriver.test_text('export-error')}")
        wanted = ("prediction.nii.gz", "gdl-lab-history.csv", ".safetensors")
        wait("three downloads", 60, lambda: all(
            any(name.endswith(w) for name in os.listdir(downloads)) for w in wanted))
        for name in sorted(os.listdir(downloads)):
            print(f"downloaded {name}: {check_download(os.path.join(downloads, name))}")

        if options.bad:
            webdriver.upload("#image-file", options.bad)
            webdriver.upload("#label-file", options.bad)
            webdriver.click("load-files")
            wait("the error sentence", 60, lambda: webdriver.exists("load-error"))
            print(f"malformed file: {webdriver.test_text('load-error')}")
        if options.image and options.label:
            webdriver.script("document.getElementById('image-file').value = '';"
                             "document.getElementById('label-file').value = ''; return 0;")
            webdriver.upload("#image-file", options.image)
            webdriver.upload("#label-file", options.label)
            webdriver.click("load-files")
            name = os.path.basename(options.image)
            wait(f"{name} to load", 120, lambda: webdriver.test_text("scan-name") == name)
            print(f"loaded {name}: {webdriver.test_text('scan-dims')}, "
                  f"error shown: {webdriver.test_text('load-error')}")

        foreign = webdriver.script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".filter(n => !n.startsWith(location.origin) && !n.startsWith('blob:')"
            " && !n.startsWith('data:'));")
        print(f"requests outside {origin}: {foreign or 'none'}")
        if foreign:
            failures.append(f"requests left the page: {foreign}")
        errors = [entry for entry in webdriver.console() if entry.get("level") == "SEVERE"]
        for entry in errors:
            print(f"console error: {entry.get('message')}")
        if errors:
            failures.append(f"{len(errors)} console errors")
    finally:
        if webdriver.session:
            webdriver.session_call("DELETE", "")
        driver.terminate()
        server.shutdown()
    if failures:
        raise SystemExit("page check failed: " + "; ".join(failures))
    print("page check passed")


def shoot(webdriver, path, scroll_to=None):
    if scroll_to:
        webdriver.script(f"document.getElementById('{scroll_to}').scrollIntoView(); return 0;")
    else:
        webdriver.script("window.scrollTo(0, 0); return 0;")
    png = base64.b64decode(webdriver.session_call("GET", "/screenshot"))
    with open(path, "wb") as file:
        file.write(png)
    print(f"saved {path}")


def check_download(path):
    data = open(path, "rb").read()
    if path.endswith(".nii.gz"):
        header = gzip.decompress(data)[:348]
        dims = struct.unpack("<8h", header[40:56])
        return f"{len(data)} bytes, NIfTI-1 dims {dims[1:1 + dims[0]]}"
    if path.endswith(".safetensors"):
        length = struct.unpack("<Q", data[:8])[0]
        meta = json.loads(data[8:8 + length])
        tensors = [k for k in meta if k != "__metadata__"]
        return f"{len(data)} bytes, {len(tensors)} tensors, {meta.get('__metadata__')}"
    lines = data.decode().splitlines()
    return f"{len(lines) - 1} rows, columns {lines[0][:80]}…"


def _ready(webdriver):
    try:
        return webdriver.call("GET", "/status")["ready"]
    except OSError:
        return False


if __name__ == "__main__":
    main()
