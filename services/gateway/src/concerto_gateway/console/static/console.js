// The Concerto operator console. It polls the gateway's public API (/api/v1) as an operator and
// draws what it answers; it has no data of its own and no framework. Every piece of data is
// inserted as text (textContent, or a string passed to append), never parsed as HTML.
//
// Signing in: the form posts a user name and password to the gateway (POST /console/sign-in),
// which relays them to the identity provider as an OAuth 2.0 password grant and answers the
// access token. The page talks to its own origin only (its CSP allows nothing else). The token is
// kept in this tab (sessionStorage) and sent as `Authorization: Bearer` with every /api/v1 call.
// A 401 (the token expired, or the key is wrong) asks to sign in again; a 403 says the user is
// not an operator. The admin API key is the second, smaller way in (sent as X-API-Key). The
// "Demo customer tokens" card uses the same sign-in for a customer, and that customer's token
// only for their own orders: the operator's stays the page's.
"use strict";

const CREDENTIAL_STORAGE = "concerto.credential"; // {kind: "bearer" | "key", value, who}
const CONTEXTS = ["order", "payment", "fulfillment", "loyalty", "monitor"];
const SAGA_STATUSES = ["RUNNING", "COMPLETED", "COMPENSATING", "COMPENSATED", "STUCK", "COMPENSATION_FAILED"];
const BREAKER_STATES = ["closed", "half_open", "open"];
const ORDERS_EVERY_MS = 1000; // the orders list and the open journey: "live"
const PANELS_EVERY_MS = 3000; // dead letters, payment gateways, consumers

const state = {
  credential: JSON.parse(sessionStorage.getItem(CREDENTIAL_STORAGE) || "null"),
  config: { temporal_ui_url: "", temporal_namespace: "default" },
  statusFilter: "", // "" (all) or "STUCK"
  selectedOrder: null,
  rendered: {}, // the JSON last drawn per section (see `changed`)
  generation: 0, // bumped to end the running poll loops
  connected: false, // the credential has been accepted: a 401 now means it expired
  lastFigures: null, // the key figures' last reading, for a rate
};

const $ = (id) => document.getElementById(id);

// --- building the page -------------------------------------------------------------------

// el("td", {className: "mono", title: "…"}, "text", otherNode): a DOM node. Strings become
// text nodes, so data can never turn into markup.
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else node[name] = value;
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

function badge(text, kind) {
  return el("span", { className: `badge ${kind}` }, text);
}

function statusBadge(status) {
  return badge(status, SAGA_STATUSES.includes(status) ? `status-${status}` : "status-unknown");
}

// "/concerto/payment" -> a "payment" chip, coloured per context.
function contextChip(source) {
  const name = String(source || "").split("/").filter(Boolean).pop() || "?";
  return el("span", { className: `ctx ctx-${CONTEXTS.includes(name) ? name : "other"}`, title: source }, name);
}

function clock(iso, withMilliseconds = false) {
  if (!iso) return "—";
  const time = new Date(iso);
  const hms = time.toLocaleTimeString("en-GB", { hour12: false });
  return withMilliseconds ? `${hms}.${String(time.getMilliseconds()).padStart(3, "0")}` : hms;
}

function shortId(id) {
  return id.length > 13 ? `${id.slice(0, 8)}…` : id;
}

// A deadline that counts down in place (see tickCountdowns), so the rows around it are not redrawn.
function countdown(deadline) {
  const node = el("span", { className: "countdown", title: deadline, dataset: { deadline } });
  updateCountdown(node);
  return node;
}

function updateCountdown(node) {
  const seconds = Math.round((new Date(node.dataset.deadline) - Date.now()) / 1000);
  const span = (s) => (Math.abs(s) < 120 ? `${Math.abs(s)} s` : `${Math.round(Math.abs(s) / 60)} min`);
  node.textContent = seconds >= 0 ? `in ${span(seconds)}` : `overdue by ${span(seconds)}`;
  node.classList.toggle("overdue", seconds < 0);
}

function tickCountdowns() {
  document.querySelectorAll(".countdown").forEach(updateCountdown);
}

function show(id, text) {
  $(id).textContent = text;
  $(id).hidden = false;
}

function hide(id) {
  $(id).hidden = true;
}

