#!/usr/bin/env python3
"""Serve the built page on 127.0.0.1, train in headless Chromium, save a screenshot.

Speaks the W3C WebDriver protocol to chromedriver over HTTP with the standard library: the
handful of calls needed here do not justify a Selenium install.
"""
import argparse
import base64
import functools
import http.server
import json
import socket
import subprocess
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

    def start(self, chrome, args):
        capabilities = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chrome, "args": args}}}}
        self.session = self.call("POST", "/session", capabilities)["sessionId"]

    def find(self, css):
        found = self.session_call("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def text(self, css):
        return self.session_call("GET", f"/element/{self.find(css)}/text")

    def script(self, source):
        return self.session_call("POST", "/execute/sync", {"script": source, "args": []})


def wait(what, timeout, condition):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise SystemExit(f"screenshot: timed out waiting for {what}")
        time.sleep(5)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dist", default="dist")
    parser.add_argument("--chrome", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--out", default="docs/screenshot.png")
    parser.add_argument("--steps", type=int, default=8, help="steps to wait for before the shot")
    parser.add_argument("--no-webgpu", action="store_true",
                        help="start Chromium without WebGPU, to show the CPU fallback")
    options = parser.parse_args()

    server = serve(options.dist)
    page = f"http://127.0.0.1:{server.server_address[1]}/"
    driver_port = free_port()
    driver = subprocess.Popen([options.chromedriver, f"--port={driver_port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    webdriver = WebDriver(f"http://127.0.0.1:{driver_port}")
    try:
        wait("chromedriver", 30, lambda: _ready(webdriver))
        webgpu = ["--disable-webgpu"] if options.no_webgpu else ["--enable-unsafe-webgpu"]
        webdriver.start(options.chrome, webgpu + [
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-quic",
            "--window-size=1200,720", "--hide-scrollbars"])
        # A software adapter can keep the page busy for many seconds while it compiles kernels.
        webdriver.session_call("POST", "/timeouts", {"script": 600000, "pageLoad": 600000})
        webdriver.session_call("POST", "/url", {"url": page})
        wait("the device", 120, lambda: webdriver.script(
            "const b = document.querySelector(\"[data-test='train']\");"
            "return b !== null && !b.disabled;"))
        webdriver.script("document.querySelector(\"[data-test='train']\").click(); return 0;")
        started = time.time()

        def trained_enough():
            step = _int(webdriver.text("[data-test='step']"))
            print(f"  {time.time() - started:5.0f} s: step {step}, "
                  f"status {webdriver.text('[data-test=status]')!r}", flush=True)
            return step >= options.steps

        wait(f"{options.steps} steps", 600, trained_enough)
        png = base64.b64decode(webdriver.session_call("GET", "/screenshot"))
        with open(options.out, "wb") as file:
            file.write(png)
        print(f"saved {options.out} at step {webdriver.text('[data-test=step]')}, "
              f"loss {webdriver.text('[data-test=loss]')}")
    finally:
        if webdriver.session:
            webdriver.session_call("DELETE", "")
        driver.terminate()
        server.shutdown()


def _ready(webdriver):
    try:
        return webdriver.call("GET", "/status")["ready"]
    except OSError:
        return False


def _int(text):
    try:
        return int(text)
    except ValueError:
        return 0


if __name__ == "__main__":
    main()
