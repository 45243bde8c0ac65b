#!/usr/bin/env python3
"""The dashboard in a real browser: Debian's chromium through chromedriver (selenium), against a
seeded `recloop serve` with an admin key. Run by tools/tests/dashboard.rs (the README's test
command); by hand: RECLOOP_BIN=target/debug/recloop python3 tests/browser/dashboard.py.
With SCREENSHOTS=docs it saves a picture of each page there."""

import json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.error, urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ADMIN = "dashboard-admin-key-0123456789"
EVIL = "<script>window.__xss=1</script><b>bold</b> & \"quotes\""
USERS, ITEMS = 40, 24


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, workdir):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, RECLOOP_BIND=f"127.0.0.1:{self.port}",
                   DATABASE_URL=f"sqlite://{workdir}/dashboard.db", RECLOOP_ADMIN_KEY=ADMIN,
                   RECLOOP_FACTORS="16", RECLOOP_ITERATIONS="5", RECLOOP_IMPRESSION_PENALTY="0",
                   RECLOOP_EXPLORATION="0", RECLOOP_RETRAIN_AFTER_EVENTS="1000000")
        self.log = open(os.path.join(workdir, "server.log"), "w")
        self.proc = subprocess.Popen([binary, "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                urllib.request.urlopen(self.base + "/readyz", timeout=1)
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise SystemExit("the server did not start")

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def seed(server):
    """Two tastes: even users like even items, odd users odd ones; a few purchases."""
    events = []
    for u in range(USERS):
        for j in range(6):
            item = (2 * (u + j) + u % 2) % ITEMS
            events.append({"user_id": f"u{u}", "item_id": f"i{item}", "type": "purchase" if j == 5 else "view"})
    events += [{"user_id": f"u{u}", "item_id": "evil", "type": "click"} for u in range(0, USERS, 3)]
    server.call("POST", "/v1/events", events)
    server.call("PUT", "/v1/items/evil", {"title": EVIL, "categories": ["tricks"]})
    model = server.call("POST", "/v1/model/retrain?wait=true")
    assert model["status"] == "accepted", model
    # Responses, and clicks and purchases that name them, for the rates.
    acted = []
    for u in range(0, USERS, 2):
        shown = server.call("GET", f"/v1/users/u{u}/recommendations?n=5")
        kind = "purchase" if u % 4 == 0 else "click"
        acted.append({"user_id": f"u{u}", "item_id": shown["items"][0]["item_id"], "type": kind,
                      "recommendation_id": shown["recommendation_id"]})
    server.call("POST", "/v1/events", acted)
    events += acted
    # The online loop credits them within seconds (its tick is 2 s).
    for _ in range(100):
        stats = server.call("GET", "/v1/stats")
        credited = sum(p["value"] for s in stats["series"] if s["name"] == "credited" for p in s["points"])
        if credited == len(acted):
            break
        time.sleep(0.2)
    else:
        raise SystemExit(f"credited {credited} of {len(acted)}")
    return events, model


def main():
    binary = os.environ["RECLOOP_BIN"]
    shots = os.environ.get("SCREENSHOTS")
    workdir = tempfile.mkdtemp(prefix="recloop-dashboard-")
    server = Server(binary, workdir)
    driver = None
    try:
        events, model = seed(server)
        options = Options()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
                    f"--user-data-dir={workdir}/chrome"]:
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
        wait = WebDriverWait(driver, 20)
        ready = lambda page: wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == page)
        charts = lambda: driver.execute_script("return window.recloopCharts")

        def shot(name):
            if shots:
                driver.save_screenshot(os.path.join(shots, f"dashboard-{name}.png"))

        # No key yet: the page asks for one, and refuses a wrong one.
        driver.get(server.base + "/dashboard")
        wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())
        driver.find_element(By.ID, "key").send_keys("wrong-key")
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait.until(lambda d: d.find_element(By.ID, "login-error").text != "")
        assert driver.find_element(By.ID, "page").text == "", "nothing shown without the key"
        assert driver.execute_script("return sessionStorage.getItem('recloop.adminKey')") is None
        assert driver.get_cookies() == [], "no cookies"
        driver.find_element(By.ID, "key").clear()
        driver.find_element(By.ID, "key").send_keys(ADMIN)
        driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
        ready("overview")

        # Overview: the seeded numbers, drawn.
        drawn = charts()
        per_type = {s["label"]: sum(s["values"]) for s in drawn["Events by type"]["series"]}
        want = {}
        for e in events:
            want[e["type"]] = want.get(e["type"], 0) + 1
        assert per_type == want, (per_type, want)
        assert sum(drawn["Requests per bucket"]["series"][0]["values"]) >= 3
        seconds = drawn["Trainings (seconds) by outcome"]["series"]
        assert [s["label"] for s in seconds] == ["accepted"], seconds
        assert f"version {model['version']}" in driver.find_element(By.ID, "in-service").text
        ctr = drawn["Click-through by version and arm"]["series"]
        assert [s["label"] for s in ctr] == [f"v{model['version']} champion"], ctr
        assert max(v for v in ctr[0]["values"] if v is not None) > 0, ctr
        canvases = driver.find_elements(By.CSS_SELECTOR, ".chart canvas")
        assert len(canvases) == 6, [c.get_attribute("data-title") for c in driver.find_elements(By.CSS_SELECTOR, ".chart")]
        shot("overview")

        # Models: every version, and the candidates its choice compared.
        driver.get(server.base + "/dashboard#models")
        ready("models")
        rows = driver.find_elements(By.CSS_SELECTOR, "#versions tbody tr")
        assert len(rows) == len(server.call("GET", "/v1/model/versions")["versions"])
        candidates = [c for t, c in charts().items() if t.startswith("Candidates")][0]
        selection = model["metrics"]["selection"]
        assert [round(v, 6) for v in candidates["series"][0]["values"]] == [round(t["ndcg_at_10"], 6) for t in selection]
        shot("models")

        # Users: the history and the recommendations with their reasons.
        driver.get(server.base + "/dashboard#users")
        ready("users")
        driver.find_element(By.ID, "user").send_keys("u3")
        driver.find_element(By.CSS_SELECTOR, "form.lookup button").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#history tbody tr"))
        history = driver.find_elements(By.CSS_SELECTOR, "#history tbody tr")
        assert len(history) == sum(1 for e in events if e["user_id"] == "u3"), len(history)
        listed = [r.find_elements(By.TAG_NAME, "td")[0].text for r in driver.find_elements(By.CSS_SELECTOR, "#recommendations tbody tr")]
        api = server.call("GET", "/v1/users/u3/recommendations?n=10")
        assert listed == [i["item_id"] for i in api["items"]], (listed, api)
        reasons = driver.find_elements(By.CSS_SELECTOR, "#recommendations tbody tr td:nth-child(3)")
        assert all(r.text == "personalized" for r in reasons)
        assert "%" in driver.find_element(By.CSS_SELECTOR, "#recommendations .because").text
        shot("users")

        # Items: a title with markup is shown as text, and runs nothing.
        driver.get(server.base + "/dashboard#items")
        ready("items")
        driver.find_element(By.ID, "item").send_keys("evil")
        driver.find_element(By.CSS_SELECTOR, "form.lookup button").click()
        wait.until(lambda d: d.find_elements(By.ID, "item-title"))
        title = driver.find_element(By.ID, "item-title")
        assert title.text == EVIL, title.text
        assert title.find_elements(By.TAG_NAME, "b") == [] and title.find_elements(By.TAG_NAME, "script") == []
        assert driver.execute_script("return window.__xss") is None
        similar = driver.find_elements(By.CSS_SELECTOR, "#similar tbody tr")
        assert similar, "similar items listed"
        shot("items")

        # Catalogue: popular items, as the API ranks them.
        driver.get(server.base + "/dashboard#catalogue")
        ready("catalogue")
        popular = [r.find_elements(By.TAG_NAME, "td")[1].text for r in driver.find_elements(By.CSS_SELECTOR, "#popular tbody tr")]
        assert popular == [i["item_id"] for i in server.call("GET", "/v1/popular?n=20")["items"]]
        shot("catalogue")

        # Forgetting the key asks for it again.
        driver.find_element(By.ID, "forget").click()
        wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())
        print("dashboard: every page checked")
    finally:
        if driver:
            driver.quit()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