// Redraw a section only when its data changed: a button redrawn every second could be replaced
// between the presenter's mouse-down and mouse-up, and the click would be lost.
function changed(section, data) {
  const json = JSON.stringify(data);
  if (state.rendered[section] === json) return false;
  state.rendered[section] = json;
  return true;
}

// --- talking to the gateway --------------------------------------------------------------

class ApiError extends Error {
  constructor(status, title, detail) {
    super(status ? `${status} ${title}: ${detail}` : `${title}: ${detail}`);
    Object.assign(this, { status, title, detail });
  }
}

function authorization(credential) {
  return credential.kind === "key" ? { "X-API-Key": credential.value } : { Authorization: `Bearer ${credential.value}` };
}

// Every call sends the operator's credential (or, for a demo customer's view, `as`). Errors are
// RFC 9457 problem details: their title and detail are what the page shows. A refused operator
// credential (401: expired or wrong; 403: not an operator) stops the console and asks again.
async function api(method, path, body, as = null) {
  const credential = as || state.credential;
  if (!credential) throw new ApiError(0, "Not signed in", `${method} ${path}`);
  const init = { method, headers: authorization(credential) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, "Request failed", `${method} ${path}: ${error.message}`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below with the raw text
  }
  if (response.ok) return data;
  const error = new ApiError(response.status, data?.title || response.statusText, data?.detail || text.slice(0, 300));
  // Only for the credential in use: the other calls of the same round, refused too, change nothing.
  if (!as && credential === state.credential && (response.status === 401 || response.status === 403)) askForSignIn(error);
  throw error;
}

// --- signing in --------------------------------------------------------------------------

// Back to the sign-in panel, saying why (nothing when the user signed out).
function askForSignIn(error) {
  const why = error && refusal(error, state.credential, state.connected);
  state.generation += 1; // the poll loops end
  state.credential = null;
  state.connected = false;
  sessionStorage.removeItem(CREDENTIAL_STORAGE);
  $("console").hidden = true;
  $("forget-key").hidden = true;
  $("signed-in-as").textContent = "";
  $("key-panel").hidden = false;
  $("heartbeat").textContent = "not connected";
  if (why) show("key-message", why);
  else hide("key-message");
  $("key-input").value = "";
  $("signin-password").value = "";
  $("signin-password").focus();
}

function refusal(error, credential, connected) {
  const answer = error.status ? `${error.status} ${error.title}: ${error.detail}` : error.message;
  if (error.status === 403) return `${credential?.who ?? "This user"} is not an operator: sign in as one (${answer}).`;
  if (error.status === 401 && connected) return `The sign-in has expired: sign in again (${answer}).`;
  if (credential?.kind === "key") return `The gateway refused the admin API key (${answer}).`;
  return `The gateway refused the sign-in (${answer}).`;
}

// A password grant through the gateway (the page never calls the identity provider itself): the
// provider's access token, or an ApiError (401 wrong password, 429 too many failures, 502 no provider).
async function requestToken(username, password) {
  let response;
  try {
    response = await fetch("/console/sign-in", { method: "POST", body: new URLSearchParams({ username, password }) });
  } catch (error) {
    throw new ApiError(0, "Sign-in failed", error.message);
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data?.title || response.statusText, data?.detail || "");
  return data.access_token;
}

function useCredential(credential) {
  state.credential = credential;
  sessionStorage.setItem(CREDENTIAL_STORAGE, JSON.stringify(credential));
  hide("key-message");
  connect();
}

async function signIn(event) {
  event.preventDefault();
  const username = $("signin-user").value.trim();
  try {
    useCredential({ kind: "bearer", value: await requestToken(username, $("signin-password").value), who: username });
  } catch (error) {
    askForSignIn(error);
  }
}

async function connect() {
  state.rendered = {};
  state.generation += 1;
  const generation = state.generation;
  // One call first: a refused credential (a wrong key, an expired token, a customer) is told
  // once, and spends one failure of the address's budget rather than one per panel.
  try {
    await api("GET", "/api/v1/admin/sagas?status=STUCK&limit=1");
  } catch (error) {
    if (error.status === 401 || error.status === 403 || generation !== state.generation) return; // api() asked again
  }
  if (generation !== state.generation) return;
  state.connected = true;
  $("key-panel").hidden = true;
  $("console").hidden = false;
  $("forget-key").hidden = false;
  $("signed-in-as").textContent = `signed in as ${state.credential.who}`;
  await loadConfig();
  if (generation !== state.generation) return;
  loadProducts();
  poll(refreshOrders, ORDERS_EVERY_MS, generation);
  poll(refreshPanels, PANELS_EVERY_MS, generation);
}

