"""The notebooks as a person sees them: headless Chromium (Selenium) on a local classic Jupyter server with
ipywidgets 7, as Colab ships, in smoke mode. In the pretrain notebook the α/β picker renders, moving α changes the
shown w[s, t] and the run it names, and the next cell trains that choice; every notebook runs without an error and
every figure it draws is a visible image. Screenshots go to the test's temporary folder,
$TMPDIR/cijepa-lite-browser-screenshots (the path is printed)."""
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, DRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.slow
if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
    pytest.skip("no Chromium here (Debian: apt-get install chromium chromium-driver; .ci/run installs them)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in requirements-dev.txt")
pytest.importorskip("nbclassic", reason="nbclassic (the classic notebook, as Colab's widgets need) is in requirements-dev.txt")
SHOTS = Path(tempfile.gettempdir()) / "cijepa-lite-browser-screenshots"  # replaced by each run
WAIT_S = 300  # the longest a cell may run (a smoke-mode training on a loaded machine); polled, not slept


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser(tmp_path_factory, request):
    """(driver, URL of a notebook by name) on a classic Jupyter server over a copy of the notebooks, in smoke mode
    with widgets; one server and one browser for the module, a kernel per notebook."""
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    tmp_path = tmp_path_factory.mktemp("browser")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.rmtree(SHOTS, ignore_errors=True)  # kept after a pass (pytest removes a passing test's tmp_path)
    SHOTS.mkdir(parents=True)
    port, token = free_port(), "cijepa-browser-test"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CIJEPA_SMOKE": "1", "CIJEPA_WIDGETS": "1",
           "CIJEPA_WORKDIR": str(tmp_path / "work"), "CIJEPA_STORAGE": str(tmp_path / "drive"), "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "nbclassic", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                               f"--NotebookApp.token={token}", "--allow-root", f"--notebook-dir={tmp_path / 'notebooks'}"],
                              env=env, stdout=open(tmp_path / "server.log", "w"), stderr=subprocess.STDOUT)
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console, for a failure's report
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_script_timeout(WAIT_S)
    deadline = time.monotonic() + WAIT_S  # the server starts (seconds; a minute on a loaded machine)
    while server.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    assert server.poll() is None, (tmp_path / "server.log").read_text()
    try:
        yield driver, lambda name: f"http://127.0.0.1:{port}/nbclassic/notebooks/{name}.ipynb?token={token}"
    finally:
        driver.quit()
        server.terminate()
        server.wait(timeout=60)
        capture = request.config.pluginmanager.get_plugin("capturemanager")  # None under -p no:capture
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():  # past pytest's capture
            print(f"\nbrowser screenshots ({len(list(SHOTS.glob('*.png')))} PNG): {SHOTS}")


def open_notebook(driver, url: str) -> None:
    """Open a notebook and wait until cells may run: its kernel connected and the widgets extension's start-up done.

    Classic Jupyter's widgets extension (widgetsnbextension 3.x) creates its manager with the kernel and then asks
    the kernel for live widgets (a control comm, else after 4 s a comm_info request). When that answer comes after
    a cell has displayed widgets, the extension re-renders those cells and its own clearing removes the new views
    for good: their output keeps model_id '' (ipywidgets#3770, open upstream). On a loaded machine the answer was
    queued behind the cells Run all sent, so the picker vanished about one run in two. A second load sent now is
    answered after the first (the kernel's shell queue is in order), so it finishing means the first has.
    """
    driver.get(url)
    until(driver, "return typeof Jupyter !== 'undefined' && Jupyter.notebook && Jupyter.notebook.kernel"
                  " && Jupyter.notebook.kernel.is_connected() && !!Jupyter.notebook.kernel.widget_manager",
          f"the notebook's kernel and its widget manager at {driver.current_url}")
    loaded = driver.execute_async_script("const done = arguments[arguments.length - 1];"
                                         " Jupyter.notebook.kernel.widget_manager._loadFromKernel()"
                                         ".then(() => done('loaded'), e => done('failed: ' + e));")
    assert loaded == "loaded", loaded


