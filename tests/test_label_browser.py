"""The labeling page in a real, headless Chromium: clips play, clicks and keys become the right labels.

Needs Debian's ``chromium`` and ``chromium-driver`` (the README's test command installs them);
skipped, with the reason, only when they are absent.
"""

import shutil
import sqlite3

import numpy as np
import pytest
import torch

from prefrl.label_queue import LabelQueue, gif_media, text_media
from prefrl.segments import Segments
from prefrl.store import PreferenceStore

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs chromium and chromedriver on PATH: apt-get install -y chromium chromium-driver",
)


def clip(seed: int) -> np.ndarray:
    """A 6-frame 24x32 clip: a bright square moving right over a colored background."""
    frames = np.zeros((6, 24, 32, 3), np.uint8)
    frames[..., seed % 3] = 40 + 10 * (seed % 10)
    for t in range(6):
        frames[t, 8:16, 4 * t : 4 * t + 8] = 255
    return frames


def clip_pairs(tmp_path, n, right_offset=9, L=3):
    """A store and queue with N pair queries of moving-square clips (clip i left, clip i + 1 right); their ids."""
    store = PreferenceStore(tmp_path / "labels.sqlite")
    queue = LabelQueue(store, timeout_s=120)
    left = Segments(torch.arange(n).float()[:, None, None].repeat(1, L, 2), torch.zeros(n, L, 1), torch.ones(n, L))
    right = Segments(left.obs + right_offset, left.act, left.true_reward)
    ids = queue.post([left, right], [[gif_media(clip(i), fps=10), gif_media(clip(i + 1), fps=10)] for i in range(n)])
    return store, queue, ids