// The Temporal UI's address comes from the gateway's settings (TEMPORAL_UI_URL); no key needed.
async function loadConfig() {
  try {
    const response = await fetch("/console/config.json");
    state.config = await response.json();
  } catch (error) {
    show("journey-error", `Could not read /console/config.json (${error.message}): no Temporal UI links.`);
  }
}

// Each loop waits for its refresh to finish before scheduling the next: a slow gateway is never
// asked twice at once. A loop ends when the generation changes (new key, or key refused).
function poll(refresh, everyMs, generation) {
  const run = async () => {
    if (generation !== state.generation) return;
    await refresh();
    if (generation === state.generation) setTimeout(run, everyMs);
  };
  run();
}

// --- orders and their sagas --------------------------------------------------------------

async function refreshOrders() {
  await Promise.all([refreshSagas(), refreshJourney()]);
}

async function refreshSagas() {
  const filter = state.statusFilter ? `&status=${state.statusFilter}` : "";
  try {
    const [page, stuck] = await Promise.all([
      api("GET", `/api/v1/admin/sagas?limit=20${filter}`),
      api("GET", "/api/v1/admin/sagas?status=STUCK&limit=1"),
    ]);
    hide("sagas-error");
    $("saga-total").textContent = page.total;
    $("stuck-total").textContent = stuck.total;
    $("filter-stuck").classList.toggle("alarm", stuck.total > 0);
    if (changed("sagas", page.items)) drawSagas(page.items);
    $("heartbeat").textContent = `live · ${clock(new Date())}`;
  } catch (error) {
    show("sagas-error", error.message);
    if (state.connected) $("heartbeat").textContent = "no answer"; // else: signed out meanwhile
  }
}

function drawSagas(sagas) {
  const rows = sagas.map((saga) => {
    const open = () => selectOrder(saga.order_id);
    return el(
      "tr",
      { dataset: { orderId: saga.order_id }, onclick: open },
      el("td", {}, el("button", { type: "button", className: "link mono", title: saga.order_id }, shortId(saga.order_id))),
      el("td", { className: "saga-status" }, statusBadge(saga.status)),
      el("td", {}, saga.current_step || "—"),
      el("td", {}, waitingFor(saga)),
      el("td", { className: "mono", title: saga.updated_at }, clock(saga.updated_at)),
    );
  });
  $("sagas").replaceChildren(...rows);
  $("sagas-empty").hidden = sagas.length > 0;
  highlightSelected();
}

function waitingFor(saga) {
  if (saga.status === "STUCK") return el("span", { className: "stuck" }, `stuck at ${saga.stuck_step || "?"}`);
  if (saga.status === "COMPENSATION_FAILED") return el("span", { className: "stuck" }, `${saga.stuck_step || "?"} refused: an operator decides`);
  const next = saga.next_expected;
  if (!next) return "—";
  return el("span", {}, next.events.join(" or "), " ", next.deadline ? countdown(next.deadline) : "");
}

function highlightSelected() {
  for (const row of $("sagas").rows) row.classList.toggle("selected", row.dataset.orderId === state.selectedOrder);
}

function setFilter(status) {
  state.statusFilter = status;
  $("filter-all").classList.toggle("on", status === "");
  $("filter-stuck").classList.toggle("on", status === "STUCK");
  state.rendered.sagas = null;
  refreshSagas();
}

// --- one order's journey -----------------------------------------------------------------

function selectOrder(orderId) {
  state.selectedOrder = orderId;
  state.rendered.journey = null;
  history.replaceState(null, "", `#order=${encodeURIComponent(orderId)}`);
  highlightSelected();
  hide("journey-hint");
  refreshJourney();
}

async function refreshJourney() {
  const orderId = state.selectedOrder;
  if (!orderId) return;
  try {
    const timeline = await api("GET", `/api/v1/orders/${encodeURIComponent(orderId)}/timeline`);
    if (orderId !== state.selectedOrder) return; // another order was picked meanwhile
    hide("journey-error");
    if (changed("journey", timeline)) drawJourney(timeline);
  } catch (error) {
    if (orderId !== state.selectedOrder) return;
    state.rendered.journey = null;
    $("journey-body").hidden = true;
    $("journey-status").replaceChildren();
    // A new order is unknown to the saga monitor until its OrderConfirmed event arrives.
    const text =
      error.status === 404
        ? `No saga for order ${orderId} yet: the monitor knows an order once its OrderConfirmed event arrives (404: ${error.detail}).`
        : error.message;
    show("journey-error", text);
  }
}

