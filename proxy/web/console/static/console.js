// The admin console: the admin key is entered once, kept in this tab (sessionStorage) and sent
// only as a bearer header to /admin/...; it never goes into a URL. Everything shown is built
// with textContent from the JSON answers.
"use strict";

(() => {
  const KEY_STORE = "freebusy-proxy.admin-key";
  const CHECK_LABELS = {
    token: "Application token",
    graph: "Microsoft Graph",
    breaker: "Circuit breaker",
    connections: "Connections",
  };
  const STATE_LABELS = {
    ok: "OK",
    closed: "Closed",
    half_open: "Half-open (probing)",
    open: "Open: not asking Graph",
    attention: "Needs attention",
    unreachable: "Unreachable",
  };

  const $ = (id) => document.getElementById(id);
  const login = $("login");
  const keyInput = $("admin-key");
  const loginError = $("login-error");
  const dashboard = $("dashboard");
  const toolbar = $("toolbar");
  const consoleError = $("console-error");

  class Refused extends Error {}

  function node(tag, className, text) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    if (text !== undefined && text !== null) element.textContent = String(text);
    return element;
  }

  function key() {
    return sessionStorage.getItem(KEY_STORE);
  }

  async function api(method, path, admin = key()) {
    const response = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${admin}`, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
    if (response.status === 401) throw new Refused("refused");
    if (response.status === 404 && method === "GET") return null;
    if (!response.ok) {
      let detail = `HTTP ${response.status}`;
      try {
        detail = (await response.json()).detail || detail;
      } catch {
        // not a problem document: keep the status
      }
      throw new Error(detail);
    }
    return response.status === 204 ? {} : response.json();
  }

  function header(row) {
    const thead = node("thead");
    thead.append(row);
    return thead;
  }

  function when(text) {
    if (!text) return "—";
    return new Date(text).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function count(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  // --- Sections -------------------------------------------------------------------------
  function drawReadiness(doc) {
    const box = $("readiness");
    box.replaceChildren();
    for (const check of doc.checks) {
      const card = node("div", `check${check.ok ? "" : " bad"}`);
      card.dataset.check = check.name;
      const name = node("div", "name", CHECK_LABELS[check.name] || check.name);
      if (check.gates_readiness) {
        const tag = node("span", "tag", "readyz");
        tag.title = "This check decides what /readyz answers";
        name.append(" ", tag);
      }
      card.append(name, node("div", "state", STATE_LABELS[check.state] || check.state));
      if (check.counts) {
        const parts = Object.entries(check.counts)
          .filter(([, n]) => n > 0)
          .map(([status, n]) => `${n} ${status.replaceAll("_", " ")}`);
        card.append(node("div", "detail", parts.join(", ") || "none yet"));
      }
      box.append(card);
    }
  }

  function actionButton(label, className, onClick) {
    const button = node("button", `button small ${className}`, label);
    button.type = "button";
    button.addEventListener("click", onClick);
    return button;
  }

  async function act(question, method, path) {
    if (!window.confirm(question)) return;
    try {
      await api(method, path);
    } catch (error) {
      showError(error);
    }
    await refresh();
  }

  function drawConnections(doc) {
    const box = $("connections");
    box.replaceChildren();
    if (doc === null) {
      box.append(node("p", "muted", "Delegated connections are not enabled on this proxy ([connect] kinds)."));
      return;
    }
    if (doc.connections.length === 0) {
      const empty = node("p", "muted", "No connections yet. ");
      const link = node("a", "", "Connect a calendar");
      link.href = "/connect";
      empty.append(link);
      box.append(empty);
      return;
    }
    const table = node("table");
    const head = node("tr");
    for (const title of ["Kind", "Account or organisation", "Status", "Permissions", "Connected", "Last refresh", ""]) {
      head.append(node("th", "", title));
    }
    table.append(header(head));
    const body = node("tbody");
    for (const c of doc.connections) {
      const row = node("tr");
      row.dataset.connection = c.id;
      row.append(node("td", "", c.kind === "individual" ? "Individual" : "Enterprise"));
      const who = node("td");
      if (c.kind === "individual") {
        who.append(c.account);
      } else {
        who.append(`${c.tenant_name}: ${c.domains.join(", ")}`);
        who.append(node("div", "scopes", `consented by ${c.account}`));
      }
      row.append(who);
      const status = node("td");
      status.append(node("span", `badge ${c.status}`, c.status.replaceAll("_", " ")));
      row.append(status);
      const scopes = node("td", "scopes", c.scopes.join(" "));
      if (c.excess_scopes.length) scopes.append(node("div", "error", `beyond Free/Busy: ${c.excess_scopes.join(" ")}`));
      row.append(scopes);
      row.append(node("td", "", when(c.created)));
      row.append(node("td", "", when(c.last_refresh)));
      const actions = node("td");
      const buttons = node("div", "row-actions");
      if (c.status !== "revoked") {
        buttons.append(
          actionButton("Revoke", "", () =>
            act(`Revoke ${c.account}? The proxy stops using it and erases its tokens.`, "POST", `/admin/connections/${encodeURIComponent(c.id)}/revoke`),
          ),
        );
      }
      buttons.append(
        actionButton("Delete", "danger", () =>
          act(`Delete the connection of ${c.account} and its record?`, "DELETE", `/admin/connections/${encodeURIComponent(c.id)}`),
        ),
      );
      actions.append(buttons);
      row.append(actions);
      body.append(row);
    }
    table.append(body);
    box.append(table);
  }

  function policySummary(p) {
    const detail = { status: "statuses", busy: "busy only (merged)", slots: "common free slots only" }[p.detail] || p.detail;
    const parts = [detail, p.granularity_minutes ? `${p.granularity_minutes}-minute grid` : "exact times"];
    parts.push(p.rate_per_minute ? `${p.rate_per_minute}/min` : "no rate limit");
    parts.push(p.max_lookback_days ? `${p.max_lookback_days} days back` : "no past");
    parts.push(`${p.max_lookahead_days} days ahead`);
    if (p.max_window_days) parts.push(`windows up to ${p.max_window_days} days`);
    if (p.max_schedules) parts.push(`up to ${p.max_schedules} addresses a request`);
    return parts.join(" · ");
  }

  function drawConsumers(doc) {
    const box = $("consumers");
    box.replaceChildren();
    const table = node("table");
    const head = node("tr");
    head.append(node("th", "", "Name"), node("th", "", "Allowlist"), node("th", "", "Policy"));
    head.append(node("th", "num", "Requests"), node("th", "num", "Rate limited"), node("th", "num", "Refused"));
    table.append(header(head));
    const body = node("tbody");
    for (const c of doc.consumers) {
      const row = node("tr");
      row.dataset.consumer = c.name;
      const allow = [];
      if (c.allowlist.addresses) allow.push(count(c.allowlist.addresses, "address", "addresses"));
      if (c.allowlist.domains) allow.push(count(c.allowlist.domains, "domain", "domains"));
      row.append(node("td", "", c.name), node("td", "", allow.join(", ") || "nobody"));
      row.append(node("td", "scopes", policySummary(c.policy)));
      row.append(node("td", "num", c.requests), node("td", "num", c.rate_limited), node("td", "num", c.refused));
      body.append(row);
    }
    table.append(body);
    box.append(table);
  }

  function stat(name, value, detail) {
    const card = node("div", "stat");
    card.append(node("div", "name", name), node("div", "value", value));
    if (detail) card.append(node("div", "detail", detail));
    return card;
  }

  function breakdown(counts) {
    const entries = Object.entries(counts);
    return entries.length ? entries.map(([k, n]) => `${k}: ${n}`).join(", ") : "none yet";
  }

  function drawEconomy(doc) {
    const calls = Object.values(doc.get_schedule_calls).reduce((a, b) => a + b, 0);
    const lookups = Object.values(doc.cache_lookups).reduce((a, b) => a + b, 0);
    const throttled = Object.values(doc.throttle_events).reduce((a, b) => a + b, 0);
    const rate = doc.cache_hit_rate === null ? "—" : `${Math.round(doc.cache_hit_rate * 100)}%`;
    $("economy").replaceChildren(
      stat("getSchedule calls", calls, breakdown(doc.get_schedule_calls)),
      stat("Cache hit rate", rate, `${lookups} mailbox-day lookups (${breakdown(doc.cache_lookups)})`),
      stat("Throttling events", throttled, breakdown(doc.throttle_events)),
      stat("Cache entries", doc.cache_entries, "mailbox-days held"),
      stat(
        "Batched fetches",
        doc.batches,
        doc.schedules_per_batch === null ? "" : `${doc.schedules_per_batch.toFixed(1)} schedules per call`,
      ),
    );
  }

  // --- Flow -------------------------------------------------------------------------------
  function showError(error) {
    consoleError.textContent = `Could not complete that: ${error.message}`;
    consoleError.hidden = false;
  }

  function showDashboard() {
    login.hidden = true;
    dashboard.hidden = false;
    toolbar.hidden = false;
    consoleError.hidden = true;
  }

  function showLogin(message) {
    dashboard.hidden = true;
    toolbar.hidden = true;
    login.hidden = false;
    loginError.textContent = message || "";
    loginError.hidden = !message;
    keyInput.focus();
  }

  async function refresh() {
    try {
      const [readiness, connections, consumers, economy] = await Promise.all([
        api("GET", "/admin/readiness"),
        api("GET", "/admin/connections"),
        api("GET", "/admin/consumers"),
        api("GET", "/admin/economy"),
      ]);
      drawReadiness(readiness);
      drawConnections(connections);
      drawConsumers(consumers);
      drawEconomy(economy);
      $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (error instanceof Refused) {
        sessionStorage.removeItem(KEY_STORE);
        showLogin("The admin key was refused; sign in again.");
        return;
      }
      showError(error);
    }
  }

  login.addEventListener("submit", async (event) => {
    event.preventDefault();
    const candidate = keyInput.value.trim();
    keyInput.value = "";
    try {
      await api("GET", "/admin/readiness", candidate);
    } catch (error) {
      showLogin(error instanceof Refused ? "That is not the admin key (or none is configured)." : error.message);
      return;
    }
    sessionStorage.setItem(KEY_STORE, candidate);
    showDashboard();
    await refresh();
  });
  $("refresh").addEventListener("click", () => {
    consoleError.hidden = true;
    refresh();
  });
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    showLogin("Signed out.");
  });

  if (key()) {
    showDashboard();
    refresh();
  } else {
    showLogin();
  }
})();