def set_name(browser, name, end_key=None):
    """Types a name as a person does: after "change name" when one is already set (the field is read-only)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    edit = browser.find_element(By.ID, "name-edit")
    if edit.is_displayed():
        edit.click()
    field = browser.find_element(By.ID, "annotator")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)
    field.send_keys(name, end_key or Keys.TAB)
    return field


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-extensions", "--no-first-run", "--window-size=1200,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.mark.slow
def test_a_person_labels_20_pairs_with_clicks_and_keys(tmp_path, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from prefrl.web import serve

    n = 24
    store, queue, ids = clip_pairs(tmp_path, n, right_offset=1000)
    server = serve(queue, progress=lambda: {"labels_due": 20 - queue.stats()["labels_given"]}, print_url=False)
    wait = WebDriverWait(browser, 20)
    try:
        browser.get(server.url)
        set_name(browser, "tester")  # the name is saved on change
        wait.until(lambda d: d.find_element(By.ID, "main").get_attribute("data-state") == "query")
        loaded = ("const i = document.querySelector('#side-0 img');"
                  "return i !== null && i.complete && i.naturalWidth;")
        wait.until(lambda d: d.execute_script(loaded))
        assert browser.execute_script(loaded) == 32, "the clip is shown at its size (a looping GIF plays by itself)"
        assert browser.execute_script("return localStorage.getItem('prefrl-annotator')") == "tester"

        def click(css):
            return lambda: browser.find_element(By.CSS_SELECTOR, css).click()

        def key(k):
            return lambda: ActionChains(browser).send_keys(k).perform()

        actions = [  # (how, the mass on the left clip it means)
            (click("#btn-left"), 1.0), (key("1"), 1.0), (key(Keys.ARROW_RIGHT), 0.0), (click("#btn-right"), 0.0),
            (key("="), 0.5), (click("#btn-equal"), 0.5), (key("2"), 0.0), (key(Keys.ARROW_LEFT), 1.0),
            (click("#side-1"), 0.0), (key("3"), 0.5),
        ] * 2 + [(key(Keys.SPACE), None)]  # the 21st: "can't tell", no label
        expected = {}
        for act, mu in actions:
            shown = browser.find_element(By.ID, "main").get_attribute("data-query-id")
            assert shown in ids
            act()
            wait.until(lambda d: d.find_element(By.ID, "main").get_attribute("data-query-id") != shown)
            expected[shown] = mu
        wait.until(lambda d: d.find_element(By.ID, "p-given").text == "20")
        assert browser.find_element(By.ID, "p-due").text == "0"
    finally:
        server.stop()
    rows = sqlite3.connect(store.path).execute("SELECT query_id, mu, annotator FROM labels ORDER BY id").fetchall()
    assert len(rows) == 20 and len({r[0] for r in rows}) == 20
    assert {r[0]: r[1] for r in rows} == {qid: mu for qid, mu in expected.items() if mu is not None}
    assert {r[2] for r in rows} == {"tester"}
    assert [qid for qid in ids if qid in expected] == ids[:21], "served oldest first"
    assert queue.get(ids[20]).status == "skipped" and queue.stats()["pending"] == n - 21 - 1  # one is leased
    store.close()


@pytest.mark.slow
def test_a_person_ranks_three_completions_by_clicking_best_to_worst(tmp_path, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from prefrl.web import serve

    store = PreferenceStore(tmp_path / "labels.sqlite")
    queue = LabelQueue(store)
    sides = [Segments(torch.full((2, 1, 2), float(k)), torch.zeros(2, 1, 1), torch.zeros(2, 1)) for k in range(3)]
    texts = [["a dull film", "a wonderful film", "a fine film"], ["one", "two", "three"]]
    ids = queue.post(sides, [[text_media(t) for t in group] for group in texts], prompts=["Review: <b>bold</b>", "Count"])
    server = serve(queue, print_url=False)
    wait = WebDriverWait(browser, 20)
    try:
        browser.get(server.url)
        set_name(browser, "tester")
        wait.until(lambda d: d.find_element(By.ID, "main").get_attribute("data-query-id") == ids[0])
        assert browser.find_element(By.ID, "prompt").text == "Review: <b>bold</b>", "prompts are shown as text"
        assert browser.find_element(By.CSS_SELECTOR, "#side-1 pre").text == "a wonderful film"
        for side in (1, 2, 0):  # best to worst
            browser.find_element(By.CSS_SELECTOR, f"#side-{side} pre").click()
        assert browser.find_element(By.CSS_SELECTOR, "#side-0 .rank").text == "#3"
        ActionChains(browser).send_keys(Keys.ENTER).perform()
        wait.until(lambda d: d.find_element(By.ID, "main").get_attribute("data-query-id") == ids[1])
        Select(browser.find_element(By.ID, "rank-0")).select_by_value("1")  # a tie for best, by the boxes
        Select(browser.find_element(By.ID, "rank-1")).select_by_value("1")
        Select(browser.find_element(By.ID, "rank-2")).select_by_value("3")
        browser.find_element(By.ID, "btn-submit").click()
        wait.until(lambda d: d.find_element(By.ID, "main").get_attribute("data-state") == "empty")
    finally:
        server.stop()
    assert queue.get(ids[0]).answer == [2, 0, 1] and queue.get(ids[1]).answer == [0, 0, 1]
    rows = sqlite3.connect(store.path).execute("SELECT query_id, mu, annotator FROM labels ORDER BY id").fetchall()
    assert [r[1] for r in rows] == [0.0, 0.0, 1.0, 0.5, 1.0, 1.0] and {r[2] for r in rows} == {"tester"}
    assert [r[0] for r in rows] == [ids[0]] * 3 + [ids[1]] * 3
    store.close()


@pytest.mark.slow
def test_the_page_says_when_the_agent_waits_and_when_the_run_is_gone(tmp_path, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from prefrl.web import serve

    store, queue, ids = clip_pairs(tmp_path, 4)
    waiting = {"n": 3}
    server = serve(queue, progress=lambda: {"task": "Hopper-v5", "env_step": 2048, "steps": 300000,
                                            "labels_budget": 700, "labels_counted": queue.stats()["labels_given"],
                                            "waiting_for_labels": waiting["n"]}, print_url=False)
    wait = WebDriverWait(browser, 20)
    try:
        browser.get(server.url)
        name = set_name(browser, "dana", Keys.ENTER)  # Enter hands the keys back to the answers
        wait.until(lambda d: d.find_element(By.ID, "main").get_attribute("data-state") == "query")
        first = browser.find_element(By.ID, "main").get_attribute("data-query-id")
        ActionChains(browser).send_keys("1").perform()
        wait.until(lambda d: d.find_element(By.ID, "main").get_attribute("data-query-id") != first)
        assert name.get_attribute("value") == "dana", "the answer key did not go into the name"
        assert queue.get(first).answer == "left"
        wait.until(lambda d: "waiting for 3 more answers" in d.find_element(By.ID, "banner").text)
        run = browser.find_element(By.ID, "run").text
        assert "task: Hopper-v5" in run and "of 700 asked" in run and "300,000" in run
        waiting["n"] = 0
        wait.until(lambda d: not d.find_element(By.ID, "banner").is_displayed())
    finally:
        server.stop()
    shown = browser.find_element(By.ID, "main").get_attribute("data-query-id")
    ActionChains(browser).send_keys("2").perform()  # the run is gone: this answer cannot be saved
    wait.until(lambda d: "not saved" in d.find_element(By.ID, "status").text)
    assert "cannot be reached" in browser.find_element(By.ID, "banner").text
    assert browser.find_element(By.ID, "main").get_attribute("data-query-id") == shown, "the query stays on screen"
    assert queue.get(shown).answer is None and ids[0] == first
    store.close()


@pytest.mark.slow
def test_clips_pause_and_step_in_sync_answers_can_be_undone_and_changed_and_a_phone_fits(tmp_path, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from prefrl.web import serve

    store, queue, ids = clip_pairs(tmp_path, 4)
    server = serve(queue, progress=lambda: {"task": "HalfCheetah-v5", "instructions": "Run to the right, fast."},
                   print_url=False)
    wait = WebDriverWait(browser, 20)
    main = lambda: browser.find_element(By.ID, "main")  # noqa: E731
    keys = lambda k: ActionChains(browser).send_keys(k).perform()  # noqa: E731
    frames = lambda: browser.execute_script(  # noqa: E731
        "return [0, 1].map(k => { const c = document.getElementById('canvas-' + k); return c && c.dataset.frame; });")
    try:
        browser.get(server.url)
        set_name(browser, "uma")
        wait.until(lambda d: main().get_attribute("data-query-id") == ids[0] and None not in frames())
        assert browser.find_element(By.ID, "task-help").text == "This task: Run to the right, fast."
        assert "true" not in browser.find_element(By.ID, "progress").text.lower(), "no true score on the page"
        keys("p")  # pause: both clips hold the same frame
        a = frames()
        threading_sleep(0.4)
        assert frames() == a and a[0] == a[1], "paused, in step"
        keys(".")
        wait.until(lambda d: frames() == [str((int(a[0]) + 1) % 6)] * 2)
        keys("s")
        assert "0.5x" in browser.find_element(By.ID, "btn-slower").text
        keys("1")  # left
        wait.until(lambda d: main().get_attribute("data-query-id") == ids[1])
        keys("u")  # undo: the last answer comes back, to be changed
        wait.until(lambda d: main().get_attribute("data-query-id") == ids[0] and main().get_attribute("data-editing"))
        assert "it was: left is better" in browser.find_element(By.ID, "edit-note").text
        keys("2")
        wait.until(lambda d: main().get_attribute("data-query-id") == ids[1] and not main().get_attribute("data-editing"))
        assert queue.get(ids[0]).answer == "right"
        keys("=")
        wait.until(lambda d: main().get_attribute("data-query-id") == ids[2])
        browser.get(server.url.replace("/?", "/review?"))  # change an answer from the review page
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "a.change"))
        browser.find_elements(By.CSS_SELECTOR, "a.change")[0].click()  # the newest: ids[1], "equally good"
        wait.until(lambda d: main().get_attribute("data-query-id") == ids[1] and main().get_attribute("data-editing"))
        keys("0")  # can't tell after all: its label no longer counts
        wait.until(lambda d: main().get_attribute("data-query-id") == ids[2] and not main().get_attribute("data-editing"))
        assert queue.get(ids[1]).answer == "skip"
        browser.set_window_size(390, 844)  # a phone: the clips side by side, the buttons on screen
        browser.get(server.url)
        wait.until(lambda d: main().get_attribute("data-query-id") == ids[2])
        assert browser.execute_script("return window.innerWidth") <= 640
        box = "return document.getElementById(arguments[0]).getBoundingClientRect().toJSON();"
        s0, s1 = browser.execute_script(box, "side-0"), browser.execute_script(box, "side-1")
        assert abs(s0["top"] - s1["top"]) < 2 and s1["left"] > s0["right"] - 1, "side by side"
        btn = browser.execute_script(box, "btn-left")
        assert 0 <= btn["top"] and btn["bottom"] <= browser.execute_script("return window.innerHeight")
    finally:
        browser.set_window_size(1200, 900)
        server.stop()
    rows = sqlite3.connect(store.path).execute(
        "SELECT query_id, mu FROM labels WHERE replaced_at IS NULL ORDER BY id").fetchall()
    assert rows == [(ids[0], 0.0)], "the changed answers count, the replaced ones do not"
    assert sorted(store.tensors()["mu"].tolist()) == [0.0]
    store.close()


def threading_sleep(seconds):
    import time

    time.sleep(seconds)