function drawJourney(timeline) {
  $("journey-status").replaceChildren(statusBadge(timeline.status));
  $("journey-order").textContent = timeline.order_id;
  $("journey-correlation").textContent = timeline.correlation_id;
  $("journey-step").replaceChildren(
    timeline.current_step || "—",
    timeline.stuck_step ? el("span", { className: "stuck" }, ` · stuck at ${timeline.stuck_step}`) : "",
  );
  $("journey-compensable").textContent = timeline.compensable
    ? "it is compensated (before the pivot)"
    : "it is left for an operator (past the pivot)";
  $("journey-workflows").replaceChildren(...timeline.temporal_workflows.map(workflowLink));
  $("journey-trace").replaceChildren(traceLink(timeline));

  const causes = new Map(timeline.events.map((event) => [event.event_id, event.type]));
  $("journey-events").replaceChildren(...timeline.events.map((event) => eventItem(event, causes)));
  const expected = timeline.expected.map(expectedItem);
  $("journey-expected").replaceChildren(
    ...(expected.length ? expected : [el("li", { className: "muted" }, "Nothing: the saga is not waiting for any event.")]),
  );
  $("journey-body").hidden = false;
  refreshPayment(timeline.order_id);
  refreshLogs(timeline.order_id); // on each change of the journey, not every second: it reads files
}

// The order's trace in the viewer (Zipkin on the local stack), when the timeline carries a link.
function traceLink(timeline) {
  if (!timeline.trace_id) return "—";
  if (!timeline.trace_url) return el("span", { className: "mono", title: "no trace viewer is configured" }, timeline.trace_id);
  return el(
    "a",
    { href: timeline.trace_url, target: "_blank", rel: "noopener noreferrer", className: "mono", dataset: { testid: "journey-trace-link" } },
    timeline.trace_id,
  );
}

// --- the order's log lines, every component's, merged by time (as `make logs ORDER=...`) ----

async function refreshLogs(orderId) {
  let logs;
  try {
    logs = await api("GET", `/api/v1/admin/orders/${encodeURIComponent(orderId)}/logs`);
  } catch (error) {
    if (orderId !== state.selectedOrder) return;
    $("journey-logs").replaceChildren();
    $("journey-logs-note").textContent = error.status === 404 ? "No log files reach the gateway here." : error.message;
    return;
  }
  if (orderId !== state.selectedOrder) return;
  $("journey-logs-note").textContent = logs.lines.length ? `${logs.lines.length} lines` : "No line names this order yet.";
  $("journey-logs").replaceChildren(
    ...logs.lines.map((line) =>
      el(
        "li",
        { className: `log level-${(line.level || "").toLowerCase()}` },
        el("span", { className: "time" }, line.time.slice(11)),
        " ",
        el("span", { className: "component" }, line.component),
        " ",
        el("span", { className: "level" }, line.level || ""),
        " ",
        el("span", { className: "message" }, line.message || ""),
      ),
    ),
  );
}

// --- a refund the gateway refused: the operator decides (retry, or refunded by hand) ------

async function refreshPayment(orderId) {
  let payment;
  try {
    payment = await api("GET", `/api/v1/admin/payments/${encodeURIComponent(orderId)}`);
  } catch (error) {
    $("journey-payment").textContent = error.status === 404 ? "—" : error.message;
    $("refund-decision").hidden = true;
    return;
  }
  if (orderId !== state.selectedOrder) return;
  $("journey-payment").replaceChildren(
    badge(payment.status, payment.status === "REFUND_FAILED" ? "status-COMPENSATION_FAILED" : "tag"),
    ` ${payment.amount} ${payment.currency} via ${payment.gateway || "—"}`,
  );
  $("refund-failure").textContent = payment.failure_reason || "";
  $("refund-decision").hidden = !payment.awaiting_decision;
  $("refund-decisions").replaceChildren(
    ...payment.decisions.map((d) =>
      el(
        "li",
        {},
        el("strong", {}, d.action === "retry" ? "Refund retried" : "Recorded as refunded by hand"),
        ` by ${d.operator} at ${clock(d.decided_at)}: ${d.reason}`,
        d.reference ? ` (reference ${d.reference})` : "",
      ),
    ),
  );
}

