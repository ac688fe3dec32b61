// Hookline's operator page: the router's own API, with the admin token given once.
// Everything a subscriber or a producer sent is shown with textContent, never as markup.
"use strict";

const TOKEN_KEY = "hookline-admin-token";
const RATES_EVERY_MS = 5000;

// el("td", {className: "ok"}, "text", child, …): an element whose text is only ever text.
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

class ApiError extends Error {
  constructor(status, body) {
    const fields = (body && body.errors || []).map((e) => `${e.field}: ${e.message}`);
    super([`${status}: ${(body && body.error) || "failed"}`, ...fields].join("; "));
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : null;
  if (response.status === 401) {
    signOut("That token was refused.");
    throw new ApiError(401, parsed);
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return { body: parsed, headers: response.headers };
}

function nextLink(headers) {
  const link = headers.get("Link") || "";
  const match = link.match(/<([^>]+)>;\s*rel="next"/);
  return match ? match[1] : null;
}

// A sender's circuit breaker: open until a time, half-open (one probe may go) past it, or closed.
function circuit(webhook) {
  if (!webhook.circuit_open_until) return "closed";
  const until = new Date(webhook.circuit_open_until);
  return until > new Date() ? `open until ${until.toLocaleTimeString()}` : "half-open";
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function show(...nodes) {
  const view = document.getElementById("view");
  view.replaceChildren(...nodes);
  view.hidden = false;
}

function table(headings, rows) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, ...headings.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows),
  );
}

// ---- views ------------------------------------------------------------------------------------

async function webhooksView() {
  const rows = [];
  let path = "/webhooks?per_page=100";
  while (path) {
    const { body, headers } = await api("GET", path);
    for (const webhook of body) {
      const state = webhook.disabled ? "disabled" : webhook.last_error ? "failing" : "ok";
      rows.push(
        el(
          "tr",
          { className: "webhook" },
          el("td", {}, el("a", { href: `#/webhooks/${webhook.id}` }, webhook.name)),
          el("td", {}, webhook.event),
          el("td", {}, webhook.uri),
          el("td", { className: state === "ok" ? "ok" : "failing" }, state),
          el("td", { className: webhook.circuit_open_until ? "circuit failing" : "circuit ok" }, circuit(webhook)),
          el("td", {}, webhook.last_error || ""),
          el("td", {}, when(webhook.last_success_at)),
          el("td", {}, String(webhook.consecutive_failures || 0)),
        ),
      );
    }
    path = nextLink(headers);
  }
  show(
    el("h2", {}, "Webhooks"),
    table(["Name", "Event", "URI", "State", "Circuit", "Last error", "Last success", "Failures"], rows),
  );
}

function attemptsTable(delivery) {
  return table(
    ["#", "At", "Outcome", "Status", "ms", "Error", "Answer"],
    delivery.attempts.map((a) =>
      el(
        "tr",
        { className: "attempt" },
        el("td", {}, String(a.attempt)),
        el("td", {}, when(a.at)),
        el("td", { className: a.outcome === "delivered" ? "ok" : "failing" }, a.outcome),
        el("td", { className: "status" }, a.status_code === null ? "" : String(a.status_code)),
        el("td", {}, a.duration_ms === null ? "" : String(a.duration_ms)),
        el("td", {}, a.error || ""),
        el("td", {}, el("pre", {}, a.response_body || "")),
      ),
    ),
  );
}

function deliveryRow(delivery, extra) {
  const details = el("tr", { hidden: true }, el("td", { colSpan: 7 }, attemptsTable(delivery)));
  const toggle = el("button", { type: "button", className: "attempts-toggle" }, "attempts");
  toggle.addEventListener("click", () => {
    details.hidden = !details.hidden;
  });
  const row = el(
    "tr",
    { className: "delivery" },
    el("td", {}, delivery.delivery_id),
    el("td", {}, delivery.event_type),
    el("td", { className: delivery.outcome === "delivered" ? "ok" : "failing" }, delivery.outcome),
    el("td", {}, String(delivery.attempt_count)),
    el("td", {}, when(delivery.last_attempt_at)),
    el("td", {}, toggle),
    el("td", {}, extra || ""),
  );
  return [row, details];
}

