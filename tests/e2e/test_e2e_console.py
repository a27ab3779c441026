"""The operator console (GET /console on the gateway) in a real browser: Debian's Chromium,
driven by Playwright. The operator signs in through the page's form (the gateway relays the
password grant to the development issuer), an order placed with its demo button shows up
COMPLETED in the orders list, and its journey shows the events across the contexts and links to
its Temporal workflow. A demo customer's token, handed out by the page, sees that customer's
orders only; a wrong password, a customer (not an operator) or a wrong admin key asks again, and
the right admin key (the second way in) works too.

Playwright never downloads a browser here: it drives the Chromium installed by the system
(`make browser`, i.e. `apt-get install chromium`). Without it these tests skip, saying so.
Every wait is Playwright's own (expect ... with a timeout): nothing sleeps."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

# As in conftest.py (a test module does not import it: pytest loads it once, as a plugin).
GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080").rstrip("/")
ADMIN_API_KEY = os.environ.get("CONCERTO_ADMIN_API_KEY", "dev-admin-key")
DEMO_PASSWORD = "demo"  # the development issuer's, on the local and test stacks
SCREENSHOT = "/tmp/console.png"
# How long the page may take to show what the API already knows (it polls every second).
PAGE_DEADLINE_MS = 10_000


def chromium_path() -> str | None:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    return found if os.access(found, os.X_OK) else None


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    if executable is None:
        reason = "Chromium is not installed: `make browser` (or `apt-get install chromium`) installs it"
        print(reason)
        pytest.skip(reason)
    async with async_playwright() as playwright:
        # --no-sandbox: the suite may run as root, where Chromium's sandbox refuses to start.
        launched = await playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh tab (its own sessionStorage: no key yet) that fails the test on an uncaught script error."""
    context = await browser.new_context(viewport={"width": 1600, "height": 1000})
    tab = await context.new_page()
    script_errors: list[str] = []
    tab.on("pageerror", lambda error: script_errors.append(str(error)))
    try:
        yield tab
    finally:
        await context.close()
    assert not script_errors, f"the console page logged errors: {script_errors}"


async def open_console(page: Page) -> None:
    await page.goto(f"{GATEWAY_URL}/console")
    await expect(page.get_by_role("heading", name="Concerto operator console")).to_be_visible()


async def sign_in(page: Page, username: str = "operator", password: str = DEMO_PASSWORD) -> None:
    await open_console(page)
    await page.get_by_label("user name").fill(username)
    await page.get_by_label("password", exact=True).fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def use_admin_key(page: Page, key: str) -> None:
    await open_console(page)
    await page.get_by_text("or use an admin API key").click()
    await page.get_by_label("admin API key").fill(key)
    await page.get_by_role("button", name="Connect").click()