async function decideRefund(action) {
  const orderId = state.selectedOrder;
  const reason = $("refund-reason").value.trim();
  if (!orderId || !reason) return show("refund-decision-result", "Say why: it goes into the audit record.");
  const reference = $("refund-reference").value.trim();
  const path = `/api/v1/admin/payments/${encodeURIComponent(orderId)}/refund/${action}`;
  for (const id of ["refund-retry", "refund-by-hand"]) $(id).disabled = true;
  try {
    await api("POST", path, reference && action === "refunded-by-hand" ? { reason, reference } : { reason });
    show("refund-decision-result", action === "retry" ? "Refund sent to the gateway again." : "Refund recorded as made by hand.");
    $("refund-reason").value = "";
    $("refund-reference").value = "";
  } catch (error) {
    show("refund-decision-result", error.message);
  } finally {
    for (const id of ["refund-retry", "refund-by-hand"]) $(id).disabled = false;
    refreshPayment(orderId);
  }
}

function workflowLink(workflowId) {
  const { temporal_ui_url: base, temporal_namespace: namespace } = state.config;
  const href = `${base}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return el("a", { href, target: "_blank", rel: "noopener noreferrer", className: "workflow mono" }, workflowId);
}

function eventItem(event, causes) {
  const cause = event.causation_id && causes.get(event.causation_id);
  return el(
    "li",
    { className: event.late ? "event late" : "event" },
    el("span", { className: "time mono", title: `published ${event.time}, seen ${event.received_at}` }, clock(event.time, true)),
    el("span", { className: "event-type" }, event.type),
    contextChip(event.source),
    event.late ? badge("late", "late-badge") : "",
    el(
      "div",
      { className: "meta" },
      cause ? `after ${cause}` : "",
      cause && event.trace_id ? " · " : "",
      event.trace_id ? el("span", { className: "mono" }, `trace ${event.trace_id}`) : "",
    ),
  );
}

function expectedItem(step) {
  return el(
    "li",
    {},
    el("strong", {}, step.step),
    " ",
    step.events.join(" or "),
    step.compensation ? badge("compensation", "tag") : "",
    step.optional ? badge("optional", "tag") : "",
    " ",
    step.deadline ? el("span", { className: "deadline" }, `by ${clock(step.deadline)} (`, countdown(step.deadline), ")") : "",
  );
}

// --- placing a demo order ----------------------------------------------------------------

async function loadProducts() {
  try {
    const { items } = await api("GET", "/api/v1/products");
    const options = items.map((product) =>
      el("option", { value: product.sku }, `${product.name} (${product.sku}, ${product.available ?? "?"} in stock)`),
    );
    $("demo-sku").replaceChildren(...options);
    const inStock = items.find((product) => product.available === null || product.available > 0);
    if (inStock) $("demo-sku").value = inStock.sku;
  } catch (error) {
    show("demo-result", `Could not list the products: ${error.message}`);
  }
}

async function placeDemoOrder(event) {
  event.preventDefault();
  const customerId = `demo-${Math.random().toString(36).slice(2, 10)}`;
  const order = {
    customer: { id: customerId, email: `${customerId}@example.com`, name: "Ada Lovelace" },
    items: [{ sku: $("demo-sku").value, quantity: 1 }],
    shipping_address: { name: "Ada Lovelace", line1: "12 Analytical Way", city: "London", postal_code: "N1 9GU", country: "GB" },
    payment: { token: $("demo-token").value },
    promotion_codes: [],
    channel: "web",
  };
  $("demo-place").disabled = true;
  try {
    const accepted = await api("POST", "/api/v1/orders", order);
    show("demo-result", `Order ${accepted.order_id} accepted (${accepted.status}).`);
    selectOrder(accepted.order_id);
  } catch (error) {
    show("demo-result", `The order was not accepted: ${error.message}`);
  } finally {
    $("demo-place").disabled = false;
  }
}

// --- a demo customer's token -------------------------------------------------------------

// The same sign-in, for a customer: the token to copy into curl, and what that customer sees with
// it (only their own orders).
async function customerToken(event) {
  event.preventDefault();
  const customerId = $("token-customer").value.trim();
  hide("token-error");
  try {
    const token = await requestToken(customerId, $("token-password").value);
    const customer = { kind: "bearer", value: token, who: customerId };
    const page = await api("GET", "/api/v1/orders?limit=10", undefined, customer);
    $("token-value").value = token;
    $("token-curl").textContent = `curl -H "Authorization: Bearer ${token}" ${location.origin}/api/v1/orders`;
    const orders = page.items.map((order) =>
      el("li", { dataset: { orderId: order.order_id } }, el("span", { className: "mono" }, order.order_id), " ", statusBadge(order.status)),
    );
    $("token-orders").replaceChildren(...(orders.length ? orders : [el("li", { className: "muted" }, `${customerId} has no orders yet.`)]));
    $("token-result").hidden = false;
  } catch (error) {
    $("token-result").hidden = true;
    show("token-error", error.message);
  }
}

// --- dead letters, payment gateways, consumers -------------------------------------------

async function refreshPanels() {
  await Promise.all([refreshFigures(), refreshDeadLetters(), refreshNotStarted(), refreshGateways(), refreshConsumers()]);
}

// --- key figures ------------------------------------------------------------------------

async function refreshFigures() {
  try {
    const figures = await api("GET", "/api/v1/admin/figures");
    hide("figures-error");
    drawFigures(figures, ordersPerSecond(figures));
  } catch (error) {
    show("figures-error", error.message);
  }
}

// The counters only grow: the rate is the difference between two readings.
function ordersPerSecond(figures) {
  const now = Date.now(), ended = figures.orders_completed + figures.orders_cancelled;
  const previous = state.lastFigures;
  state.lastFigures = { at: now, placed: figures.orders_placed, ended };
  if (!previous || now <= previous.at) return null;
  const seconds = (now - previous.at) / 1000;
  return { placed: Math.max(figures.orders_placed - previous.placed, 0) / seconds, ended: Math.max(ended - previous.ended, 0) / seconds };
}

function drawFigures(figures, rate) {
  const sum = (counts) => Object.values(counts).reduce((total, n) => total + n, 0);
  const listed = (counts) => Object.entries(counts).filter(([, n]) => n > 0).map(([name, n]) => `${name} ${n}`).join(" · ");
  const seconds = (value) => (value === null ? "–" : `${value.toFixed(1)} s`);
  const openBreakers = Object.entries(figures.breakers).filter(([, breakerState]) => breakerState !== "closed");
  const entries = [
    ["Orders placed", figures.orders_placed, rate ? `${rate.placed.toFixed(1)}/s now` : ""],
    ["Completed", figures.orders_completed, rate ? `${rate.ended.toFixed(1)}/s ended now` : ""],
    ["Cancelled", figures.orders_cancelled, listed(figures.cancelled_by_reason)],
    ["Saga p50 / p95", `${seconds(figures.saga_seconds_p50)} / ${seconds(figures.saga_seconds_p95)}`, `${figures.sagas_timed_out} timed out`],
    ["Consumer lag", sum(figures.consumer_lag), listed(figures.consumer_lag) || "every consumer caught up"],
    ["Outbox backlog", sum(figures.outbox_backlog), figures.outbox_oldest_unsent_seconds ? `oldest ${figures.outbox_oldest_unsent_seconds} s` : "nothing waiting"],
    ["Dead letters", sum(figures.dead_letters), listed(figures.dead_letters)],
    ["Breakers open", openBreakers.length, openBreakers.map(([name, breakerState]) => `${name} ${breakerState.replace("_", " ")}`).join(" · ") || "all closed"],
  ];
  const items = entries.map(([label, value, detail]) =>
    el("div", { className: "figure", dataset: { figure: label } }, el("dt", {}, label), el("dd", {}, String(value)), el("dd", { className: "small muted" }, detail)),
  );
  if (figures.unreachable.length) {
    items.push(el("div", { className: "figure" }, el("dt", {}, "Not read"), el("dd", { className: "small error" }, figures.unreachable.join(", "))));
  }
  $("figures").replaceChildren(...items);
}

async function refreshDeadLetters() {
  try {
    const page = await api("GET", "/api/v1/admin/dead-letters?limit=20");
    hide("dead-letters-error");
    $("dead-letter-total").textContent = page.total;
    if (changed("deadLetters", page.items)) drawDeadLetters(page.items);
  } catch (error) {
    show("dead-letters-error", error.message);
  }
}

// Orders the order starter could not start (a stored submission that no longer validates, say):
// PENDING, with no saga yet, so only the order context knows about them.
async function refreshNotStarted() {
  try {
    const page = await api("GET", "/api/v1/admin/orders/not-started?limit=20");
    hide("not-started-error");
    $("not-started-total").textContent = page.total;
    if (changed("notStarted", page.items)) drawNotStarted(page.items);
  } catch (error) {
    show("not-started-error", error.message);
  }
}

function drawNotStarted(orders) {
  const rows = orders.map((order) =>
    el(
      "tr",
      {},
      el("td", { className: "mono", title: order.order_id }, shortId(order.order_id)),
      el("td", {}, clock(order.created_at)),
      el("td", { title: order.start_failure }, el("div", { className: "small clip" }, order.start_failure)),
    ),
  );
  $("not-started").replaceChildren(...rows);
  $("not-started-empty").hidden = orders.length > 0;
}

function orderLink(orderId) {
  return el("button", { type: "button", className: "link mono", onclick: () => selectOrder(orderId) }, shortId(orderId));
}

// "concerto.payment.PaymentCompleted.v1" -> "PaymentCompleted" (the CloudEvents type is long).
function eventName(type) {
  const parts = (type || "").split(".");
  return parts.length === 4 ? parts[2] : type;
}

function drawDeadLetters(letters) {
  const rows = letters.map((letter) =>
    el(
      "tr",
      {},
      el(
        "td",
        {},
        el("div", { title: letter.event_type || "" }, letter.event_type ? eventName(letter.event_type) : "(undecodable)"),
        el(
          "div",
          { className: "small muted" },
          `#${letter.id} · ${letter.topic}`,
          letter.order_id ? " · " : "",
          letter.order_id ? orderLink(letter.order_id) : "",
        ),
      ),
      el("td", {}, el("div", {}, letter.consumer), el("div", { className: "small muted" }, clock(letter.dead_lettered_at))),
      el("td", { title: letter.error }, el("div", {}, letter.reason), el("div", { className: "small muted clip" }, letter.error)),
      el(
        "td",
        {},
        letter.redriven_at
          ? el("span", { className: "small muted" }, `redriven ${clock(letter.redriven_at)}`)
          : el("button", { type: "button", onclick: (e) => redrive(letter, e.currentTarget) }, "Redrive"),
      ),
    ),
  );
  $("dead-letters").replaceChildren(...rows);
  $("dead-letters-empty").hidden = letters.length > 0;
}

