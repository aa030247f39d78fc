// Conveyor dashboard: follows /dashboard/events (server-sent events) and redraws the parts that
// change. Plain JavaScript, no build step; every text goes in with textContent, never as HTML.
(() => {
  /** @type {Record<string, any>} */
  const state = {};
  let viewer = { name: "", role: "read", actor: "" };
  // Server time minus local time, so "12 s ago" is right even when the clocks disagree.
  let clockOffset = 0;
  /** Task ids whose log is unfolded, kept across redraws. */
  const openLogs = new Set();
  /** Actions on their way (`retry:<id>`, `ack:<id>`), so a redraw keeps the button busy. */
  const pending = new Set();
  const charts = {};

  const $ = (id) => document.getElementById(id);

  /** Builds an element: h("a", {href: "…", class: "x"}, "text", child…). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key.startsWith("data-")) el.setAttribute(key, String(value));
      else if (value === true) el.setAttribute(key, "");
      else el.setAttribute(key, String(value));
    }
    for (const child of children.flat(Number.POSITIVE_INFINITY)) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const now = () => Date.now() + clockOffset;

  function duration(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${s % 60}s`;
    const hours = Math.floor(m / 60);
    if (hours < 48) return `${hours}h ${m % 60}m`;
    return `${Math.floor(hours / 24)}d ${hours % 24}h`;
  }

  /** A span that keeps saying how long ago `at` was (refreshed every second). */
  function ago(at, suffix = " ago") {
    if (at === null || at === undefined) return h("span", { text: "never" });
    return h("span", {
      class: "ago",
      "data-at": at,
      "data-suffix": suffix,
      title: new Date(at).toLocaleString(),
      text: duration(now() - at) + suffix,
    });
  }

  /** A span that counts down to `at`. */
  function until(at) {
    return h("span", {
      class: "until",
      "data-at": at,
      title: new Date(at).toLocaleString(),
      text: duration(at - now()),
    });
  }

  function tickClocks() {
    for (const el of document.querySelectorAll(".ago")) {
      el.textContent = duration(now() - Number(el.dataset.at)) + (el.dataset.suffix || "");
    }
    for (const el of document.querySelectorAll(".until")) {
      el.textContent = duration(Number(el.dataset.at) - now());
    }
  }

  const TONES = {
    queued: "info",
    retry_wait: "warn",
    held: "muted",
    assigned: "info",
    running: "info",
    pushed: "info",
    review: "info",
    merging: "info",
    waiting_human: "warn",
    merged: "ok",
    cancelled: "muted",
    dead: "bad",
    failed: "bad",
    busy: "info",
    idle: "ok",
    draining: "warn",
    online: "ok",
    offline: "muted",
    firing: "bad",
    cleared: "muted",
    critical: "bad",
    warning: "warn",
  };
  const badge = (text, tone) =>
    h("span", {
      class: "badge",
      "data-tone": tone || TONES[text] || "",
      text: text.replace("_", " "),
    });
  /** A task's `repo#number`, linking its page when the task is known by id. */
  const ref = (t) =>
    t.task_id
      ? h("a", {
          class: "ref",
          href: `/dashboard/tasks/${encodeURIComponent(t.task_id)}`,
          text: `${t.repo}#${t.issue_number}`,
        })
      : h("span", { class: "ref", text: `${t.repo}#${t.issue_number}` });
  const prLink = (url, number) =>
    url
      ? h("a", {
          href: url,
          target: "_blank",
          rel: "noopener noreferrer",
          text: `PR #${number ?? ""}`,
        })
      : null;

  /** Per list: each row's key → what it was built from and its element. */
  const built = new Map();

  /**
   * Shows `rows` in a list, building elements only for rows that changed (by key and content),
   * so an unchanged row keeps its element: its focus, selection, scroll and unfolded log.
   */
  function show(listId, emptyId, rows, keyOf, build) {
    const list = $(listId);
    const previous = built.get(listId) || new Map();
    const next = new Map();
    const busy = [...pending].join();
    const elements = rows.map((row, i) => {
      const key = keyOf(row);
      const signature = JSON.stringify([row, i, viewer.role, busy]);
      const old = previous.get(key);
      const el = old && old.signature === signature ? old.el : build(row, i);
      next.set(key, { signature, el });
      return el;
    });
    built.set(listId, next);
    const current = [...list.children];
    const sameKeys =
      current.length === elements.length &&
      current.every((el, i) => el.dataset.key === elements[i].dataset.key);
    for (const [i, el] of elements.entries()) el.dataset.key = keyOf(rows[i]);
    if (sameKeys) {
      for (const [i, el] of elements.entries())
        if (current[i] !== el) list.replaceChild(el, current[i]);
    } else {
      list.replaceChildren(...elements);
    }
    if (emptyId) $(emptyId).hidden = rows.length > 0;
  }

  function notice(text, kind) {
    const el = $("notice");
    if (!text) {
      el.hidden = true;
      return;
    }
    el.textContent = text;
    el.dataset.kind = kind || "error";
    el.hidden = false;
  }

  const canAct = () => viewer.role === "admin";

  function actionButton(key, label, busyLabel, run) {
    const allowed = canAct();
    const busy = pending.has(key);
    return h(
      "button",
      {
        type: "button",
        class: "primary",
        "data-action": key.split(":")[0],
        disabled: !allowed || busy,
        title: allowed ? undefined : "Needs an admin token: you are signed in with a read token",
        onclick: async (event) => {
          const button = event.currentTarget;
          pending.add(key);
          button.disabled = true;
          button.textContent = busyLabel;
          try {
            await run();
          } finally {
            pending.delete(key);
            render();
          }
        },
      },
      busy ? busyLabel : label,
    );
  }

  /** Calls the JSON API with the session cookie; shows what went wrong, in the server's words. */
  async function post(path, body = {}) {
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify(body),
      });
    } catch {
      notice("Could not reach the server; nothing was changed. Try again.");
      return undefined;
    }
    let answer = {};
    try {
      answer = await response.json();
    } catch {
      // Not JSON: the status line below says enough.
    }
    if (response.status === 401) {
      location.assign("/dashboard/sign-in?ended=1");
      return undefined;
    }
    if (!response.ok) {
      notice(answer.error || `The server answered ${response.status}.`);
      return undefined;
    }
    notice("");
    return answer;
  }

  // ---- sections -------------------------------------------------------------------------------

  function renderAlerts() {
    const alerts = state.alerts || [];
    $("alerts").hidden = alerts.length === 0;
    show(
      "alerts-list",
      null,
      alerts,
      (a) => String(a.alert_id),
      (a) => {
        const firing = a.status === "firing";
        const acked = a.acknowledged_at !== null;
        return h(
          "li",
          {
            class: "alert",
            "data-alert-id": a.alert_id,
            "data-status": a.status,
            "data-severity": a.severity,
          },
          h(
            "div",
            { class: "row" },
            badge(a.severity),
            firing ? badge("firing") : badge("cleared"),
            h("strong", { class: "grow", text: a.rule }),
            firing && !acked
              ? actionButton(`ack:${a.alert_id}`, "Acknowledge", "Acknowledging…", async () => {
                  // The server records the signed-in session as the acknowledger.
                  const done = await post(`/api/alerts/${a.alert_id}/ack`);
                  if (done) notice(`Alert ${a.rule} acknowledged.`, "info");
                })
              : null,
          ),
          h("div", { text: a.message }),
          h(
            "div",
            { class: "meta" },
            "fired ",
            ago(a.first_fired_at),
            a.fire_count > 1 ? ` · ${a.fire_count} times, last ` : "",
            a.fire_count > 1 ? ago(a.last_fired_at) : "",
            acked ? ` · acknowledged by ${a.acknowledged_by || "someone"} ` : "",
            acked ? ago(a.acknowledged_at) : "",
            a.cleared_at ? " · cleared " : "",
            a.cleared_at ? ago(a.cleared_at) : "",
          ),
        );
      },
    );
  }

  function renderQueue() {
    const q = state.queue;
    if (!q) return;
    $("queue-count").textContent = `(${q.waiting})`;
    $("queue-lanes").replaceChildren(
      ...q.lanes.map((l) =>
        h(
          "div",
          { class: "lane", "data-lane": l.lane },
          h("b", { text: l.queued + l.retry_wait }),
          h("span", { text: l.lane }),
          l.retry_wait || l.held
            ? h("span", {
                class: "meta",
                text: [
                  l.retry_wait && ` · ${l.retry_wait} in backoff`,
                  l.held && ` · ${l.held} held`,
                ]
                  .filter(Boolean)
                  .join(""),
              })
            : null,
        ),
      ),
    );
    show(
      "queue-list",
      "queue-empty",
      q.items,
      (t) => t.task_id,
      (t, i) =>
        h(
          "li",
          { class: "task", "data-task-id": t.task_id, "data-state": t.state },
          h(
            "div",
            { class: "row" },
            h("span", { class: "meta", text: t.state === "queued" ? `${i + 1}.` : "" }),
            ref(t),
            h("span", { class: "grow", text: t.title, title: t.title }),
            badge(
              t.effective_lane !== t.lane ? `${t.lane} → ${t.effective_lane}` : t.lane,
              "muted",
            ),
            badge(t.state),
          ),
          h(
            "div",
            { class: "meta" },
            t.state === "retry_wait" ? "next attempt in " : "waiting ",
            t.state === "retry_wait" ? until(t.available_at) : ago(t.enqueued_at, ""),
            ` · attempt ${Math.min(t.attempts + 1, t.max_attempts)}/${t.max_attempts}`,
            t.capabilities.length ? ` · needs ${t.capabilities.join(", ")}` : "",
          ),
          t.state === "retry_wait" && t.last_error
            ? h("div", { class: "error-text", text: t.last_error })
            : null,
        ),
    );
  }

  /** Where each unfolded log was scrolled to: following the end (`stick`), or left at `top`. */
  const logViews = new Map();

  /** A rebuilt log keeps its place: at the end while following it, else where the reader left it. */
  function placeLog(pre) {
    if (!pre) return;
    const view = logViews.get(pre.dataset.log);
    pre.scrollTop = !view || view.stick ? pre.scrollHeight : view.top;
  }

  function renderInFlight() {
    const items = (state.in_flight || []).map((t) => ({ ...t, log_tail: logs.get(t.task_id) }));
    $("in-flight-count").textContent = `(${items.length})`;
    show(
      "in-flight-list",
      "in-flight-empty",
      items,
      (t) => t.task_id,
      (t) => {
        const log = t.log_tail
          ? h(
              "details",
              {
                class: "log",
                open: openLogs.has(t.task_id),
                ontoggle: (e) => {
                  if (!e.currentTarget.open) return openLogs.delete(t.task_id);
                  openLogs.add(t.task_id);
                  placeLog(e.currentTarget.querySelector("pre"));
                },
              },
              h("summary", { text: "output" }),
              h("pre", {
                "data-log": t.task_id,
                text: t.log_tail,
                onscroll: (e) => {
                  const pre = e.currentTarget;
                  logViews.set(t.task_id, {
                    stick: pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4,
                    top: pre.scrollTop,
                  });
                },
              }),
            )
          : null;
        return h(
          "li",
          { class: "task", "data-task-id": t.task_id, "data-state": t.state },
          h(
            "div",
            { class: "row" },
            ref(t),
            h("span", { class: "grow", text: t.title, title: t.title }),
            badge(t.state),
            t.stage && (t.state === "assigned" || t.state === "running")
              ? badge(t.stage, "info")
              : null,
          ),
          h(
            "div",
            { class: "meta" },
            t.runner_name ? `on ${t.runner_name} · ` : "",
            `attempt ${Math.min(t.attempts + 1, t.max_attempts)}/${t.max_attempts} · ${t.state.replace("_", " ")} for `,
            ago(t.since, ""),
            " · started ",
            ago(t.created_at),
            t.pr_url ? " · " : "",
            prLink(t.pr_url, t.pr_number),
          ),
          t.stage_message ? h("div", { class: "meta", text: `“${t.stage_message}”` }) : null,
          t.last_error && t.state === "waiting_human"
            ? h("div", { class: "error-text", text: t.last_error })
            : null,
          log,
        );
      },
    );
    for (const pre of $("in-flight-list").querySelectorAll("pre[data-log]:not([data-placed])")) {
      pre.dataset.placed = "1";
      placeLog(pre);
    }
  }

  function renderRunners() {
    const runners = state.runners || [];
    const online = runners.filter((r) => r.state !== "offline").length;
    $("runners-count").textContent = `(${online} of ${runners.length} online)`;
    renderUtilisation();
    show(
      "runners-list",
      "runners-empty",
      runners,
      (r) => r.runner_id,
      (r) =>
        h(
          "li",
          { class: "runner", "data-runner-id": r.runner_id, "data-state": r.state },
          h(
            "div",
            { class: "row" },
            h("strong", { class: "grow", text: r.name }),
            r.slots !== null
              ? h("span", { class: "meta", text: `${r.busy}/${r.slots} slots` })
              : null,
            badge(r.state),
          ),
          r.tasks.length
            ? h(
                "div",
                { class: "meta" },
                r.tasks.map((t, i) => [
                  i ? ", " : "",
                  ref(t),
                  t.candidate ? ` candidate ${t.candidate}` : "",
                  ` ${t.state}${t.stage ? ` (${t.stage})` : ""}`,
                ]),
              )
            : null,
          h(
            "div",
            { class: "meta" },
            `${r.tier} · `,
            (r.offered_capabilities || r.capabilities).length
              ? `capabilities: ${(r.offered_capabilities || r.capabilities).join(", ")}`
              : "no capabilities",
            r.version ? ` · v${r.version}` : "",
          ),
          h(
            "div",
            { class: "meta" },
            r.last_heartbeat
              ? [
                  "last heartbeat: ",
                  h("span", { "data-stage": r.last_heartbeat.stage, text: r.last_heartbeat.stage }),
                  " ",
                  ago(r.last_heartbeat.at),
                ]
              : r.connected_at
                ? ["connected ", ago(r.connected_at)]
                : ["last seen ", ago(r.last_seen_at)],
          ),
        ),
    );
  }

  function renderRecent() {
    show(
      "recent-list",
      "recent-empty",
      state.recent || [],
      (t) => t.task_id,
      (t) =>
        h(
          "li",
          { class: "task", "data-task-id": t.task_id, "data-state": t.state },
          h(
            "div",
            { class: "row" },
            ref(t),
            h("span", { class: "grow", text: t.title, title: t.title }),
            prLink(t.pr_url, t.pr_number),
            badge(t.state),
          ),
          h(
            "div",
            { class: "meta" },
            `took ${duration(t.finished_at - t.created_at)}`,
            t.first_assigned_at !== null
              ? ` (waited ${duration(t.first_assigned_at - t.created_at)})`
              : "",
            t.attempts ? ` · after ${t.attempts} failed attempt${t.attempts === 1 ? "" : "s"}` : "",
            " · finished ",
            ago(t.finished_at),
          ),
          t.after_merge
            ? h(
                "div",
                { class: "meta", "data-watch-state": t.after_merge.state },
                "after merge: ",
                h("span", { text: t.after_merge.note }),
              )
            : null,
        ),
    );
  }

  /** merge.mode approve | report: the evidence for turning auto-merge on, per repository. */
  function renderTrust() {
    show(
      "trust-list",
      "trust-empty",
      state.trust || [],
      (r) => r.repository,
      (r) =>
        h(
          "li",
          { class: "task", "data-repository": r.repository },
          h(
            "div",
            { class: "row" },
            h("span", { class: "grow", text: r.repository }),
            h("b", { text: `${r.would_merge} would merge` }),
          ),
          h("div", { class: "meta" }, `${r.merged_by_hand} merged by hand after a "would merge"`),
        ),
    );
  }

  function renderDead() {
    const dead = state.dead || { total: 0, items: [] };
    $("dead-count").textContent = `(${dead.total})`;
    show(
      "dead-list",
      "dead-empty",
      dead.items,
      (t) => t.task_id,
      (t) =>
        h(
          "li",
          { class: "task", "data-task-id": t.task_id, "data-state": "dead" },
          h(
            "div",
            { class: "row" },
            ref(t),
            h("span", { class: "grow", text: t.title, title: t.title }),
            prLink(t.pr_url),
            actionButton(`retry:${t.task_id}`, "Retry", "Retrying…", async () => {
              const done = await post(`/api/tasks/${t.task_id}/retry`);
              if (done) notice(`${t.repo}#${t.issue_number} is queued again.`, "info");
            }),
          ),
          h(
            "div",
            { class: "meta" },
            `${t.attempts}/${t.max_attempts} attempts · died `,
            ago(t.died_at),
          ),
          t.last_error ? h("div", { class: "error-text", text: t.last_error }) : null,
        ),
    );
  }

  // ---- charts ---------------------------------------------------------------------------------

  const SERIES = {
    queue: [
      { label: "waiting", stroke: "#2f6fde", fill: "rgba(47,111,222,0.12)", key: "queue_depth" },
    ],
    latency: [
      // Minutes without an assignment or a merge have no value: points keep lone minutes visible.
      { label: "wait p50", stroke: "#1f8a4c", key: "wait_p50", points: true },
      { label: "wait p90", stroke: "#b7791f", key: "wait_p90", points: true },
      { label: "wait p99", stroke: "#c53030", key: "wait_p99", points: true },
      {
        label: "end-to-end p50",
        stroke: "#7b4bd6",
        key: "end_to_end_p50",
        dash: [4, 3],
        points: true,
      },
    ],
    utilisation: [
      { label: "busy", stroke: "#2f6fde", fill: "rgba(47,111,222,0.12)", key: "busy_slots" },
      { label: "offered", stroke: "#5d6878", key: "slots", dash: [4, 3] },
    ],
    failures: [
      { label: "succeeded", stroke: "#1f8a4c", key: "succeeded" },
      { label: "failed", stroke: "#c53030", key: "failed" },
      { label: "died", stroke: "#000", key: "dead", dash: [2, 2] },
    ],
  };

  function chartData(kind) {
    const c = state.charts;
    return [c.t, ...SERIES[kind].map((s) => c[s.key])];
  }

  function chartWidth(el) {
    return Math.max(200, Math.floor(el.getBoundingClientRect().width));
  }

  /** Lower on a phone, where the charts come after the lists. */
  const chartHeight = (width) => (width < 420 ? 140 : 180);

  /** Utilisation now, from the runners' sockets (busy slots / offered slots). */
  function renderUtilisation() {
    const online = (state.runners || []).filter((r) => r.slots !== null);
    const slots = online.reduce((sum, r) => sum + r.slots, 0);
    const busy = online.reduce((sum, r) => sum + r.busy, 0);
    $("utilisation-caption").textContent = slots
      ? `Runner slots (peak busy per minute) · ${Math.round((busy / slots) * 100)} % busy now (${busy}/${slots})`
      : "Runner slots (peak busy per minute) · no runner connected";
  }

  function renderCharts() {
    const c = state.charts;
    if (!c || typeof window.uPlot !== "function") return;
    renderUtilisation();
    for (const kind of Object.keys(SERIES)) {
      const el = $(`chart-${kind}`);
      const data = chartData(kind);
      if (charts[kind]) {
        charts[kind].setData(data);
        continue;
      }
      const width = chartWidth(el);
      charts[kind] = new window.uPlot(
        {
          width,
          height: chartHeight(width),
          cursor: { drag: { x: false, y: false } },
          scales: { y: { range: (_u, min, max) => [0, Math.max(1, max * 1.1, min)] } },
          axes: [{}, { size: 40 }],
          series: [
            {},
            ...SERIES[kind].map((s) => ({
              label: s.label,
              stroke: s.stroke,
              fill: s.fill,
              dash: s.dash,
              width: 1.5,
              spanGaps: false,
              points: { show: Boolean(s.points), size: 5 },
            })),
          ],
        },
        data,
        el,
      );
    }
  }

  function resizeCharts() {
    for (const [kind, chart] of Object.entries(charts)) {
      const width = chartWidth($(`chart-${kind}`));
      chart.setSize({ width, height: chartHeight(width) });
    }
  }

  /** Each installation's GitHub requests left in its hour, the reserve, and what waits. */
  function renderGitHub() {
    show(
      "github-list",
      "github-empty",
      state.github || [],
      (b) => b.client,
      (b) =>
        h(
          "li",
          { class: "task", "data-client": b.client },
          h(
            "div",
            { class: "row" },
            h("span", {
              class: "grow",
              text: b.client === "app" ? "the App" : `installation ${b.client}`,
            }),
            h("b", { text: `${b.remaining} of ${b.limit} left` }),
          ),
          h(
            "div",
            { class: "meta" },
            `reserve ${b.reserve} · resets ${new Date(b.reset_at).toLocaleTimeString()}`,
            b.limited_until
              ? ` · ${b.limited_by} rate limit until ${new Date(b.limited_until).toLocaleTimeString()}`
              : "",
            b.deferring ? " · status comments and reconciliation wait" : "",
          ),
        ),
    );
  }

  // ---- agents: GET /api/analytics, every minute ----------------------------------------------

  const percent = (share) => (share === null ? "–" : `${Math.round(share * 1000) / 10} %`);
  const usd = (value) =>
    value === null ? "–" : `$${value > 0 && value < 0.01 ? value.toFixed(4) : value.toFixed(2)}`;
  const agentName = (a) => (a.model ? `${a.adapter} · ${a.model}` : a.adapter);

  function renderAgents(report) {
    const rows = report.by_agent;
    $("agents-empty").hidden = rows.length > 0;
    $("agents-rows").replaceChildren(
      ...rows.map((a) =>
        h(
          "tr",
          {},
          h("th", { scope: "row", text: agentName(a) }),
          h("td", { text: a.tasks }),
          h("td", { text: a.attempts }),
          h("td", { text: `${a.merged} (${percent(a.merged_rate)})` }),
          h("td", {
            text:
              a.median_queue_to_merge_seconds === null
                ? "–"
                : duration(a.median_queue_to_merge_seconds * 1000),
          }),
          h("td", { text: `${a.ci_fix_rounds} / ${a.review_fix_rounds}` }),
          h("td", { text: usd(a.cost_usd) }),
          h("td", { text: usd(a.cost_per_merged_pr_usd) }),
          h("td", {
            text: a.tokens_per_merged_pr === null ? "–" : a.tokens_per_merged_pr.toLocaleString(),
          }),
          h("td", {
            text: ["tier1", "tier2", "tier3"].map((t) => percent(a.left_for_human[t])).join(" / "),
          }),
        ),
      ),
    );
    if (typeof window.uPlot !== "function") return;
    const el = $("chart-agents");
    const names = rows.map(agentName);
    const data = [rows.map((_a, i) => i), rows.map((a) => Math.round(a.merged_rate * 1000) / 10)];
    if (charts.agents) charts.agents.destroy();
    const width = chartWidth(el);
    charts.agents = new window.uPlot(
      {
        width,
        height: chartHeight(width),
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: false, range: [-0.5, Math.max(0.5, rows.length - 0.5)] },
          y: { range: [0, 100] },
        },
        axes: [
          {
            values: (_u, splits) =>
              splits.map((i) => (Number.isInteger(i) ? (names[i] ?? "") : "")),
          },
          { size: 40 },
        ],
        series: [
          {},
          {
            label: "merged %",
            stroke: "#1f8a4c",
            fill: "rgba(31, 138, 76, 0.35)",
            paths: window.uPlot.paths.bars({ size: [0.6, 80] }),
            points: { show: false },
          },
        ],
      },
      data,
      el,
    );
  }

  async function loadAgents() {
    try {
      const response = await fetch("/api/analytics?since=7d", {
        credentials: "same-origin",
        headers: { accept: "application/json" },
      });
      if (response.ok) renderAgents(await response.json());
    } catch {
      // The stream says when the server is away; the next minute tries again.
    }
  }

  // ---- the stream -----------------------------------------------------------------------------

  const RENDERERS = {
    alerts: renderAlerts,
    queue: renderQueue,
    in_flight: renderInFlight,
    runners: renderRunners,
    recent: renderRecent,
    dead: renderDead,
    charts: renderCharts,
    trust: renderTrust,
    github: renderGitHub,
  };

  function render(sections) {
    for (const key of sections || Object.keys(RENDERERS)) {
      if (state[key] !== undefined) RENDERERS[key]();
    }
    if (state.generated_at) {
      $("updated").textContent = `Updated ${new Date(state.generated_at).toLocaleTimeString()}`;
    }
  }

  /** Output by task: it travels apart from the tasks, so a new line does not resend them all. */
  const logs = new Map();

  function apply(data) {
    clockOffset = data.generated_at - Date.now();
    const changed = Object.keys(data).filter((k) => k in RENDERERS);
    const { logs: logChanges, ...sections } = data;
    Object.assign(state, sections);
    if (logChanges) {
      for (const [taskId, tail] of Object.entries(logChanges)) {
        if (tail === null) logs.delete(taskId);
        else logs.set(taskId, tail);
      }
      if (!changed.includes("in_flight")) changed.push("in_flight");
    }
    render(changed);
  }

  function setConnection(kind, text) {
    const el = $("connection");
    el.dataset.state = kind;
    el.textContent = text;
  }

  let source;
  let retryMs = 1000;
  function connect() {
    source = new EventSource("/dashboard/events");
    source.addEventListener("open", () => {
      retryMs = 1000;
      setConnection("live", "live");
    });
    source.addEventListener("hello", (e) => {
      viewer = JSON.parse(e.data).viewer;
      $("viewer").textContent = `${viewer.name} · ${viewer.role}`;
      document.body.dataset.role = viewer.role;
      render();
    });
    source.addEventListener("snapshot", (e) => {
      for (const key of Object.keys(state)) delete state[key];
      logs.clear();
      apply(JSON.parse(e.data));
      render();
    });
    source.addEventListener("patch", (e) => apply(JSON.parse(e.data)));
    source.addEventListener("ping", (e) => {
      clockOffset = JSON.parse(e.data).generated_at - Date.now();
      setConnection("live", "live");
    });
    source.addEventListener("problem", (e) => setConnection("lost", JSON.parse(e.data).error));
    source.addEventListener("signed-out", () => {
      source.close();
      location.assign("/dashboard/sign-in?ended=1");
    });
    source.addEventListener("error", async () => {
      if (source.readyState !== EventSource.CLOSED) {
        setConnection("connecting", "reconnecting…");
        return;
      }
      // The browser gave up (an answer other than the stream): signed out, or the server is away.
      setConnection("lost", "disconnected; retrying…");
      try {
        const session = await fetch("/dashboard/session", { credentials: "same-origin" });
        if (session.status === 401) {
          location.assign("/dashboard/sign-in?ended=1");
          return;
        }
      } catch {
        // The server is away: try again below.
      }
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30_000);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    connect();
    loadAgents();
    setInterval(loadAgents, 60_000);
    setInterval(tickClocks, 1000);
    let resizeTimer;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(resizeCharts, 150);
    });
  });
})();
