#!/usr/bin/env python3
"""Drives headless Chromium through `hrtem serve`'s pages the way a person would and prints
what the DOM showed, as one JSON object (the browser tests assert on it).

    browser-check.py BASE_URL SCREENSHOT_DIR

Talks the Chrome DevTools protocol over --remote-debugging-pipe (file descriptors 3 and 4,
NUL-separated JSON), so it needs nothing but Python's standard library and Debian's chromium.
Every wait is bounded; the whole run takes seconds.
"""
import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


class Browser:
    def __init__(self):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if not exe:
            raise SystemExit("chromium is not installed (scripts/ensure-test-tools.sh installs it)")
        self.profile = tempfile.mkdtemp(prefix="hrtem-chromium-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()

        def wire():
            # Chromium reads commands on fd 3 and writes on fd 4; move the pipe ends out of the
            # way first (either may already be 3 or 4), then into place. The descriptors kept
            # open past this point are the ones pass_fds names.
            high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 100)
            high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 100)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.process = subprocess.Popen(
            [exe, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
             f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=wire,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b""
        self.next_id = 0
        self.session = None
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": False})

    def call(self, method, params=None, timeout=30):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.time() + timeout
        while time.time() < deadline:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buffer += chunk
        raise TimeoutError(method)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate",
                           {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.evaluate(expression):
                    return True
            except RuntimeError:
                pass  # the page is between documents
            time.sleep(0.1)
        return False

    def open(self, url):
        self.call("Page.navigate", {"url": url})
        self.wait_for(f"document.readyState === 'complete' && location.href === {json.dumps(url)}")

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    base, shots = sys.argv[1].rstrip("/"), sys.argv[2]
    os.makedirs(shots, exist_ok=True)
    seen = {}
    browser = Browser()
    try:
        browser.open(base + "/")
        seen["catalog_total"] = browser.evaluate("document.getElementById('result-count').dataset.total")
        seen["catalog_cards"] = browser.evaluate("document.querySelectorAll('.card').length")
        # The grid loads thumbnails lazily; ask for all of them, as scrolling would.
        browser.evaluate("document.querySelectorAll('.card img').forEach(i => i.loading = 'eager'); true")
        browser.wait_for("[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)", 20)
        seen["catalog_thumbnails_loaded"] = browser.evaluate(
            "[...document.querySelectorAll('.card img')].filter(i => i.complete && i.naturalWidth > 0).length")
        browser.screenshot(os.path.join(shots, "catalog.png"))

        # Type a query and submit the form.
        browser.evaluate("document.getElementById('query').value = 'dose ~ 884 +- 20'; "
                         "document.getElementById('run-query').click(); true")
        browser.wait_for("location.search.includes('q=') && document.readyState === 'complete' && "
                         "document.getElementById('result-count') !== null")
        seen["query_total"] = browser.evaluate("document.getElementById('result-count').dataset.total")
        seen["query_cards"] = browser.evaluate("document.querySelectorAll('.card').length")
        seen["query_box"] = browser.evaluate("document.getElementById('query').value")
        browser.screenshot(os.path.join(shots, "query.png"))

        # A mistake: the CLI's message and caret, inline.
        browser.evaluate("document.getElementById('query').value = 'material = \"Au\" and sise = 5'; "
                         "document.getElementById('run-query').click(); true")
        browser.wait_for("document.getElementById('query-error') !== null")
        seen["error_text"] = browser.evaluate("document.getElementById('query-error').innerText")
        browser.screenshot(os.path.join(shots, "query-error.png"))

        # Open the first frame of the earlier query from its card.
        browser.open(base + "/?q=dose+~+884+%2B-+20")
        browser.evaluate("document.querySelector('.card').click(); true")
        browser.wait_for("location.pathname.startsWith('/frames/') && document.readyState === 'complete'")
        seen["frame_path"] = browser.evaluate("location.pathname")
        seen["viewer_ready"] = browser.wait_for("document.getElementById('viewer').dataset.ready === 'true'", 40)
        browser.wait_for("[...document.querySelectorAll('#tiles img')].every(i => i.complete && i.naturalWidth > 0)", 20)
        seen["tiles"] = browser.evaluate("document.querySelectorAll('#tiles img').length")
        seen["tiles_loaded"] = browser.evaluate(
            "[...document.querySelectorAll('#tiles img')].filter(i => i.complete && i.naturalWidth > 0).length")
        seen["overlay_tiles"] = browser.evaluate("document.querySelectorAll('#overlay img').length")
        seen["overlay_display_before"] = browser.evaluate("getComputedStyle(document.getElementById('overlay')).display")
        seen["fields_rows"] = browser.evaluate("document.querySelectorAll('#fields tr').length")
        seen["tags_rows"] = browser.evaluate("document.querySelectorAll('#tags tr').length")
        browser.screenshot(os.path.join(shots, "frame.png"))

        browser.evaluate("document.getElementById('overlay-toggle').click(); true")
        seen["overlay_state_after"] = browser.evaluate("document.getElementById('overlay-state').textContent")
        seen["overlay_display_after"] = browser.evaluate("getComputedStyle(document.getElementById('overlay')).display")
        browser.screenshot(os.path.join(shots, "frame-no-label.png"))
        browser.evaluate("document.getElementById('overlay-toggle').click(); true")
        seen["overlay_state_again"] = browser.evaluate("document.getElementById('overlay-state').textContent")

        browser.evaluate("document.getElementById('zoom-one').click(); true")
        seen["zoom_one"] = browser.evaluate("document.getElementById('zoom-level').textContent")
        seen["zoom_one_level"] = browser.evaluate("document.getElementById('zoom-level').dataset.level")
        browser.evaluate("document.getElementById('zoom-fit').click(); true")
        seen["zoom_fit_level"] = browser.evaluate("document.getElementById('zoom-level').dataset.level")

        for page in ["datasets", "models", "experiments"]:
            browser.open(f"{base}/{page}")
            seen[f"{page}_heading"] = browser.evaluate("document.querySelector('h1').textContent")
            browser.screenshot(os.path.join(shots, f"{page}.png"))
    finally:
        browser.close()
    print(json.dumps(seen, sort_keys=True))


if __name__ == "__main__":
    main()