async function redrive(letter, button) {
  button.disabled = true;
  try {
    const redriven = await api("POST", `/api/v1/admin/dead-letters/${letter.id}/redrive`);
    const what = `#${letter.id} ${eventName(letter.event_type) || ""}`;
    show("dead-letters-result", `${what} is back on ${redriven.topic} (${clock(redriven.redriven_at)}).`);
  } catch (error) {
    const text = error.status === 409 ? `#${letter.id} was already redriven (409): ${error.detail}` : error.message;
    show("dead-letters-result", text);
  } finally {
    state.rendered.deadLetters = null;
    refreshDeadLetters();
  }
}

async function refreshGateways() {
  try {
    const gateways = await api("GET", "/api/v1/admin/payment-gateways");
    hide("gateways-error");
    if (changed("gateways", gateways)) drawGateways(gateways);
  } catch (error) {
    show("gateways-error", error.message);
  }
}

function drawGateways(gateways) {
  const rows = gateways.map((gateway) => {
    const calls = Object.entries(gateway.calls).map(([kind, count]) => `${kind} ${count}`).join(" · ");
    const breaker = BREAKER_STATES.includes(gateway.state) ? `breaker-${gateway.state}` : "status-unknown";
    return el(
      "tr",
      {},
      el("td", {}, el("strong", {}, gateway.name)),
      el(
        "td",
        {},
        badge(gateway.state.replace("_", " "), breaker),
        gateway.consecutive_failures ? el("div", { className: "small muted" }, `${gateway.consecutive_failures} failures in a row`) : "",
        gateway.state === "open" ? el("div", { className: "small muted" }, `retry in ${Math.ceil(gateway.retry_in_seconds)} s`) : "",
      ),
      el("td", { className: "small" }, calls || "no calls"),
      el(
        "td",
        { className: "actions" },
        el("button", { type: "button", onclick: () => setFaults(gateway.name, { outage: true }) }, "Switch off"),
        el("button", { type: "button", className: "quiet", onclick: () => setFaults(gateway.name, undefined) }, "Restore"),
      ),
    );
  });
  $("gateways").replaceChildren(...rows);
}

