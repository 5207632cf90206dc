#!/usr/bin/env python3
"""Since training moved into the page's Web Worker (src/worker.rs), this samples only the page's
own thread: what drawing the reports costs, not the step (the worker is not attached).

Where a training step's time goes on the page's main thread, by Chrome's own JS/wasm sampling
profiler (the DevTools `Profiler` domain), while the page trains on its WebGPU adapter.

Serves `dist/` (a `trunk build`), opens the page in headless Chromium like scripts/page_check.py,
takes the small settings when offered, trains past the first steps (shader compilation), then
profiles `--steps` more and prints the self time by function and by kind: our wasm (Rust: burn,
CubeCL, wgpu's web backend), the JS glue wasm-bindgen writes, WebGPU's own API calls (native
functions the page calls), garbage collection, and idle time (waiting for the GPU process).

    scripts/profile_page.py [--dist dist] [--steps 6] [--top 25] [--backend gpu|cpu]
"""
import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from page_check import _ready, serve_with_chromedriver, step_count, wait  # noqa: E402


def cdp(webdriver, command, params=None):
    return webdriver.session_call("POST", "/goog/cdp/execute",
                                  {"cmd": command, "params": params or {}})


def kind_of(frame):
    name, url = frame["functionName"], frame.get("url", "")
    if name in ("(idle)", "(program)", "(garbage collector)", "(root)"):
        return name
    if url.endswith(".wasm") or name.startswith("$") or "wasm-function" in name:
        return "wasm (Rust)"
    if url.endswith(".js"):
        return "JS glue (wasm-bindgen)"
    if not url:
        return "browser built-ins (WebGPU API, DOM)"
    return "other JS"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", default="dist")
    parser.add_argument("--chrome", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--backend", default="gpu", choices=["gpu", "cpu"])
    options = parser.parse_args()

    server, origin, driver, webdriver = serve_with_chromedriver(options.dist, options.chromedriver)
    try:
        wait("chromedriver", 30, lambda: _ready(webdriver))
        webdriver.start(options.chrome, [
            "--enable-unsafe-webgpu", "--headless=new", "--no-sandbox",
            "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--window-size=1400,1800"], "/tmp")
        webdriver.session_call("POST", "/timeouts", {"script": 600000, "pageLoad": 600000})
        webdriver.session_call("POST", "/url", {"url": origin + "/"})
        wait("the device", 180, lambda: webdriver.script(
            "const b = document.querySelector(\"[data-test='play']\");"
            "return b !== null && !b.disabled;"))
        if webdriver.exists("use-small"):
            webdriver.click("use-small")
            wait("the demo scan", 120, lambda: webdriver.exists("scan-summary"))
        if options.backend == "cpu":
            webdriver.script("const s = document.getElementById('backend'); s.value = 'cpu';"
                             "s.dispatchEvent(new Event('change')); return 0;")
        webdriver.click("play")
        wait("the warm-up steps", 600, lambda: step_count(webdriver) >= options.warmup_steps)
        cdp(webdriver, "Profiler.enable")
        cdp(webdriver, "Profiler.setSamplingInterval", {"interval": 200})
        first = step_count(webdriver)
        cdp(webdriver, "Profiler.start")
        started = time.time()
        # The page's "ms / step" readout is the last step's own time (read-back included,
        # predictions not); sample it after each step for a median.
        readouts = {}
        while step_count(webdriver) < first + options.steps:
            if time.time() - started > 600:
                raise SystemExit("the profiled steps did not finish in 600 s")
            step, millis = webdriver.script(
                "const text = id => document.querySelector(`[data-test='${id}']`).innerText;"
                "return [text('step'), text('millis')];")
            try:
                readouts[int(step)] = float(millis)
            except ValueError:
                pass
            time.sleep(0.02)
        profile = cdp(webdriver, "Profiler.stop")["profile"]
        seconds = time.time() - started
        steps = step_count(webdriver) - first
        webdriver.click("pause")
        step_ms = sorted(readouts.values())
        print(f"{options.backend}: profiled {steps} steps in {seconds:.1f} s "
              f"({1000 * seconds / steps:.0f} ms/step wall, predictions included); "
              f"the page's readout over {len(step_ms)} steps: median "
              f"{step_ms[len(step_ms) // 2]:.0f} ms, min {step_ms[0]:.0f}, max {step_ms[-1]:.0f}")
    finally:
        try:
            webdriver.session_call("DELETE", "")
        except Exception:
            pass
        driver.terminate()
        server.shutdown()

    # Self time of each node: its samples × their time deltas.
    nodes = {node["id"]: node for node in profile["nodes"]}
    self_us = collections.Counter()
    for node_id, delta in zip(profile["samples"], profile["timeDeltas"]):
        self_us[node_id] += delta
    total = sum(self_us.values())
    by_kind = collections.Counter()
    by_function = collections.Counter()
    for node_id, micros in self_us.items():
        frame = nodes[node_id]["callFrame"]
        by_kind[kind_of(frame)] += micros
        by_function[(frame["functionName"] or "(anonymous)", kind_of(frame))] += micros
    print(f"\nself time by kind ({total / 1e6:.1f} s sampled):")
    for kind, micros in by_kind.most_common():
        print(f"  {100 * micros / total:5.1f} %  {micros / 1e3 / steps:8.1f} ms/step  {kind}")
    print(f"\ntop {options.top} functions by self time:")
    for (name, kind), micros in by_function.most_common(options.top):
        print(f"  {100 * micros / total:5.1f} %  {micros / 1e3 / steps:8.1f} ms/step  "
              f"{name[:90]}  [{kind}]")


if __name__ == "__main__":
    main()
