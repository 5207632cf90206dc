#!/usr/bin/env python3
"""What a person gets from the Trunk-built page, measured in headless Chromium: how soon the page
takes input, how long the page's own longest task is while it trains (training runs in the
worker), and the step time, for each setting and backend asked for.

    scripts/page_bench.py --dist dist [--dist-main-thread OLD_DIST | --baseline [NAME=]OLD_DIST ...]
                          [--steps 30] [--cases 3,5]

For each case it opens `#<settings>&eval_every=10`, presses Play, waits for `--steps` steps (so at
least one whole-volume prediction falls inside), and reads: the time from navigation to the first
enabled button, the longest main-thread task (PerformanceObserver `longtask`, from pressing Play
on), and the median ms/step the page shows over the steps after the first. With
`--dist-main-thread` (a build of the page from before the worker, where training ran on the
page's thread) the same cases run there too, in the same session, for the step-time ratio;
`--baseline` does the same for any other build (e.g. before a kernel change); given several times
(each `NAME=PATH` to name its rows), every build runs each case in turn.
Prints one table in Markdown.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from page_check import _ready, serve, step_count, wait, WebDriver  # noqa: E402

import subprocess  # noqa: E402

WATCH = (
    "window.gdlLongest = 0; new PerformanceObserver(l => { for (const e of l.getEntries())"
    " window.gdlLongest = Math.max(window.gdlLongest, e.duration); })"
    ".observe({type: 'longtask', buffered: true});"
    # The first enabled button, in ms since navigation.
    "new MutationObserver((_, o) => { const b = document.querySelector('button:not([disabled])');"
    " if (b && window.gdlFirstButton === undefined) { window.gdlFirstButton = performance.now();"
    " o.disconnect(); } }).observe(document, {childList: true, subtree: true});"
)

CASES = [
    ("defaults, CPU", "backend=cpu"),
    ("small, CPU", "model=simple&patch=16&batch=1&steps_per_epoch=10&demo_size=32&backend=cpu"),
    ("small, WebGPU (SwiftShader)",
     "model=simple&patch=16&batch=1&steps_per_epoch=10&demo_size=32&backend=gpu"),
    ("small, auto", "model=simple&patch=16&batch=1&steps_per_epoch=10&demo_size=32"),
    ("U-Net, 1 × 16³, WebGPU (SwiftShader)",
     "patch=16&batch=1&steps_per_epoch=10&demo_size=32&backend=gpu"),
    # The slow notice's small settings since 2026-12-07 (`PageState::small`).
    ("small (Target, 2 × 16³), CPU",
     "model=target&patch=16&batch=2&steps_per_epoch=10&demo_size=32&backend=cpu"),
    # The same two on one worker (no helper workers splitting the batch), for the speed-up.
    ("defaults, CPU, one worker", "backend=cpu&cpu_workers=1"),
    ("small (Target, 2 × 16³), CPU, one worker",
     "model=target&patch=16&batch=2&steps_per_epoch=10&demo_size=32&backend=cpu&cpu_workers=1"),
    # The page journey's heavier starts (`--slow-start`), which must meet the slow notice.
    ("defaults at batch 8, CPU", "backend=cpu&batch=8"),
    ("defaults at batch 12, CPU", "backend=cpu&batch=12"),
]


def measure(webdriver, origin, settings, steps):
    # A new page for each case (a link that differs only in its hash would not reload it, and
    # a page-only setting such as cpu_workers keeps the run it has).
    webdriver.session_call("POST", "/url", {"url": "about:blank"})
    webdriver.session_call("POST", "/url", {"url": f"{origin}/#{settings}&eval_every=10"})
    wait("the page", 120, lambda: webdriver.script(
        "return window.gdlFirstButton !== undefined;"))
    first_button = webdriver.script("return window.gdlFirstButton;")
    wait("the demo and the device", 300, lambda: webdriver.script(
        "const b = document.querySelector(\"[data-test='play']\");"
        "return b !== null && !b.disabled && document.querySelector(\"[data-test='scan-summary']\")"
        " !== null;"))
    webdriver.script("window.gdlLongest = 0; return 0;")
    webdriver.click("play")
    millis = {}
    started = time.time()

    def enough():
        done = step_count(webdriver)
        text = webdriver.test_text("millis") or ""
        if done > 1 and text.replace(".", "").isdigit():
            millis[done] = float(text)
        return done >= steps
    wait(f"{steps} steps", 1800, enough)
    webdriver.click("pause")
    # The last whole-volume prediction's hard Dice, as the slices' status line says it.
    prediction = webdriver.test_text("prediction-status") or ""
    return {
        "prediction": prediction,
        "first_button_ms": first_button,
        "longest_task_ms": webdriver.script("return window.gdlLongest;"),
        "median_step_ms": statistics.median(millis.values()) if millis else float("nan"),
        "wall_s": time.time() - started,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dist", default="dist")
    parser.add_argument("--dist-main-thread")
    parser.add_argument("--baseline", action="append", default=[],
                        help="another build to run the same cases on ([NAME=]PATH; repeatable)")
    parser.add_argument("--chrome", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--cases", default="all", help="comma-separated case numbers (from 1)")
    options = parser.parse_args()
    cases = CASES if options.cases == "all" else [
        CASES[int(i) - 1] for i in options.cases.split(",")]

    builds = [("worker", options.dist)]
    if options.dist_main_thread:
        builds.append(("main thread", options.dist_main_thread))
    for baseline in options.baseline:
        name, _, path = baseline.rpartition("=")
        builds.append((name or "baseline", path))
    servers = {name: serve(path) for name, path in builds}
    port = 9515 + os.getpid() % 1000
    driver = subprocess.Popen([options.chromedriver, f"--port={port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    webdriver = WebDriver(f"http://127.0.0.1:{port}")
    rows = []
    try:
        wait("chromedriver", 30, lambda: _ready(webdriver))
        webdriver.start(options.chrome, [
            "--enable-unsafe-webgpu", "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-background-networking", "--window-size=1400,1800"],
            tempfile.mkdtemp())
        webdriver.session_call("POST", "/timeouts", {"script": 600000, "pageLoad": 600000})
        webdriver.session_call("POST", "/chromium/send_command", {
            "cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": WATCH}})
        for label, settings in cases:
            for build, _ in builds:
                if build == "main thread" and "backend=" not in settings:
                    continue  # that page had no auto choice
                server = servers[build]
                origin = f"http://127.0.0.1:{server.server_address[1]}"
                result = measure(webdriver, origin, settings, options.steps)
                rows.append((label, build, result))
                print(f"{label} [{build}]: {result}", flush=True)
    finally:
        if webdriver.session:
            webdriver.session_call("DELETE", "")
        driver.terminate()
        for server in servers.values():
            server.shutdown()
    print("\n| case | build | first enabled button (ms) | longest main-thread task (ms) "
          "| median step (ms) |\n|---|---|---|---|---|")
    for label, build, r in rows:
        print(f"| {label} | {build} | {r['first_button_ms']:.0f} | {r['longest_task_ms']:.0f} "
              f"| {r['median_step_ms']:.0f} |")


if __name__ == "__main__":
    main()