// `{"outage": true}` switches a gateway off; no body clears every fault.
async function setFaults(name, faults) {
  try {
    const inForce = await api("PUT", `/api/v1/admin/payment-gateways/${encodeURIComponent(name)}/faults`, faults);
    // seed and hang_seconds only qualify the other faults: not worth a mention on their own.
    const active = Object.entries(inForce || {}).filter(
      ([fault, value]) => !["seed", "hang_seconds"].includes(fault) && value !== null && value !== false && value !== 0,
    );
    const described = active.map(([fault, value]) => (value === true ? fault : `${fault} ${value}`)).join(", ");
    show("gateways-result", `${name}: ${described ? `faults now ${described}` : "no faults, working normally"}.`);
  } catch (error) {
    show("gateways-result", `${name}: ${error.message}`);
  }
  refreshGateways();
}

async function refreshConsumers() {
  const answers = await Promise.allSettled(CONTEXTS.map((context) => api("GET", `/api/v1/admin/consumers/${context}`)));
  const consumers = answers.map((answer, i) => ({
    context: CONTEXTS[i],
    controls: answer.status === "fulfilled" ? answer.value : null,
    error: answer.status === "rejected" ? answer.reason.message : null,
  }));
  if (changed("consumers", consumers)) drawConsumers(consumers);
}