def close_notebook(driver) -> None:
    """Shut the notebook's kernel down (as File > Close and Halt), so the next notebook has the CPUs; leaving the
    page then asks nothing (unsaved changes are the test's own)."""
    driver.execute_async_script("const done = arguments[arguments.length - 1];"
                                " Jupyter.notebook.set_dirty(false); window.onbeforeunload = null;"
                                " Jupyter.notebook.session.delete(() => done(true), () => done(false));")


def shown_images(driver) -> list:
    """[natural width, natural height, shown width] of every image in an output (figures and Image widgets)."""
    return driver.execute_script("return [...document.querySelectorAll('.output_png img, img.widget-image')]"
                                 ".map(i => [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width])")


def until(driver, script: str, what: str, timeout: float = WAIT_S):
    """Poll the page until `script` returns a truthy value; fail naming `what`, with what the page shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"gave up waiting for {what}\n{page_report(driver)}")


def page_report(driver) -> str:
    """A failure's evidence: a screenshot, the page's console and each code cell's prompt and output types."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_script("const w = document.querySelector('.output_subarea .jupyter-widgets, .jupyter-widgets-view')"
                          " || [...document.querySelectorAll('.cell')].pop(); if (w) w.scrollIntoView();")
    driver.save_screenshot(str(SHOTS / "failure.png"))
    cells = driver.execute_script(
        "if (typeof Jupyter === 'undefined' || !Jupyter.notebook) return 'no notebook on the page';"
        " const k = Jupyter.notebook.kernel, m = k && k.widget_manager;"
        " return JSON.stringify({kernel: k && k.is_connected(), widget_manager: !!m,"
        "  models: m && m._models ? Object.keys(m._models).length : null,"
        "  cells: Jupyter.notebook.get_cells().map((c, i) => [i, c.cell_type, c.input_prompt_number,"
        "   (c.output_area ? c.output_area.outputs : []).map(o => o.output_type + ':' + Object.keys(o.data || {}).join('+'))])})")
    console = "\n".join(f"  {e['level']} {e['message'][:300]}" for e in driver.get_log("browser")[-40:])
    return f"screenshot {SHOTS / 'failure.png'}\nnotebook {cells}\nconsole:\n{console}"


def run_cells(driver, indices: list[int]) -> None:
    """Run cells `indices` as Shift+Enter would, and wait until each has finished (no '*' in its prompt)."""
    driver.execute_script(f"Jupyter.notebook.execute_cells({indices});")
    until(driver, f"return {indices}.every(i => {{ const c = Jupyter.notebook.get_cell(i);"
                  " return c.cell_type !== 'code' || typeof c.input_prompt_number === 'number'; })",
          f"cells {indices} to finish")
    errors = driver.execute_script(f"return {indices}.filter(i => Jupyter.notebook.get_cell(i).cell_type === 'code')"
                                   ".flatMap(i => Jupyter.notebook.get_cell(i).output_area.outputs"
                                   ".filter(o => o.output_type === 'error').map(o => i + ': ' + o.ename + ' ' + o.evalue))")
    assert errors == []


def cell_text(driver, i: int) -> str:
    return driver.execute_script(f"return Jupyter.notebook.get_cell({i}).output_area.element[0].innerText")


def code_cell(driver, needle: str) -> int:
    return driver.execute_script(f"return Jupyter.notebook.get_cells().findIndex(c => c.get_text().includes({needle!r}))")