async function webhookView(id) {
  const webhook = (await api("GET", `/webhooks/${encodeURIComponent(id)}`)).body;
  const facts = el("dl", {});
  for (const [name, value] of [
    ["Event", webhook.event],
    ["URI", webhook.uri],
    ["Sent as", `${webhook.method} ${webhook.format}${webhook.signed ? "" : ", unsigned"}${webhook.https_only ? ", https only" : ""}`],
    ["Policy", webhook.webhook_policy || ""],
    ["Disabled", webhook.disabled ? `yes ${webhook.disabled_reason || ""}` : "no"],
    ["Circuit", circuit(webhook)],
    ["Last error", webhook.last_error || ""],
    ["Last attempt", when(webhook.last_attempt_at)],
    ["Last success", when(webhook.last_success_at)],
    ["Failing since", when(webhook.failing_since)],
    ["Failures in a row", String(webhook.consecutive_failures || 0)],
  ]) {
    facts.append(el("dt", {}, name), el("dd", {}, value));
  }
  const body = el("tbody", {});
  const more = el("button", { type: "button", hidden: true }, "More");
  let next = `/webhooks/${encodeURIComponent(id)}/deliveries?limit=50`;
  async function load() {
    const { body: deliveries, headers } = await api("GET", next);
    for (const delivery of deliveries) body.append(...deliveryRow(delivery));
    next = nextLink(headers);
    more.hidden = !next;
  }
  more.addEventListener("click", load);
  const deliveries = el(
    "table",
    {},
    el(
      "thead",
      {},
      el("tr", {}, ...["Delivery (webhook-id)", "Type", "Outcome", "Attempts", "Last attempt", "", ""].map((h) => el("th", {}, h))),
    ),
    body,
  );
  show(el("h2", {}, webhook.name), facts, el("h3", {}, "Deliveries"), deliveries, more);
  await load();
}

async function deadLettersView() {
  const message = el("p", { id: "redrive-result", role: "status" });
  const { body } = await api("GET", "/dead-letters?limit=100");
  const rows = [];
  for (const delivery of body) {
    const redrive = el("button", { type: "button", className: "redrive" }, "Redrive");
    redrive.addEventListener("click", async () => {
      redrive.disabled = true;
      try {
        const answer = await api("POST", "/dead-letters/redrive", { delivery_ids: [delivery.delivery_id] });
        message.className = answer.body.redriven ? "ok" : "failing";
        message.textContent = `Redriven: ${answer.body.redriven}, kept: ${answer.body.kept} (${answer.body.status})`;
      } catch (error) {
        message.className = "error";
        message.textContent = error.message;
        redrive.disabled = false;
      }
    });
    rows.push(...deliveryRow(delivery, redrive));
  }
  show(
    el("h2", {}, "Dead letters"),
    message,
    rows.length ? table(["Delivery (webhook-id)", "Type", "Outcome", "Attempts", "Last attempt", "", ""], rows)
      : el("p", { className: "muted" }, "No dead letters."),
  );
}

async function showRates() {
  const rates = document.getElementById("rates");
  try {
    const { body } = await api("GET", "/stats/attempts");
    const minute = body.windows[0];
    const per = minute.per_s;
    const parts = Object.keys(per).sort().map((outcome) => `${outcome} ${per[outcome]}/s`);
    rates.textContent = parts.length ? `last minute: ${parts.join(", ")}` : "last minute: no attempts";
  } catch (error) {
    rates.textContent = "";
  }
}

// ---- routing and signing in --------------------------------------------------------------------

async function route() {
  if (!token()) return;
  const hash = location.hash || "#/webhooks";
  try {
    const webhook = hash.match(/^#\/webhooks\/(.+)$/);
    if (webhook) await webhookView(decodeURIComponent(webhook[1]));
    else if (hash === "#/dead-letters") await deadLettersView();
    else await webhooksView();
  } catch (error) {
    if (error.status !== 401) show(el("p", { className: "error", role: "alert" }, error.message));
  }
}

function signedIn() {
  document.getElementById("sign-in").hidden = true;
  document.getElementById("nav").hidden = false;
  showRates();
  route();
}

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById("nav").hidden = true;
  document.getElementById("view").hidden = true;
  document.getElementById("sign-in").hidden = false;
  document.getElementById("sign-in-error").textContent = reason || "";
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
    try {
      await api("GET", "/webhooks?per_page=1");
      signedIn();
    } catch (error) {
      if (error.status !== 401) signOut(error.message);
    }
  });
  document.getElementById("sign-out").addEventListener("click", () => signOut(""));
  window.addEventListener("hashchange", route);
  setInterval(() => { if (token()) showRates(); }, RATES_EVERY_MS);
  if (token()) signedIn();
  else signOut("");
});
