"""The per-run HTML report, rendered in a real browser (Debian's ``chromium``, headless).

The page is checked through the DevTools protocol over a pipe (``--remote-debugging-pipe``: no port, no
network): it loads, no console error / uncaught exception / failed resource is logged, every embedded image
decodes, and a screenshot is not blank (pixel variance). The checker itself is shown to catch a page with
errors and a blank page. Figures in the page are compared with the truth of the synthetic run fixture
(``tests/_run_fixture.py``) and, for one real ``exo run``, with ``exo report --json``.

Chromium is required, not optional: ``make test`` installs it (``apt-get install -y chromium``); a machine
without it fails here with that instruction.
"""
from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _run_fixture import STAGES, write_run  # noqa: E402
from _support import REPO, exo_cmd  # noqa: E402

from runtime.report.html import NOT_RECORDED, build_html, write_html_report  # noqa: E402


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    pytest.fail("chromium is not installed: the HTML report is tested in a real browser. "
                "Install it with: apt-get install -y chromium   (make test does this)")


class Browser:
    """Headless chromium driven over the DevTools protocol on fds 3/4 (NUL-separated JSON)."""

    def __init__(self, profile_dir: Path, width: int = 1200, height: int = 900) -> None:
        cmd_r, self._cmd_w = os.pipe()
        self._resp_r, resp_w = os.pipe()

        def to_3_4() -> None:
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(resp_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        # --no-sandbox: chromium refuses to run as root otherwise (CI containers); --disable-dev-shm-usage: small
        # /dev/shm in containers crashes the renderer on large pages
        args = [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--remote-debugging-pipe",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
                "--disable-background-networking", "--disable-component-update", "--mute-audio",
                f"--user-data-dir={profile_dir}", f"--window-size={width},{height}", "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, pass_fds=(cmd_r, resp_w, 3, 4), preexec_fn=to_3_4)
        os.close(cmd_r)
        os.close(resp_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        self.width, self.height = width, height

    def _read(self, timeout: float) -> dict | None:
        while b"\0" not in self._buf:
            r, _, _ = select.select([self._resp_r], [], [], timeout)
            if not r:
                return None
            chunk = os.read(self._resp_r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium closed the DevTools pipe (exit code {self.proc.poll()})")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self._read(max(0.0, deadline - time.monotonic()))
            if m is None:
                break
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)
        raise TimeoutError(f"{method}: no answer from chromium in {timeout} s")

    def wait_event(self, name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == name for e in self.events):
            return True
        while time.monotonic() < deadline:
            m = self._read(max(0.0, deadline - time.monotonic()))
            if m is None:
                return False
            self.events.append(m)
            if m.get("method") == name:
                return True
        return False

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            m = self._read(max(0.0, end - time.monotonic()))
            if m is None:
                return
            self.events.append(m)

    def load(self, url: str) -> dict:
        """Open *url* in a new tab; return errors, broken images, screenshot PNG bytes and the page text."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for m in ("Runtime.enable", "Log.enable", "Page.enable"):
            self.call(m, session=s)
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False}, session=s)
        self.events.clear()
        nav = self.call("Page.navigate", {"url": url}, session=s)
        if nav.get("errorText"):
            raise RuntimeError(f"navigation to {url} failed: {nav['errorText']}")
        loaded = self.wait_event("Page.loadEventFired", 30.0)
        self.drain(0.5)  # late errors (image decode, timers)
        broken = self.call("Runtime.evaluate", {"expression": "Array.from(document.images).filter("
                                                "i => !(i.complete && i.naturalWidth > 0)).length",
                                                "returnByValue": True}, session=s)["result"]["value"]
        n_images = self.call("Runtime.evaluate", {"expression": "document.images.length", "returnByValue": True},
                             session=s)["result"]["value"]
        text = self.call("Runtime.evaluate", {"expression": "document.body ? document.body.innerText : ''",
                                              "returnByValue": True}, session=s)["result"]["value"]
        shot = base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"}, session=s)["data"])
        errors = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                errors.append("exception: " + p["exceptionDetails"].get("text", "") +
                              str(p["exceptionDetails"].get("exception", {}).get("description", "")))
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", "")))
                                                                          for a in p.get("args", [])))
            elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(f"log ({p['entry'].get('source')}): {p['entry'].get('text')} {p['entry'].get('url', '')}")
        self.call("Target.closeTarget", {"targetId": target})
        return {"loaded": loaded, "errors": errors, "broken_images": broken, "images": n_images, "png": shot,
                "text": text}

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5.0)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._resp_r)


def pixel_stats(png: bytes) -> tuple[float, float]:
    """(grey-level standard deviation 0..255, fraction of pixels that are not near-white) of a PNG."""
    from PIL import Image

    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    return float(grey.std()), float(np.mean(grey < 240))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The synthetic run with what ``exo run`` writes before the page: ``write_plots`` into ``plots/``."""
    from runtime.report.summary import load_series, write_plots

    truth = write_run(tmp_path_factory.mktemp("run") / "r")
    write_plots(load_series(truth.run_dir), truth.run_dir / "plots")
    doc, _pngs, summary = build_html(truth.run_dir)
    page = truth.run_dir / "report.html"
    page.write_text(doc, encoding="utf-8")
    return truth, page, summary


def test_checker_catches_errors_and_blank_pages(browser, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><h1>x</h1><img src='missing.png'>"
                   "<script>console.error('boom'); undefined_function();</script></body></html>")
    r = browser.load(bad.as_uri())
    assert r["loaded"]
    text = "\n".join(r["errors"])
    assert "boom" in text and "undefined_function" in text and "missing.png" in text, r["errors"]
    assert r["broken_images"] == 1
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body style='background:#fff'></body></html>")
    r = browser.load(blank.as_uri())
    assert r["errors"] == []
    std, ink = pixel_stats(r["png"])
    assert std < 1.0 and ink == 0.0


def test_report_renders_in_chromium_without_errors(browser, full_run):
    truth, page, summary = full_run
    r = browser.load(page.as_uri())
    assert r["loaded"], "the page never fired its load event"
    assert r["errors"] == [], r["errors"]
    assert r["images"] >= 9 and r["broken_images"] == 0
    std, ink = pixel_stats(r["png"])
    assert std > 20.0 and ink > 0.01, (std, ink)
    assert "Latency and performance" in r["text"] and "Faults and their timeline" in r["text"]


def test_page_is_self_contained_and_pngs_beside_it(full_run):
    truth, page, summary = full_run
    doc = page.read_text()
    assert "<script" not in doc.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:[a-z]+:)?//""", doc, re.I)
    assert not re.search(r"url\(", doc, re.I)
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', doc)
    pngs = sorted((page.parent / "plots").glob("*.png"))
    names = {p.stem for p in pngs}
    for want in ("joint_angles", "grf_cop", "knee_moments", "activations", "synergies", "kcf", "torque_tracking",
                 "stage_latency", "faults_timeline", "latency", "torque", "command_age"):
        assert want in names
    on_disk = {base64.b64encode(p.read_bytes()).decode() for p in pngs}
    assert set(embedded) == on_disk and len(embedded) == len(pngs)   # every PNG of plots/ is on the page, once


def test_every_plot_of_the_run_is_shown_with_a_caption(full_run, tmp_path):
    """Issue 15: ``command_age.png``, ``latency.png``, ``torque.png`` (and any other PNG in plots/) appear as images,
    each in a <figure> with a caption naming the file; a PNG the page does not know gets a generic caption."""
    truth, page, _summary = full_run
    doc = page.read_text()
    figures = re.findall(r'<figure><img alt="([^"]+)" src="data:image/png;base64,[^"]+"><figcaption>([^<]+)'
                         r'<code>([^<]+)</code></figcaption></figure>', doc)
    assert sorted(f"{alt}.png" for alt, _cap, _name in figures) == sorted(
        p.name for p in (page.parent / "plots").glob("*.png"))
    captions = {name: cap for _alt, cap, name in figures}
    assert "Age of the command at every bus write" in captions["command_age.png"]
    assert "Wake-up lateness" in captions["latency.png"] and "requested and commanded" in captions["torque.png"]
    assert doc.count("<img") == len(figures)
    # a run folder with an extra plot (copied in by hand) and the page built elsewhere: still shown
    run = tmp_path / "copy"
    shutil.copytree(truth.run_dir, run)
    shutil.copy(run / "plots" / "latency.png", run / "plots" / "my_extra.png")
    doc2, pngs2, _ = build_html(run, tmp_path / "elsewhere" / "plots")
    assert "plot written by this run: my_extra" in doc2
    assert {p.name for p in pngs2} >= {"my_extra.png", "command_age.png", "grf_cop.png"}


def _streams(n: int = 200):
    t_ns = [k * 10_000_000 for k in range(n)]
    x = np.linspace(0.0, 1.2, n)            # along the walk: metres
    y = 0.1 + 0.01 * np.sin(np.arange(n) / 5)   # across: centimetres
    grf = {"type": "geometry_msgs/msg/WrenchStamped", "log_ns": t_ns,
           "xyz": [(0.0, 0.0, 700.0 + k) for k in range(n)]}
    cop = {"type": "geometry_msgs/msg/PointStamped", "log_ns": t_ns, "xyz": list(zip(x, y, np.zeros(n)))}
    return grf, cop, x, y


def test_cop_x_and_y_have_their_own_axes_and_legends_sit_beside_the_data():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from runtime.report.html import draw_grf_cop

    grf, cop, x, y = _streams()
    fig = plt.figure(figsize=(9.5, 7.0))
    try:
        axes = draw_grf_cop(fig, {"r": ("/exo/estimation/grf/r", grf), "l": (None, None)},
                            {"r": ("/exo/estimation/cop/r", cop), "l": (None, None)}, 0)
        assert set(axes) == {"grf", "cop_x", "cop_y"} and len(fig.axes) == 3
        assert axes["cop_x"] is not axes["cop_y"]
        (lx,), (ly,) = axes["cop_x"].get_lines(), axes["cop_y"].get_lines()
        np.testing.assert_array_equal(lx.get_ydata(), x)
        np.testing.assert_array_equal(ly.get_ydata(), y)
        # y is readable: its own axis spans centimetres, not the metres of x
        lo, hi = axes["cop_y"].get_ylim()
        assert hi - lo < 0.1 and lo < y.min() and hi > y.max()
        fig.tight_layout()
        fig.canvas.draw()
        for ax in axes.values():
            leg = ax.get_legend()
            assert leg is not None
            assert leg.get_window_extent().x0 >= ax.get_window_extent().x1   # beside, not over the curves
    finally:
        plt.close(fig)


def test_figures_match_the_fixture_truth(full_run):
    truth, page, summary = full_run
    doc = page.read_text()
    for stage in STAGES:
        d = truth.stage_durations_s[stage]
        p50, p99 = np.percentile(d, [50, 99]) * 1e3
        assert re.search(rf"<td>{stage}</td><td>{p50:.3f}</td><td>{p99:.3f}</td><td>{d.max() * 1e3:.3f}</td>", doc), stage
    assert f"<td>kam_r</td><td>0.000</td><td>{truth.kam_peak_pct:.3f}</td>" in doc
    assert f"<td>medial</td><td>400.000</td><td>{truth.kcf_medial_peak_n:.3f}</td>" in doc
    fault = re.search(r"<td>([0-9.]+)</td><td>safety</td><td>overtorque</td>", doc)
    assert fault and abs(float(fault.group(1)) - truth.fault_t_s) < 1e-3
    # each figure says which process and what it is (the fixture's summary.json has the old RUSAGE_CHILDREN key)
    assert ("peak memory: estimation process (the session&#x27;s own process: its VmHWM): 412.5 MB; largest child by "
            "getrusage(RUSAGE_CHILDREN).ru_maxrss") in doc
    assert "not the child&#x27;s own): 96.2 MB" in doc
    assert "TensorRT not available" in doc
    # end to end: each frame's command reaches the bus at the first 2 ms torque cycle after it is ready
    e2e = summary["performance"]["end_to_end_s"]
    lat = truth.pipeline_latency_s
    assert e2e["count"] == lat.size
    assert np.percentile(lat, 50) <= e2e["p50"] <= np.percentile(lat, 50) + 2.1e-3
    assert lat.max() <= e2e["max"] <= lat.max() + 2.1e-3
    assert summary["performance"]["frames_over_budget"] >= int(np.sum(lat > 1 / 60))
    assert summary["torque_tracking_nm"]["p50"] == pytest.approx(0.0044, abs=1e-9)
    assert summary["torque"]["peak_commanded_nm"][0] == pytest.approx(truth.commanded_peak_nm, abs=1e-9)


def test_absent_topics_are_named_not_recorded(tmp_path, browser):
    truth = write_run(tmp_path / "r", seconds=1.0, with_estimation_topics=False)
    page = write_html_report(truth.run_dir)
    doc = page.read_text()
    for topic in ("/exo/estimation/joint_angles", "/exo/estimation/knee_moments", "/exo/estimation/activations",
                  "/exo/estimation/synergies", "/exo/estimation/kcf", "/exo/estimation/grf/r", "/exo/estimation/cop/l"):
        assert re.search(rf"{NOT_RECORDED}: [^<]*{re.escape(topic)}", doc), topic
    r = browser.load(page.as_uri())
    assert r["errors"] == [] and r["broken_images"] == 0


def test_real_run_report_html_command(tmp_path, browser):
    out = tmp_path / "run"
    cfg = REPO / "launch" / "config"
    run = subprocess.run(exo_cmd() + ["run", "--seconds", "2", "--out", str(out), "--config", str(cfg / "device.yaml"),
                                      "--subject", str(cfg / "subject.yaml"), "--calibration",
                                      str(cfg / "calibration.yaml")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    rep = subprocess.run(exo_cmd() + ["report-html", str(out), "--json"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert rep.returncode == 0, rep.stderr
    summary = json.loads(rep.stdout)
    page = Path(summary["html"])
    assert page == out / "report.html" and page.is_file()
    plain = json.loads(subprocess.run(exo_cmd() + ["report", str(out), "--json", "--no-plots"], cwd=REPO,
                                      capture_output=True, text=True, timeout=120).stdout)
    est = plain["loops"]["estimation"]
    doc = page.read_text()
    assert f"<td>estimation</td><td>{est['rate_hz']:.3f}</td><td>{est['cycles']}</td>" in doc
    assert summary["performance"]["end_to_end_s"]["count"] > 60
    r = browser.load(page.as_uri())
    assert r["errors"] == [] and r["broken_images"] == 0
    assert pixel_stats(r["png"])[0] > 20.0


def test_report_html_bad_input_exit_2(tmp_path):
    r = subprocess.run(exo_cmd() + ["report-html", str(tmp_path / "none")], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "run = " in r.stderr and "none" in r.stderr


def test_report_links_the_subjects_trend_plots(full_run, tmp_path):
    """Issue 10: the HTML report links the clinical trend plots of `exo trend --out DIR` (relative links that resolve),
    and a missing trend folder is an error naming it."""
    truth, _page, _summary = full_run
    trend = tmp_path / "trend"
    trend.mkdir()
    for metric in ("peak_kam", "peak_kcf_total"):
        (trend / f"GC6_DM_{metric}.png").write_bytes(base64.b64decode(
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="))
    doc, _pngs, _ = build_html(truth.run_dir, tmp_path / "page" / "plots", trend_dir=trend)
    links = re.findall(r'<a href="([^"#]+\.png)">', doc)
    assert len(links) == 2
    assert all((tmp_path / "page" / link).resolve().is_file() for link in links)
    assert 'href="#trends"' in doc
    with pytest.raises(FileNotFoundError, match="trend_dir"):
        build_html(truth.run_dir, tmp_path / "page2" / "plots", trend_dir=tmp_path / "missing")