async def test_console_follows_a_demo_order_to_completed_and_links_its_temporal_workflow(page: Page, api, anonymous, placed_orders):
    product = await api.product(prefer="CON-BATON")
    # The page and its config need no key: they carry no data.
    config_response = await anonymous.get("/console/config.json")
    assert config_response.status_code == 200, config_response.text
    config = config_response.json()

    await sign_in(page)
    await expect(page.get_by_test_id("signed-in-as")).to_have_text("signed in as operator", timeout=PAGE_DEADLINE_MS)
    # The token is kept in this tab only, and no API key is.
    credential = await page.evaluate("JSON.parse(sessionStorage.getItem('concerto.credential'))")
    assert credential["kind"] == "bearer" and credential["value"].count(".") == 2, credential
    orders = page.get_by_test_id("sagas")
    await expect(page.get_by_test_id("heartbeat")).to_contain_text("live", timeout=PAGE_DEADLINE_MS)

    # Place an order with the page's demo button, as a presenter would.
    await expect(page.locator(f'#demo-sku option[value="{product["sku"]}"]')).to_have_count(1)
    await page.locator("#demo-sku").select_option(product["sku"])
    await page.locator("#demo-token").select_option("tok_visa")
    async with page.expect_response(lambda r: r.url.endswith("/api/v1/orders") and r.request.method == "POST") as placed:
        await page.get_by_role("button", name="Place demo order").click()
    response = await placed.value
    assert response.status == 202, await response.text()
    sent = await response.request.all_headers()
    assert sent.get("authorization") == f"Bearer {credential['value']}" and "x-api-key" not in sent, sent
    order_id = (await response.json())["order_id"]
    placed_orders.record(order_id)  # so the ledger check at the end of the suite accounts for it
    await expect(page.get_by_test_id("demo-result")).to_contain_text(order_id)

    # The orders list shows it, live, until its saga is COMPLETED.
    row = orders.locator(f'tr[data-order-id="{order_id}"]')
    await expect(row.locator(".saga-status")).to_have_text("COMPLETED", timeout=api.ORDER_DEADLINE * 1000)
    assert (await api.order(order_id))["status"] == "COMPLETED"

    # Its journey: the events in causal order, from OrderConfirmed to OrderCompleted.
    await row.get_by_role("button").click()
    journey = page.get_by_test_id("journey")
    await expect(page.get_by_test_id("journey-order")).to_have_text(order_id, timeout=PAGE_DEADLINE_MS)
    await expect(journey.locator(".card-head .badge")).to_have_text("COMPLETED")
    events = page.get_by_test_id("journey-events").locator(".event-type")
    await expect(events.first).to_have_text("OrderConfirmed")
    await expect(events.filter(has_text="OrderCompleted")).to_have_count(1)
    types = await events.all_text_contents()
    assert types.index("OrderConfirmed") < types.index("PaymentCompleted") < types.index("OrderCompleted"), types

    # A link to the order's workflow in the Temporal UI, where the gateway's settings say it is.
    workflow = f"order-{order_id}"
    link = page.get_by_test_id("journey-workflows").get_by_role("link", name=workflow, exact=True)
    await expect(link).to_have_attribute(
        "href", f"{config['temporal_ui_url']}/namespaces/{config['temporal_namespace']}/workflows/{workflow}"
    )

    # The other panels answered too (no error shown), and the page is worth projecting.
    await expect(page.get_by_test_id("gateways").locator("tr")).to_have_count(len(api.PAYMENT_GATEWAYS))
    await expect(page.get_by_test_id("consumers").locator("tr[data-context]")).to_have_count(5)
    # Orders the starter could not start, from the order context: none on a healthy stack.
    await expect(page.get_by_test_id("not-started-card")).to_contain_text("None: every accepted order started", timeout=PAGE_DEADLINE_MS)
    # The key figures, from the services' /metrics: the order above is among those placed.
    figures = page.get_by_test_id("figures")
    await expect(figures.locator('[data-figure="Orders placed"] dd').first).not_to_have_text("0", timeout=PAGE_DEADLINE_MS)
    await expect(figures.locator('[data-figure="Completed"] dd').first).not_to_have_text("0", timeout=PAGE_DEADLINE_MS)
    await expect(figures.locator('[data-figure="Consumer lag"]')).to_be_visible()
    await expect(page.locator(".error:visible")).to_have_count(0)
    await page.screenshot(path=SCREENSHOT, full_page=True)