function drawConsumers(consumers) {
  const rows = consumers.map(({ context, controls, error }) => {
    if (!controls) return el("tr", {}, el("td", {}, contextChip(context)), el("td", { colSpan: 2, className: "error small" }, error));
    const failing = controls.fail_event_types;
    return el(
      "tr",
      { dataset: { context } },
      el("td", {}, contextChip(context)),
      el(
        "td",
        {},
        controls.paused ? badge("silent", "consumer-paused") : badge("listening", "consumer-listening"),
        failing.length ? el("div", { className: "small stuck" }, `fails ${failing.join(", ")}`) : "",
      ),
      el(
        "td",
        { className: "actions" },
        el(
          "button",
          { type: "button", onclick: () => setConsumer(context, { ...controls, paused: !controls.paused }) },
          controls.paused ? "Resume" : "Silence",
        ),
        failing.length
          ? el(
              "button",
              { type: "button", className: "quiet", onclick: () => setConsumer(context, { ...controls, fail_event_types: [] }) },
              "Stop failing",
            )
          : "",
      ),
    );
  });
  $("consumers").replaceChildren(...rows);
}

async function setConsumer(context, controls) {
  try {
    await api("PUT", `/api/v1/admin/consumers/${context}`, controls);
    hide("consumers-error");
  } catch (error) {
    show("consumers-error", `${context}: ${error.message}`);
  }
  refreshConsumers();
}

// --- start -------------------------------------------------------------------------------

function start() {
  $("signin-form").addEventListener("submit", signIn);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (key) useCredential({ kind: "key", value: key, who: "the admin API key" });
  });
  $("forget-key").addEventListener("click", () => askForSignIn(null));
  $("token-form").addEventListener("submit", customerToken);
  $("filter-all").addEventListener("click", () => setFilter(""));
  $("filter-stuck").addEventListener("click", () => setFilter("STUCK"));
  $("refund-retry").addEventListener("click", () => decideRefund("retry"));
  $("refund-by-hand").addEventListener("click", () => decideRefund("refunded-by-hand"));
  $("journey-logs-refresh").addEventListener("click", () => state.selectedOrder && refreshLogs(state.selectedOrder));
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const orderId = $("search-input").value.trim();
    if (orderId) selectOrder(orderId);
  });
  $("demo-form").addEventListener("submit", placeDemoOrder);
  setInterval(tickCountdowns, 1000);

  // #order=<id> reopens an order's journey after a reload.
  const linked = new URLSearchParams(location.hash.slice(1)).get("order");
  if (linked) {
    state.selectedOrder = linked;
    hide("journey-hint");
  }
  if (state.credential) connect();
  else askForSignIn(null);
}

start();
