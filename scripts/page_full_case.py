#!/usr/bin/env python3
"""A full-size case through the Trunk-built page, in headless Chromium, on the CPU backend: drop
the image and its label map, wait for the crop/resample sentence, train `--steps` steps, predict
the whole volume, export the prediction; the time of each stage and the peak memory of all of
Chromium's processes (the sum of their proportional set sizes, sampled every 0.2 s).

    ./x cli phantom --dims 240x240x155 --brats --image /tmp/t1.nii.gz --label /tmp/seg.nii.gz
    scripts/page_full_case.py --dist dist --image /tmp/t1.nii.gz --label /tmp/seg.nii.gz

Several cases at once (every file of DIR's case folders dropped together; the last case is held
out, and the prediction checked is the first training case's):

    ./x cli phantom --dims 240x240x155 --brats --modalities 4 --cases 4 --out /tmp/cases
    scripts/page_full_case.py --dist dist --cases /tmp/cases

Prints one line per stage and a Markdown table row.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from page_check import (  # noqa: E402
    WebDriver, _ready, check_prediction, drop_files, serve, step_count, wait)


def chromium_pss(root_pid):
    """The proportional set size of each of `root_pid`'s descendants (Chromium's processes), by
    its kind (`--type=renderer`, …; the browser process has none)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
        except (OSError, ValueError, IndexError):
            pass
    sizes, todo = {}, list(children.get(root_pid, []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                args = cmdline.read().split(b"\0")
            kind = next((a[7:].decode() for a in args if a.startswith(b"--type=")), "browser")
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        sizes[f"{kind} {pid}"] = int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return sizes


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dist", default="dist")
    parser.add_argument("--chrome", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--image")
    parser.add_argument("--label")
    parser.add_argument("--cases", help="a folder of case folders, dropped at once")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--settings", default="backend=cpu&eval_every=0")
    options = parser.parse_args()
    if options.cases:
        folders = sorted(os.path.join(options.cases, d) for d in os.listdir(options.cases))
        paths = [os.path.join(f, n) for f in folders if os.path.isdir(f) for n in sorted(os.listdir(f))]
        # The first case's first channel in BraTS's order names the scan.
        first = sorted(p for p in paths if p.startswith(folders[0] + os.sep))
        options.image = next(p for p in first if p.endswith("_t1.nii.gz"))
    elif not (options.image and options.label):
        raise SystemExit("give --image and --label, or --cases")
    else:
        paths = [options.image, options.label]

    server = serve(options.dist)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    port = 9515 + os.getpid() % 1000
    driver = subprocess.Popen([options.chromedriver, f"--port={port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    webdriver = WebDriver(f"http://127.0.0.1:{port}")
    downloads = tempfile.mkdtemp()
    peak = [0]
    # The processes' sizes when the sum peaked, and the peak within each stage.
    at_peak = [{}]
    stage_peak = [0]
    sampling = [True]

    def sample():
        while sampling[0]:
            sizes = chromium_pss(driver.pid)
            total = sum(sizes.values())
            stage_peak[0] = max(stage_peak[0], total)
            if total > peak[0]:
                peak[0], at_peak[0] = total, sizes
            time.sleep(0.2)
    sampler = threading.Thread(target=sample, daemon=True)
    stages = {}
    stage_peaks = {}

    def stage_done(name, seconds):
        stages[name] = seconds
        stage_peaks[name] = stage_peak[0]
        stage_peak[0] = 0
    try:
        wait("chromedriver", 30, lambda: _ready(webdriver))
        webdriver.start(options.chrome, [
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-background-networking", "--window-size=1400,1800"], downloads)
        webdriver.session_call("POST", "/timeouts", {"script": 600000, "pageLoad": 600000})
        webdriver.session_call("POST", "/chromium/send_command", {
            "cmd": "Page.setDownloadBehavior",
            "params": {"behavior": "allow", "downloadPath": downloads}})
        sampler.start()
        webdriver.session_call("POST", "/url", {
            # Two epochs: the run does not finish (and predict by itself) at the last step timed.
            "url": f"{origin}/#{options.settings}&epochs=2&steps_per_epoch={options.steps}"})
        wait("the page", 120, lambda: webdriver.exists("dropzone"))
        started = time.time()
        files = []
        for path in paths:
            with open(path, "rb") as file:
                files.append((os.path.basename(path), file.read()))
        drop_files(webdriver, files)
        del files
        name = os.path.basename(options.image)
        wait("the scan", 600, lambda: webdriver.test_text("scan-name") == name
             or webdriver.exists("load-error"))
        if webdriver.exists("load-error"):
            raise SystemExit(f"load failed: {webdriver.test_text('load-error')}")
        # The sentence of this scan (the demo's is there before): it names the scan's dims.
        wait("the crop/resample sentence", 600, lambda: "240×240×155" in (
            webdriver.test_text("preparation") or "") or not options.cases and
            webdriver.exists("preparation"))
        stage_done("load + crop/resample", time.time() - started)
        print(f"{webdriver.test_text('preparation')}", flush=True)
        dims = [int(d) for d in webdriver.test_text("scan-dims").split("×")]

        started = time.time()
        webdriver.click("play")
        wait(f"{options.steps} steps", 1800, lambda: step_count(webdriver) >= options.steps
             or webdriver.exists("train-error"))
        if webdriver.exists("train-error"):
            raise SystemExit(f"training failed: {webdriver.test_text('train-error')}")
        stage_done(f"{options.steps} steps", time.time() - started)
        webdriver.click("pause")
        wait("the pause", 300, lambda: webdriver.script(
            "return !document.querySelector(\"[data-test='play']\").disabled;"))
        count = lambda: webdriver.script(  # noqa: E731
            "return document.querySelector(\"[data-test='prediction-status']\").dataset.count;")
        before = count()
        started = time.time()
        webdriver.click("predict")
        wait("the prediction", 1800, lambda: count() != before)
        stage_done("whole-volume prediction", time.time() - started)
        print(webdriver.test_text("prediction-status"), flush=True)

        started = time.time()
        webdriver.press("export-prediction")
        found = []
        wait("the download", 300, lambda: found.extend(
            n for n in os.listdir(downloads) if n.endswith(".nii.gz")) or found)
        time.sleep(0.5)
        stage_done("export", time.time() - started)
        problems = check_prediction(os.path.join(downloads, found[0]), dims,
                                    reference=options.image)
        for problem in problems:
            print(f"problem: {problem}")
    finally:
        sampling[0] = False
        if webdriver.session:
            webdriver.session_call("DELETE", "")
        driver.terminate()
        server.shutdown()
    for stage, seconds in stages.items():
        print(f"{stage}: {seconds:.1f} s, peak {stage_peaks[stage] / 2**30:.2f} GiB")
    print("at the peak: " + ", ".join(
        f"{kind} {size / 2**20:.0f} MiB" for kind, size in sorted(at_peak[0].items(),
                                                                  key=lambda kv: -kv[1])))
    print(f"peak memory of Chromium's processes (PSS): {peak[0] / 2**30:.2f} GiB")
    print("| " + " | ".join(f"{s:.1f}" for s in stages.values()) + f" | {peak[0] / 2**30:.2f} |")
    if problems:
        raise SystemExit("the prediction does not match the input's geometry")


if __name__ == "__main__":
    main()