async def test_console_refuses_a_wrong_admin_key_and_takes_the_right_one(page: Page):
    await use_admin_key(page, "not-the-admin-key")

    await expect(page.get_by_test_id("key-message")).to_contain_text("401", timeout=PAGE_DEADLINE_MS)
    await expect(page.get_by_test_id("key-panel")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('concerto.credential')") is None

    await use_admin_key(page, ADMIN_API_KEY)  # the second way in
    await expect(page.get_by_test_id("signed-in-as")).to_have_text("signed in as the admin API key", timeout=PAGE_DEADLINE_MS)
    await expect(page.get_by_test_id("heartbeat")).to_contain_text("live", timeout=PAGE_DEADLINE_MS)


async def test_console_refuses_a_wrong_password_and_a_customer_as_operator(page: Page, api):
    await sign_in(page, "operator", "not-the-password")
    await expect(page.get_by_test_id("key-message")).to_contain_text("401", timeout=PAGE_DEADLINE_MS)

    await sign_in(page, api.unique("cust"))  # a customer signs in, but the console is for operators
    await expect(page.get_by_test_id("key-message")).to_contain_text("403", timeout=PAGE_DEADLINE_MS)
    await expect(page.get_by_test_id("key-panel")).to_be_visible()


async def test_console_hands_out_a_demo_customer_token_that_sees_only_their_orders(page: Page, api):
    customer_id, someone_else = api.unique("cust"), api.unique("cust")
    sku = (await api.product(prefer="CON-TUNER"))["sku"]
    own = await api.place(api.body(sku, customer_id=customer_id))
    others = await api.place(api.body(sku, customer_id=someone_else))

    await sign_in(page)
    await expect(page.get_by_test_id("signed-in-as")).to_have_text("signed in as operator", timeout=PAGE_DEADLINE_MS)
    await page.get_by_label("customer id").fill(customer_id)
    await page.get_by_label("customer password").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Get token").click()

    listed = page.get_by_test_id("token-orders").locator("li[data-order-id]")
    await expect(listed).to_have_count(1, timeout=PAGE_DEADLINE_MS)
    assert await listed.first.get_attribute("data-order-id") == own.order_id != others.order_id
    token = await page.get_by_test_id("token-value").input_value()
    await expect(page.get_by_test_id("token-curl")).to_have_text(f'curl -H "Authorization: Bearer {token}" {GATEWAY_URL}/api/v1/orders')
    # The customer's token served their card only: the page is still the operator's.
    await expect(page.get_by_test_id("signed-in-as")).to_have_text("signed in as operator")
    # The token is the customer's, as curl would use it: their order, and not the other one.
    bearer = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=GATEWAY_URL, timeout=10) as curl:
        assert (await curl.get(f"/api/v1/orders/{own.order_id}", headers=bearer)).status_code == 200
        assert (await curl.get(f"/api/v1/orders/{others.order_id}", headers=bearer)).status_code == 404


async def test_console_journey_links_the_order_to_its_trace_in_zipkin_and_shows_its_log_lines(page: Page, api, zipkin):
    """The journey's trace link opens Zipkin's own page for the order's trace (its UI comes from
    its jar: the page asks nothing of any other host), and the journey lists the order's log
    lines from every context, merged by time (ADR 18)."""
    placed = await api.place(api.body((await api.product(prefer="CON-BATON"))["sku"]))
    assert (await api.terminal(placed.order_id))["status"] == "COMPLETED"
    timeline = await api.timeline(placed.order_id)
    assert timeline and timeline["trace_url"], timeline
    await zipkin.trace(timeline["trace_id"], {"concerto-gateway", "concerto-loyalty"})  # before the page asks

    await sign_in(page)
    await expect(page.get_by_test_id("signed-in-as")).to_have_text("signed in as operator", timeout=PAGE_DEADLINE_MS)
    await page.goto(f"{GATEWAY_URL}/console#order={placed.order_id}")
    await page.reload()  # the hash alone does not reload the page; the sign-in is kept in the tab
    link = page.get_by_test_id("journey-trace-link")
    await expect(link).to_have_attribute("href", timeline["trace_url"], timeout=PAGE_DEADLINE_MS)
    await expect(link).to_have_text(timeline["trace_id"])

    # The order's lines, every context's, in the journey.
    logs = page.get_by_test_id("journey-logs")
    for component in ("order", "payment", "fulfillment", "loyalty"):
        await expect(logs.locator(".component", has_text=component).first).to_be_visible(timeout=PAGE_DEADLINE_MS)

    # One click: Zipkin's trace page, in a new tab, showing the order's services.
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))
    async with page.context.expect_page() as opened:
        await link.click()
    viewer = await opened.value
    await viewer.wait_for_load_state()
    assert viewer.url == timeline["trace_url"], viewer.url
    # The trace page: rooted at the gateway's POST, with the contexts' spans under it (which
    # services, by name, is test_e2e_tracing's to check through Zipkin's API: the page draws only
    # the rows in view).
    await expect(viewer.get_by_text("concerto-gateway: post /api/v1/orders").first).to_be_visible(timeout=PAGE_DEADLINE_MS)
    summary = re.search(r"Services\s*(\d+)", await viewer.locator("main").inner_text())
    assert summary and int(summary.group(1)) >= 5, f"the trace page shows {summary and summary.group(1)} services"
    await viewer.screenshot(path="/tmp/zipkin-trace.png", full_page=True)
    elsewhere = [url for url in requested if not url.startswith((zipkin.url, GATEWAY_URL, "data:"))]
    assert not elsewhere, f"the pages asked other hosts: {elsewhere}"
