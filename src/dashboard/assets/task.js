// Conveyor task page: follows /dashboard/tasks/<id>/events (server-sent events): the task's state,
// attempts, timeline and verdict as `task`, its log line by line as `log`. Plain JavaScript, no
// build step; every text (log lines are agent output) goes in with textContent, never as HTML.
(() => {
  const $ = (id) => document.getElementById(id);
  const MAX_LINES = 2000;
  const taskId = decodeURIComponent(location.pathname.split("/").filter(Boolean).at(-1) || "");

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else el.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const usd = (n) =>
    n === null || n === undefined
      ? "–"
      : n > 0 && n < 0.01
        ? `$${n.toPrecision(2)}`
        : `$${n.toFixed(2)}`;
  const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const time = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
  // Only http(s) links are followed: a URL from the database is still not trusted as a scheme.
  const safeUrl = (url) => (/^https?:\/\//i.test(url || "") ? url : undefined);

  function notice(text) {
    const el = $("notice");
    el.textContent = text;
    el.hidden = !text;
  }

  function renderTask(s) {
    const t = s.task;
    document.title = `${t.repo}#${t.issue_number} · Conveyor`;
    $("task-ref").textContent = `${t.repo}#${t.issue_number}`;
    $("task-title").textContent = t.candidate
      ? `Candidate ${t.candidate} · ${t.title}`
      : t.best_of > 1
        ? `Best of ${t.best_of} · ${t.title}`
        : t.title;
    const pr = s.pull_request;
    const prUrl = pr && safeUrl(pr.url);
    const page = (id) => `/dashboard/tasks/${encodeURIComponent(id)}`;
    const facts = [
      ...(t.parent_task_id
        ? [
            [
              "Candidate of",
              h("a", { href: page(t.parent_task_id), class: "parent", text: t.parent_task_id }),
            ],
          ]
        : []),
      [
        "State",
        h("span", { class: "badge", "data-state": t.state, text: t.state.replace("_", " ") }),
      ],
      ["Attempts used", `${t.attempts}/${t.max_attempts}`],
      ["Runner", t.runner_name || "–"],
      ["Cost", usd(s.usage.cost_usd)],
      ["Tokens", num(s.usage.tokens)],
      ["Turns", num(s.usage.turns)],
      [
        "Pull request",
        pr
          ? prUrl
            ? h("a", {
                href: prUrl,
                rel: "noopener noreferrer",
                target: "_blank",
                text: `#${pr.number} (${pr.state})`,
              })
            : `#${pr.number} (${pr.state})`
          : "–",
      ],
      ["Verdict", pr?.verdict ? `${pr.verdict.replace(/_/g, " ")} · tier ${pr.tier}` : "–"],
      ["Queued", time(t.created_at)],
      ["Finished", time(t.finished_at)],
    ];
    if (t.last_error) facts.push(["Last error", h("code", { text: t.last_error })]);
    const summary = s.result && typeof s.result.summary === "string" ? s.result.summary : "";
    if (summary) facts.push(["Summary", h("span", { class: "summary", text: summary })]);
    $("task-facts").replaceChildren(
      ...facts.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)]),
    );

    const candidates = s.candidates || [];
    $("candidates").hidden = candidates.length === 0;
    $("candidates-body").replaceChildren(
      ...candidates.map((c) =>
        h(
          "tr",
          { "data-k": c.k, "data-picked": c.picked ? "true" : null },
          h("td", { text: c.k }),
          h("td", {}, h("a", { href: page(c.task_id), text: c.task_id.slice(0, 8) })),
          h("td", {}, h("span", { class: "badge", "data-state": c.state, text: c.state })),
          h("td", { text: c.runner_name || "–" }),
          h("td", { text: c.adapter || "any" }),
          h("td", { text: usd(c.cost_usd) }),
          h("td", {}, h("code", { text: c.branch })),
          h("td", { text: c.picked ? `${c.rank ?? "–"} · picked` : (c.rank ?? c.failure ?? "–") }),
        ),
      ),
    );

    $("attempts-empty").hidden = s.attempts.length > 0;
    $("attempts-body").replaceChildren(
      ...s.attempts.map((a) =>
        h(
          "tr",
          { "data-generation": a.generation },
          h("td", { text: a.generation }),
          h("td", { text: [a.adapter, a.model].filter(Boolean).join(" · ") || "–" }),
          h(
            "td",
            {},
            a.outcome ? "–" : [a.stage || "–", a.tool ? h("code", { text: ` ${a.tool}` }) : null],
          ),
          h("td", { text: num(a.turns) }),
          h("td", { text: num(a.tokens) }),
          h("td", { text: usd(a.cost_usd) }),
          h("td", { text: a.outcome || "running" }),
        ),
      ),
    );

    $("timeline").replaceChildren(
      ...s.events.map((e) =>
        h(
          "li",
          { class: "event", "data-to": e.to_state },
          h("time", { datetime: e.at, text: time(e.at) }),
          " ",
          h("strong", { text: `${e.from_state ? `${e.from_state} → ` : ""}${e.to_state}` }),
          ` · attempt ${e.generation} · ${e.actor}: `,
          h("span", { text: e.reason }),
        ),
      ),
    );
  }

  let lines = 0;
  function appendLine(entry) {
    const log = $("log");
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(h("div", { class: "line", "data-generation": entry.generation, text: entry.line }));
    lines++;
    while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
    $("log-empty").hidden = true;
    $("log-count").textContent = `(${lines} lines)`;
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function connect() {
    const connection = $("connection");
    const source = new EventSource(`/dashboard/tasks/${encodeURIComponent(taskId)}/events`);
    source.addEventListener("open", () => {
      connection.dataset.state = "live";
      connection.textContent = "live";
    });
    source.addEventListener("task", (e) => renderTask(JSON.parse(e.data)));
    source.addEventListener("log", (e) => appendLine(JSON.parse(e.data)));
    source.addEventListener("signed-out", () => {
      source.close();
      location.assign("/dashboard/sign-in?ended");
    });
    source.addEventListener("error", async () => {
      connection.dataset.state = "reconnecting";
      connection.textContent = "reconnecting…";
      // A 404 or a lost session does not heal by retrying: say so, or sign in again.
      const response = await fetch(`/dashboard/tasks/${encodeURIComponent(taskId)}/state`).catch(
        () => null,
      );
      if (response && response.status === 401) location.assign("/dashboard/sign-in?ended");
      else if (response && response.status === 404) {
        source.close();
        connection.dataset.state = "closed";
        connection.textContent = "no such task";
        notice("There is no task with this id.");
      }
    });
  }

  connect();
})();