def test_the_pretrain_notebook_in_chromium_picker_choice_and_figures(browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, url = browser
    shots = SHOTS
    open_notebook(driver, url("02_pretrain"))
    picker_cell, next_cell = code_cell(driver, "colab.picker("), code_cell(driver, "colab.pretrain_run(")
    run_cells(driver, list(range(picker_cell + 1)))
    sliders = until(driver, "return document.querySelectorAll('.widget-hslider').length >= 3 ? "
                            "document.querySelectorAll('.widget-hslider').length : 0", "the picker's sliders")
    assert sliders >= 3  # rows, alpha, beta
    hint = lambda: driver.execute_script("return [...document.querySelectorAll('.widget-label')]"  # noqa: E731
                                         ".map(e => e.innerText).find(t => t.startsWith('picked ')) || ''")
    before_hint, before_image = hint(), until(driver, "const i = document.querySelector('.widget-image');"
                                                      " return i && i.naturalWidth > 0 ? i.src : ''", "w[s, t]")
    assert before_hint.startswith("picked R-A05-B08.") and 'ALPHA = "0.50"' in before_hint
    show = lambda i: driver.execute_script(f"Jupyter.notebook.get_cell({i}).element[0].scrollIntoView()")  # noqa: E731
    show(picker_cell)
    driver.save_screenshot(str(shots / "1-picker.png"))
    alpha = driver.find_elements(By.XPATH, "//div[contains(@class,'widget-hslider')][.//*[text()='alpha']]"
                                           "//*[contains(@class,'ui-slider-handle')]")[0]
    alpha.click()
    for _ in range(5):  # a person moving α with the keyboard, 0.01 a step
        alpha.send_keys(Keys.ARROW_RIGHT)
    until(driver, "return [...document.querySelectorAll('.widget-label')].some(e => e.innerText.includes("
                  "'ALPHA = \"0.55\"'))", "the hint to follow alpha")
    assert "picked custom-D1-11-rows2-a0.55-b0.80." in hint()  # the run it names (no table row has alpha 0.55)
    assert until(driver, f"const i = document.querySelector('.widget-image');"
                         f" return i && i.naturalWidth > 0 && i.src !== {before_image!r}", "a new w[s, t]")
    show(picker_cell)
    driver.save_screenshot(str(shots / "2-alpha-moved.png"))
    run_cells(driver, [next_cell])
    said = cell_text(driver, next_cell)  # smoke mode trains the choice on the tiny model (D = d1..d5)
    assert "run smoke-custom-D1-5-rows2-a0.55-b0.80:" in said and "alpha=0.55, beta=0.8" in said, said
    rest = list(range(next_cell + 1, driver.execute_script("return Jupyter.notebook.ncells()")))
    run_cells(driver, rest)  # the space check, TensorBoard's line, the smoke training and the curves
    images = shown_images(driver)
    assert len(images) >= 2 and all(w > 0 and h > 0 and shown > 0 for w, h, shown in images), images
    show(rest[-1])
    driver.save_screenshot(str(shots / "3-trained.png"))
    assert all((shots / n).stat().st_size > 10_000 for n in ("1-picker.png", "2-alpha-moved.png", "3-trained.png"))
    close_notebook(driver)


@pytest.mark.parametrize("name", ["01_data", "03_probe", "04_results", "05_inspect", "06_campaign"])
def test_every_other_notebook_runs_in_chromium_and_each_figure_is_a_visible_image(browser, name):
    driver, url = browser
    open_notebook(driver, url(name))
    run_cells(driver, list(range(driver.execute_script("return Jupyter.notebook.ncells()"))))  # Run all
    drawn = driver.execute_script("return Jupyter.notebook.get_cells().flatMap(c => c.output_area ?"
                                  " c.output_area.outputs : []).filter(o => o.data && o.data['image/png']).length")
    images = shown_images(driver)
    assert drawn >= 1 and len(images) == drawn, (drawn, images)  # every figure the kernel sent is on the page ...
    assert all(w > 0 and h > 0 and shown > 0 for w, h, shown in images), images  # ... decoded and laid out
    driver.execute_script("const i = [...document.querySelectorAll('.output_png img')].pop(); i.scrollIntoView();")
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    assert (SHOTS / f"{name}.png").stat().st_size > 10_000
    close_notebook(driver)
