"""The plan page: one static file, nothing external, the plan, the charts and the flags on it;
rendered in headless Chromium (skipped, saying so, where no browser is installed)."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from analysis.cli import main
from analysis.plan_page import export_flags, plan_page, pmc_frame

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "shipped"
U01 = ROOT / "data" / "real" / "whoop" / "u01"
PHONE_WIDTH = 390


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[dict, str, Path]:
    from agents.recommend import plan_details

    details = plan_details(str(MODEL_DIR), [str(U01)], days=7, seed=0)
    path = tmp_path_factory.mktemp("page") / "plan.html"
    path.write_text(plan_page(details.plan, details), encoding="utf-8")
    return details.plan, path.read_text(encoding="utf-8"), path


def test_the_page_is_one_self_contained_file(page):
    _, text, _ = page
    assert text.startswith("<!DOCTYPE html>")
    assert 'name="viewport"' in text
    # nothing fetched from anywhere: no links, no scripts, every image inline
    assert not re.search(r"(href|src)=\"(?!data:)", text)
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', text)) == 3


def test_the_page_shows_the_plan_with_its_reasons_and_the_flags(page):
    plan, text, _ = page
    for day in plan["days"]:
        assert f"<b>{day['session'].replace('_', ' ')}</b>" in text
        assert f"{pd.Timestamp(day['date']):%a %d %b}" in text
    assert "This morning:" in text and plan["days"][0]["why"].split(",")[0] in text
    assert "PMC: ATL, CTL and TSB with the 7-day projection" in text
    assert "HRV (RMSSD) with the normal band and forecast intervals" in text
    assert "Resting heart rate with the normal band" in text
    assert "<h2>Flags</h2>" in text


def test_the_pmc_projects_the_planned_loads():
    from physiology_model.data.loaders import load_exports

    history = load_exports([str(U01)]).frame
    rest = pmc_frame(history, [0.0] * 7)
    hard = pmc_frame(history, [300.0] * 7)
    assert rest["planned"].sum() == 7 and hard["planned"].sum() == 7
    ahead = rest["planned"].to_numpy()
    assert (hard.loc[ahead, "atl"] > rest.loc[ahead, "atl"]).all()
    assert (hard.loc[ahead, "tsb"] < rest.loc[ahead, "tsb"]).all()
    assert rest.loc[~ahead, "atl"].equals(hard.loc[~ahead, "atl"])


def test_export_flags_find_a_crash_and_a_low_recovery_run():
    days = pd.date_range("2024-01-01", periods=40)
    hrv = [60.0 + (i % 3) for i in range(40)]
    hrv[35] = 20.0
    recovery = [60.0] * 40
    recovery[30:36] = [10.0] * 6
    history = pd.DataFrame({"user_id": "a", "date": days, "hrv_rmssd_ms": hrv, "rhr_bpm": 50.0,
                            "recovery_pct": recovery, "load_trimp": 50.0})
    kinds = {f["flag"]: f for f in export_flags(history)}
    assert set(kinds) == {"hrv_crash", "low_recovery"}
    assert kinds["hrv_crash"]["from"] == "2024-02-05"
    assert (kinds["low_recovery"]["from"], kinds["low_recovery"]["to"]) == ("2024-01-31",
                                                                            "2024-02-05")


def test_plan_html_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "plan.html"
    assert main(["plan", "--model", str(MODEL_DIR), "--data", str(U01), "--days", "3",
                 "--html", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert "3-day plan for whoop-u01" in out.read_text()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


_HARNESS = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="page" style="border:0" width="{width}" height="2400" srcdoc="{page}"></iframe>
<script>
document.getElementById('page').addEventListener('load', function () {{
  var doc = this.contentDocument;
  document.body.setAttribute('data-images', Array.from(doc.images).map(
    function (i) {{ return i.naturalWidth + 'x' + i.clientWidth; }}).join(','));
  document.body.setAttribute('data-scroll-width', doc.documentElement.scrollWidth);
  document.body.setAttribute('data-text', doc.body.innerText.slice(0, 4000));
}});
</script></body></html>"""
"""Headless Chromium will not open a window narrower than 500 px, so the page is shown in a
phone-wide iframe (srcdoc: same origin, so the harness can measure it). After load it records
each image's decoded and shown width, the page's scroll width (wider than the phone = the page
overflows sideways) and the text a reader sees."""


def test_the_page_renders_in_headless_chromium_on_a_phone_sized_window(page, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium); the "
                    "browser check of the plan page did not run")
    plan, text, _ = page
    probe = tmp_path / "probe.html"
    probe.write_text(_HARNESS.format(width=PHONE_WIDTH, page=html.escape(text, quote=True)),
                     encoding="utf-8")
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=800,2400", "--virtual-time-budget=10000"]
    dom = subprocess.run([*args, "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                         timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    out = html.unescape(dom.stdout)
    images = re.search(r'data-images="([^"]*)"', out)
    assert images, "the page did not finish loading in Chromium"
    sizes = [tuple(int(x) for x in w.split("x")) for w in images.group(1).split(",")]
    assert len(sizes) == 3 and all(0 < shown <= PHONE_WIDTH < decoded
                                   for decoded, shown in sizes), sizes  # shrunk to the phone
    scroll = int(re.search(r'data-scroll-width="(\d+)"', out).group(1))
    assert scroll <= PHONE_WIDTH, f"the page is {scroll} px wide on a {PHONE_WIDTH}-px phone"
    seen = re.search(r'data-text="([^"]*)"', out, re.DOTALL).group(1)
    assert f"7-day plan for {plan['athlete']}" in seen and "The plan" in seen
    assert plan["days"][0]["session"].replace("_", " ") in seen
    shot = tmp_path / "plan.png"
    subprocess.run([*args, f"--screenshot={shot}", probe.as_uri()], capture_output=True,
                   timeout=120, check=True)
    assert shot.stat().st_size > 10_000
