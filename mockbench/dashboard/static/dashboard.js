/* mockbench dashboard: follows /_bench/events, reads and steers the bench through the control API.
   Plain JavaScript, no dependency. Everything shown is built with textContent: messages come from the
   software under test and are never interpreted as HTML. */
"use strict";

const API = "/_bench";
const MAX_ROWS = 500;          // timeline lines kept in the page
const TAIL = 300;              // entries shown on first connection
const MAX_MESSAGES = 50;       // newest messages shown per open mailbox
const PATIENTS_SHOWN = 50;     // first patients drawn (each with its documents): the control API pages the rest
const ROWS_SHOWN = 200;        // first professionals, structures and mailboxes drawn

const CHANNELS = { dmp: "DMP", pfi: "PFI (HL7)", mss: "MSSanté", oidc: "PSC / OIDC", annuaire: "Annuaire", control: "Pilotage" };
const VERDICTS = { accepted: "accepté", refused: "refusé", error: "erreur" };
const DIRECTIONS = { in: "reçu par le banc", out: "envoyé par le banc" };
const STEP_STATUS = { pending: "en attente", passed: "réussie", failed: "échouée" };
const STEP_MARK = { pending: "○", passed: "✓", failed: "✗" };
const DOC_STATUS = { approved: "Actif", deprecated: "Remplacé", archived: "Archivé", deleted: "Supprimé" };
const CONFIDENTIALITY = { MASQUE_PS: "Masqué aux PS", INVISIBLE_PATIENT: "Invisible au patient",
                          INVISIBLE_REPRESENTANTS_LEGAUX: "Invisible aux représentants légaux" };
const AUTH_STATUS = { VALIDE: "valide", INTERDIT: "bloqué par le patient", EXPIRE: "expirée", NON_EXISTE: "aucune (retirée)" };
const DMP_STATUS = { active: "DMP actif", closed: "DMP fermé", absent: "pas de DMP" };
const MAILBOX_ROLE = { hospital: "boîte de l'hôpital (lue par le DPI)", correspondent: "correspondant simulé",
                       error: "boîte d'erreur", outside: "hors MSSanté (fourre-tout)" };
const SEVERITY = { info: "info", warning: "avertissement", error: "erreur" };
const RESTART = ["reset", "load"];

const TIME_ZONE = "Europe/Paris";   // the users' time, whatever the machine's or the journal's (UTC)

const state = { view: "timeline", patients: {}, structures: {}, professionals: {}, openMailboxes: new Set(),
                source: null, timers: {}, entries: new Map(), transitionSay: {},
                filter: { text: "", channel: "", verdict: "", patient: "" } };

// Small DOM helpers ------------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k.startsWith("data")) node.setAttribute(k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase()), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const $ = (id) => document.getElementById(id);

// Live redraws must not take the keyboard focus away: an element that can hold it carries data-key, and
// its new copy gets the focus back.
function redraw(container, children) {
  const focused = document.activeElement;
  const key = focused && container.contains(focused) ? focused.dataset.key : null;
  container.replaceChildren(...children);
  if (key) {
    const again = Array.from(container.querySelectorAll("[data-key]")).find((n) => n.dataset.key === key);
    if (again) again.focus({ preventScroll: true });
  }
}

async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  const response = await fetch(API + path, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { message: text }; }
  if (!response.ok) {
    const error = new Error((data && (data.message || data.error)) || `HTTP ${response.status}`);
    error.code = data && data.error;
    throw error;
  }
  return data;
}

function say(message, isError) {
  const node = $("action-message");
  node.textContent = message;
  node.classList.toggle("error", Boolean(isError));
}

// One run at a time; calls made meanwhile fold into one more run after it, so that an older answer never
// draws over a newer one.
function serialized(fn) {
  let running = null, again = false;
  return () => {
    if (running) { again = true; return running; }
    running = (async () => {
      try { do { again = false; await fn(); } while (again); } finally { running = null; }
    })();
    return running;
  };
}

function later(name, fn, ms) {     // throttle: a burst of entries makes one refresh, and a steady stream one per `ms`
  if (state.timers[name] && ms > 0) return;
  clearTimeout(state.timers[name]);
  state.timers[name] = setTimeout(() => { state.timers[name] = null; fn(); }, ms);
}

function hhmmss(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  if (isNaN(when)) return iso;
  return when.toLocaleTimeString("fr-FR", { timeZone: TIME_ZONE, hour12: false });
}

function dateTime(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  if (isNaN(when)) return iso;
  return when.toLocaleString("fr-FR", { dateStyle: "short", timeStyle: "medium", timeZone: TIME_ZONE }) + " (Paris)";
}

function patientLabel(id) {
  if (!id) return "";
  const p = state.patients[id];
  return p ? `${p.given_name} ${p.family_name}`.trim() + ` (${id})` : id;
}

// Views ------------------------------------------------------------------------------------------
// The URL's fragment names the view, so that a workshop host can bookmark or project one (/#monde).
const FRAGMENTS = { timeline: "chronologie", world: "monde", scenario: "scenario", config: "configurer" };

function viewOfFragment() {
  const wanted = decodeURIComponent(location.hash.replace(/^#/, "")).toLowerCase();
  return Object.keys(FRAGMENTS).find((view) => FRAGMENTS[view] === wanted) || null;
}

function show(view) {
  state.view = view;
  if (viewOfFragment() !== view) history.replaceState(null, "", "#" + FRAGMENTS[view]);
  for (const tab of document.querySelectorAll(".tabs [role=tab]")) {
    const selected = tab.dataset.view === view;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
  }
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== "view-" + view;
  if (view === "world") refreshWorld();
  if (view === "scenario") refreshScenario();
  if (view === "config") refreshConfig();
}

// Timeline ---------------------------------------------------------------------------------------
function transitionText(e) {
  return e.channel === "control" && e.operation === "transition" && e.ref ? (state.transitionSay[e.ref] || e.ref) : "";
}

function entryRow(e) {
  const findings = (e.findings || []).length;
  const said = transitionText(e);
  const label = `Échange ${e.seq} : ${CHANNELS[e.channel] || e.channel} ${e.operation}, ` +
                `${said ? said + ", " : ""}` +
                `${e.patient ? "patient " + patientLabel(e.patient) + ", " : ""}${VERDICTS[e.verdict] || e.verdict}`;
  const button = el("button", { class: "entry", type: "button", dataSeq: e.seq, dataChannel: e.channel,
                                dataOperation: e.operation, dataVerdict: e.verdict, "aria-label": label,
                                onclick: () => openEntry(e.seq, button) },
    el("span", { class: "seq", text: e.seq }),
    el("span", { class: "time", text: hhmmss(e.time) }),
    el("span", {}, el("span", { class: `chan chan-${e.channel}`, text: CHANNELS[e.channel] || e.channel })),
    el("span", { class: "op" }, e.operation, " ", el("span", { class: "dir", text: e.direction === "out" ? "→" : "←" }),
       findings ? el("span", { class: "nfind", text: ` ${findings} constat${findings > 1 ? "s" : ""}` }) : null),
    said ? el("span", { class: "who say", text: said }) : el("span", { class: "who", text: patientLabel(e.patient) }),
    el("span", { class: `verdict v-${e.verdict}`, text: VERDICTS[e.verdict] || e.verdict }));
  const row = el("li", {}, button);
  row.hidden = !matches(e);
  return row;
}

// Search and filters: over the entries the page holds (the newest MAX_ROWS), as a mail catcher's list does.
function searchText(e) {
  return [e.seq, e.channel, CHANNELS[e.channel], e.operation, e.patient, patientLabel(e.patient), e.patient_ins,
          e.document, e.actor, e.code, e.verdict, VERDICTS[e.verdict], e.ref, transitionText(e),
          ...(e.findings || []).map((f) => `${f.rule} ${f.message} ${f.message_fr || ""}`)]
    .filter((v) => v !== null && v !== undefined && v !== "").join(" ").toLowerCase();
}

function matches(e) {
  const f = state.filter;
  if (f.channel && e.channel !== f.channel) return false;
  if (f.verdict && e.verdict !== f.verdict) return false;
  if (f.patient && e.patient !== f.patient) return false;
  if (f.text) return f.text.split(/\s+/).every((word) => searchText(e).includes(word));
  return true;
}

function applyFilter() {
  const f = state.filter;
  f.text = $("filter-text").value.trim().toLowerCase();
  f.channel = $("filter-channel").value;
  f.verdict = $("filter-verdict").value;
  f.patient = $("filter-patient").value;
  let shown = 0, total = 0;
  for (const button of document.querySelectorAll("#timeline .entry")) {
    const e = state.entries.get(Number(button.dataset.seq));
    if (!e) continue;
    total += 1;
    button.parentElement.hidden = !matches(e);
    if (!button.parentElement.hidden) shown += 1;
  }
  const active = f.text || f.channel || f.verdict || f.patient;
  $("filter-count").textContent = active ? `${shown} échange${shown > 1 ? "s" : ""} sur ${total}` : "";
  $("timeline-empty").hidden = total > 0;
}

function clearFilter() {
  $("filter-text").value = ""; $("filter-channel").value = ""; $("filter-verdict").value = ""; $("filter-patient").value = "";
  applyFilter();
}

function patientOptions() {
  const select = $("filter-patient");
  const chosen = select.value;
  const options = Object.values(state.patients).map((p) => el("option", { value: p.id, text: patientLabel(p.id) }));
  select.replaceChildren(el("option", { value: "", text: "Tous les patients" }), ...options);
  select.value = Object.prototype.hasOwnProperty.call(state.patients, chosen) ? chosen : "";
  if (select.value !== chosen) applyFilter();
}

function addEntry(e) {
  const list = $("timeline");
  if (e.channel === "control" && RESTART.includes(e.operation)) { list.replaceChildren(); state.entries.clear(); }
  const existing = list.querySelector(`.entry[data-seq="${e.seq}"]`);
  if (existing) existing.parentElement.remove();
  state.entries.set(e.seq, e);
  const row = entryRow(e);
  row.firstChild.classList.add("fresh");
  list.prepend(row);
  while (list.children.length > MAX_ROWS) {
    state.entries.delete(Number(list.lastElementChild.firstChild.dataset.seq));
    list.lastElementChild.remove();
  }
  later("filter-count", applyFilter, 200);
  $("timeline-empty").hidden = list.children.length > 0;
}

function connect() {
  // The browser reconnects by itself with Last-Event-ID; when it gives up (the bench restarted, or too many
  // screens follow already: 429), start again after a pause from the last entry shown.
  if (state.source) state.source.close();
  const from = state.lastSeq ? `since=${state.lastSeq}` : `tail=${TAIL}`;
  const source = new EventSource(`${API}/events?${from}`);
  state.source = source;
  source.onopen = () => { const n = $("live"); n.textContent = "En direct"; n.className = "live on"; };
  source.onerror = () => {
    const n = $("live"); n.textContent = "Reconnexion…"; n.className = "live off";
    if (source.readyState === EventSource.CLOSED) later("connect", connect, 5000);
  };
  source.addEventListener("entry", (message) => {
    const e = JSON.parse(message.data);
    state.lastSeq = e.seq;
    addEntry(e);
    const restart = e.channel === "control" && RESTART.includes(e.operation);
    later("scenario", refreshScenario, restart ? 0 : 150);
    if (restart || e.fault || (e.channel === "control" && e.operation.startsWith("fault"))) {
      later("faults", refreshFaults, restart ? 0 : 150);
    }
    // The world is read again when it is on screen, or when the timeline names a patient not known yet.
    if (restart && state.view === "config") later("config", refreshConfig, 0);   // a new world: new identities
    if (restart || state.view === "world" || (e.patient && !state.patients[e.patient])) {
      later("world", refreshWorld, restart ? 0 : 300);
    }
    if (e.channel === "control") later("clock", refreshClock, 0);
  });
}

// The detail of one exchange ---------------------------------------------------------------------
async function openEntry(seq, origin) {
  const dialog = $("detail");
  state.detailOrigin = origin || null;
  let entry;
  try {
    const page = await api("GET", `/journal?since=${seq - 1}&limit=1`);
    entry = page[0];
  } catch (err) { say(err.message, true); return; }
  if (!entry || entry.seq !== seq) { say(`L'échange ${seq} n'est plus dans le journal.`, true); return; }
  $("detail-title").textContent = `Échange ${entry.seq} · ${CHANNELS[entry.channel] || entry.channel} ${entry.operation}`;
  const meta = [["Heure", dateTime(entry.time)], ["Transition", transitionText(entry)], ["Sens", DIRECTIONS[entry.direction] || entry.direction], ["Acteur", entry.actor],
                ["Patient", patientLabel(entry.patient)], ["INS", entry.patient_ins], ["Document", entry.document],
                ["Verdict", VERDICTS[entry.verdict] || entry.verdict], ["Code", entry.code],
                ["Taille", `${entry.size} octets`]];
  $("detail-meta").replaceChildren(...meta.filter(([, v]) => v).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  const findings = entry.findings || [];
  $("detail-findings").replaceChildren(...(findings.length ? findings.map((f) => el("li", {},
    el("span", { class: `sev sev-${f.severity}`, text: SEVERITY[f.severity] || f.severity }), " ",
    el("strong", { text: f.rule }), " : ", findingText(f))) : [el("li", { class: "empty", text: "Aucun constat." })]));
  $("detail-truncated").textContent = entry.raw_truncated ? `(tronqué : ${entry.size} octets au total)` : "";
  $("detail-raw").textContent = pretty(entry.raw || "") || "(vide)";
  // The bench's answer beside the request (the ACK, the SOAP response, the SMTP reply, the HTTP answer).
  const answered = typeof entry.response === "string";
  $("detail-response-truncated").textContent = entry.response_truncated ? `(tronquée : ${entry.response_size} octets au total)` : "";
  $("detail-response").textContent = answered ? (pretty(entry.response) || "(vide)") : "(aucune réponse enregistrée pour cet échange)";
  if (!dialog.open) dialog.showModal();
  $("detail-close").focus();
}

function closeDetail() {
  const dialog = $("detail");
  if (dialog.open) dialog.close();
}

// Pretty-printing: one HL7 segment per line, XML indented, JSON indented; anything else as it is.
function pretty(raw) {
  const text = raw.replace(/^\x0b/, "").replace(/\x1c\r?$/, "");
  if (/^(MSH|FHS|BHS)\|/.test(text)) return text.split(/\r\n|\r|\n/).filter((s) => s).join("\n");
  const trimmed = text.trim();
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    try { return JSON.stringify(JSON.parse(trimmed), null, 2); } catch (e) { /* not JSON */ }
  }
  if (trimmed.startsWith("<")) return indentXml(trimmed) || text;
  // XML inside MIME (MTOM, mail): indent each well-formed XML document between the MIME headers.
  return text.replace(/<\?xml[\s\S]*?(?=\r?\n--|$)|<([\w.-]+:)?Envelope[\s\S]*?<\/([\w.-]+:)?Envelope>/g,
                      (xml) => indentXml(xml.trim()) || xml);
}

function indentXml(xml) {
  const doc = new DOMParser().parseFromString(xml, "application/xml");
  if (doc.getElementsByTagName("parsererror").length) return null;
  const lines = [];
  const attrs = (node) => Array.from(node.attributes).map((a) => ` ${a.name}="${a.value}"`).join("");
  const walk = (node, depth) => {
    const pad = "  ".repeat(depth);
    const kids = Array.from(node.childNodes).filter((c) => c.nodeType !== 3 || c.nodeValue.trim());
    if (!kids.length) { lines.push(`${pad}<${node.nodeName}${attrs(node)}/>`); return; }
    if (kids.length === 1 && kids[0].nodeType === 3) {
      lines.push(`${pad}<${node.nodeName}${attrs(node)}>${kids[0].nodeValue.trim()}</${node.nodeName}>`); return;
    }
    lines.push(`${pad}<${node.nodeName}${attrs(node)}>`);
    for (const kid of kids) {
      if (kid.nodeType === 1) walk(kid, depth + 1);
      else if (kid.nodeType === 3 || kid.nodeType === 4) lines.push(pad + "  " + kid.nodeValue.trim());
      else if (kid.nodeType === 8) lines.push(`${pad}  <!--${kid.nodeValue}-->`);
    }
    lines.push(`${pad}</${node.nodeName}>`);
  };
  walk(doc.documentElement, 0);
  return lines.join("\n");
}

// Scenario: steps, transitions, clock ------------------------------------------------------------
function stepItem(s, compact) {
  return el("li", { class: `step st-${s.status}`, dataStep: s.id, dataStatus: s.status,
                    "aria-label": `Étape ${s.id} : ${STEP_STATUS[s.status] || s.status}` },
    el("span", { class: "mark", "aria-hidden": "true", text: STEP_MARK[s.status] || "" }),
    s.say, compact ? null : el("span", { class: "stepid", text: ` (${s.id}, ${STEP_STATUS[s.status] || s.status})` }),
    s.status === "failed" && (s.reason_fr || s.reason) ? el("span", { class: "reason", text: s.reason_fr || s.reason,
                                                                      title: s.reason_code || "" }) : null,
    s.status === "failed" && s.nearest_seq ? el("button", { type: "button", class: "nearest", dataKey: "nearest:" + s.id,
      onclick: (event) => openEntry(s.nearest_seq, event.currentTarget) }, `Voir l'échange n° ${s.nearest_seq}, le plus proche`) : null);
}

function whenText(when) {
  if (when.manual) return "déclenchement manuel";
  if (when.at) return `à ${when.at}`;
  if (when.after) return `après ${when.after.channel || ""} ${when.after.operation || ""}`.trim();
  return JSON.stringify(when);
}

const refreshScenario = serialized(async () => {
  let loaded;
  try { loaded = await api("GET", "/scenario"); } catch (err) { return; }
  const seen = JSON.stringify(loaded);
  if (seen === state.scenarioSeen) return;     // nothing changed: no redraw
  state.scenarioSeen = seen;
  state.transitionSay = Object.fromEntries((loaded.transitions || []).map((t) => [t.id, t.say || t.id]));
  const title = loaded.id ? `${loaded.title}` : "Aucun scénario chargé";
  $("scenario-title").textContent = loaded.id ? `· ${title}` : title;
  $("scenario-detail").textContent = loaded.id
    ? [loaded.id, loaded.requirement && `exigence ${loaded.requirement}`, loaded.title].filter(Boolean).join(" · ")
    : "Aucun scénario chargé.";
  const description = loaded.description || "";
  $("scenario-description").textContent = description;
  $("scenario-description").hidden = !description;
  $("description-heading").hidden = !description;
  $("description-mini-text").textContent = description;
  $("description-mini").hidden = !description;
  const steps = loaded.steps || [];
  redraw($("steps"), steps.map((s) => stepItem(s, false)));
  redraw($("steps-mini"), steps.map((s) => stepItem(s, true)));
  $("steps-mini-empty").hidden = steps.length > 0;
  const transitions = loaded.transitions || [];
  redraw($("transitions"), transitions.map((t) => el("li", {
      class: "transition" + (t.fired ? " fired" : ""), dataTransition: t.id, dataFired: String(Boolean(t.fired)) },
    el("span", { class: "say" }, t.say || t.id, " ", el("span", { class: "when", text: `(${t.id} · ${whenText(t.when)}` +
      (t.count ? ` · déclenchée ${t.count} fois` : "") + ")" })),
    t.when && t.when.manual ? fireButton(t) : null)));
  $("transitions-empty").hidden = transitions.length > 0;
  const select = $("scenario-select");
  const listed = Array.from(select.options).some((o) => o.value === loaded.id);
  if (listed && document.activeElement !== select) select.value = loaded.id;
});

// Fault rules (README "Faults"): each with what it does, how often it fired, and a switch for the host.
const refreshFaults = serialized(async () => {
  let rules;
  try { rules = await api("GET", "/faults"); } catch (err) { return; }
  const seen = JSON.stringify(rules);
  if (seen === state.faultsSeen) return;
  state.faultsSeen = seen;
  redraw($("faults"), rules.map((r) => el("li", {
      class: "transition" + (r.active ? " fired" : ""), dataFault: r.id, dataActive: String(r.active) },
    el("span", { class: "say" }, r.say || `${r.door} ${r.kind}`, " ", el("span", { class: "when",
      text: `(${r.id} · ${r.door} ${r.kind}` + (r.times ? ` · ${r.fired}/${r.times} fois` : ` · ${r.fired} fois`) +
            (r.active ? " · active" : r.enabled ? " · hors de sa fenêtre ou épuisée" : " · désactivée") + ")" })),
    el("button", { type: "button", class: r.enabled ? "fire" : "primary fire", dataKey: "fault:" + r.id,
                   "aria-pressed": String(r.enabled), onclick: () => switchFault(r.id, !r.enabled) },
       r.enabled ? "Désactiver" : "Activer"))));
  $("faults-empty").hidden = rules.length > 0;
});

async function switchFault(id, enabled) {
  try {
    await api("PATCH", `/faults/${encodeURIComponent(id)}`, { enabled });
    say(`Panne ${id} ${enabled ? "activée" : "désactivée"}`);
  } catch (err) { say(err.message, true); }
  refreshFaults();
}

// A manual transition fires once (a third party acts once); one whose firing failed may be fired again.
function fireButton(t) {
  const done = t.fired && !t.error;
  return el("button", { type: "button", class: done ? "fire" : "primary fire", dataTransition: t.id,
                        dataKey: "fire:" + t.id, disabled: done, onclick: () => fire(t.id) },
            done ? `Déclenchée à ${hhmmss(t.fired_at)}` : (t.error ? "Déclencher à nouveau" : "Déclencher"));
}

async function fire(id) {
  try {
    const result = await api("POST", `/transitions/${encodeURIComponent(id)}`);
    if (result.error) say(`Transition ${id} : échec, ${result.error.message || result.error.code}`, true);
    else say(`Transition ${id} déclenchée : ${(result.actions || []).join(" ; ")}`);
  } catch (err) {
    if (err.code === "TRANSITION_ALREADY_FIRED") say(`La transition ${id} a déjà été déclenchée : rechargez le scénario pour la rejouer.`, true);
    else say(err.message, true);
  }
  refreshScenario(); refreshWorld();
}

async function refreshClock() {
  try {
    const clock = await api("GET", "/clock");
    const text = dateTime(clock.now);
    $("clock").textContent = text;
    $("clock-big").textContent = text;
    $("clock-offset").textContent = clock.offset ? `(avance de ${duration(clock.offset)} sur l'heure réelle)` : "(heure réelle)";
  } catch (err) { /* the next event retries */ }
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600), m = Math.floor(seconds % 3600 / 60);
  const s = Math.round(seconds % 60);
  return [d && `${d} j`, h && `${h} h`, m && `${m} min`, s && `${s} s`].filter(Boolean).join(" ") || "0 s";
}

async function advance(value) {
  try {
    await api("POST", "/clock", { advance: value });
    say(`Horloge avancée de ${value}.`);
  } catch (err) { say(err.message, true); }
  refreshClock(); refreshScenario(); refreshWorld();
}

async function loadScenarios() {
  try {
    const list = await api("GET", "/scenarios");
    $("scenario-select").replaceChildren(...list.map((s) => el("option", { value: s.id, text: `${s.id} · ${s.title}` })));
  } catch (err) { say(err.message, true); }
}

async function loadScenario(id) {
  say(`Chargement de ${id}…`);
  try { await api("POST", `/scenarios/${encodeURIComponent(id)}`); say(`Scénario ${id} chargé.`); }
  catch (err) { say(err.message, true); }
  refreshAll();
}

async function finishSteps() {
  try {
    const steps = await api("POST", "/steps/finish");
    const failed = steps.filter((st) => st.status === "failed").length;
    say(`Étapes closes : ${steps.length - failed} réussie(s), ${failed} échouée(s).`);
  } catch (err) { say(err.message, true); }
  refreshScenario();
}

async function resetBench() {
  try { await api("POST", "/reset"); say("Banc réinitialisé : monde vide, journal vide."); }
  catch (err) { say(err.message, true); }
  refreshAll();
}

// World ------------------------------------------------------------------------------------------
function docCards(versions) {
  // One card per document (unique id), its metadata versions listed; RPLC links name the neighbours.
  const byUid = new Map();
  for (const d of versions) {
    if (!byUid.has(d.unique_id)) byUid.set(d.unique_id, []);
    byUid.get(d.unique_id).push(d);
  }
  const names = new Map(versions.map((d) => [d.unique_id, d.id !== d.unique_id ? d.id : (d.title || d.unique_id)]));
  const cards = [];
  for (const [uid, list] of byUid) {
    list.sort((a, b) => a.version - b.version);
    const d = list[list.length - 1];
    const conf = (d.confidentiality || []).filter((c) => c !== "N");
    const card = el("article", { class: `doc st-${d.status}` + (conf.includes("MASQUE_PS") ? " masked" : ""),
                                 dataDoc: d.id, dataUniqueId: uid, dataStatus: d.status,
                                 dataConfidentiality: conf.join(" "), tabindex: "0", dataKey: "doc:" + uid,
                                 "aria-label": `Document ${d.title || d.id} : ${DOC_STATUS[d.status] || d.status}` +
                                               (conf.length ? ", " + conf.map((c) => CONFIDENTIALITY[c] || c).join(", ") : "") },
      el("h4", { text: d.title || d.type_code || d.id }),
      el("div", { class: "badges" },
        el("span", { class: `badge st-${d.status}`, text: DOC_STATUS[d.status] || d.status }),
        conf.map((c) => el("span", { class: `badge conf-${c}`, text: CONFIDENTIALITY[c] || c })),
        list.length > 1 || d.version > 1 ? el("span", { class: "badge", text: `métadonnées v${d.version}` }) : null),
      d.replaces ? el("div", { class: "chain", text: `↑ remplace ${names.get(d.replaces) || d.replaces}` }) : null,
      d.replaced_by ? el("div", { class: "chain", text: `↓ remplacé par ${names.get(d.replaced_by) || d.replaced_by}` }) : null,
      el("div", { class: "ids", text: `${d.id !== uid ? d.id + " · " : ""}${d.type_code || ""} · ${uid}` }),
      el("div", { class: "ids", text: `auteur ${professionalName(d.author)} · ${d.submission_time || d.creation_time || ""}` }),
      list.length > 1 ? el("ol", { class: "versions" }, list.map((v) => el("li", {
        text: `v${v.version} : ${DOC_STATUS[v.status] || v.status}` +
              `${(v.confidentiality || []).filter((c) => c !== "N").map((c) => ", " + (CONFIDENTIALITY[c] || c)).join("")}` }))) : null);
    cards.push(card);
  }
  return cards;
}

function professionalName(key) {
  const p = state.professionals[key] || Object.values(state.professionals).find((x) => x.idnps === key || x.rpps === key);
  return p ? `${p.given_name} ${p.family_name}` : (key || "?");
}

function subjectName(a) {
  if (a.subject_kind === "structure") return (state.structures[a.subject] || {}).name || a.subject;
  return professionalName(a.subject);
}

const refreshWorld = serialized(async () => {
  let patientsPage, prosPage, structuresPage, mailboxesPage;
  try {
    [patientsPage, prosPage, structuresPage, mailboxesPage] = await Promise.all([
      api("GET", `/patients?limit=${PATIENTS_SHOWN}`), api("GET", `/professionals?limit=${ROWS_SHOWN}`),
      api("GET", `/structures?limit=${ROWS_SHOWN}`), api("GET", `/mss/mailboxes?limit=${ROWS_SHOWN}`)]);
  } catch (err) { return; }
  const [patients, pros, structures, mailboxes] = [patientsPage, prosPage, structuresPage, mailboxesPage].map((p) => p.items);
  state.patients = Object.fromEntries(patients.map((p) => [p.id, p]));
  state.professionals = Object.fromEntries(pros.map((p) => [p.id, p]));
  state.structures = Object.fromEntries(structures.map((s) => [s.id, s]));
  patientOptions();
  if (state.view !== "world") return;
  const blocks = await Promise.all(patients.map(async (p) => {
    let docs = [], auths = [];
    try {
      [docs, auths] = await Promise.all([api("GET", `/patients/${encodeURIComponent(p.id)}/documents?history=1`),
                                         api("GET", `/patients/${encodeURIComponent(p.id)}/authorizations`)]);
    } catch (err) { /* the patient went away under us: the next refresh redraws */ }
    const facts = [el("span", { class: "fact" + (p.dmp === "active" ? "" : " warn"), text: DMP_STATUS[p.dmp] || p.dmp }),
                   el("span", { class: "fact", text: `INS ${p.ins}` }),
                   el("span", { class: "fact", text: `${p.sex === "F" ? "née" : "né"} le ${p.birth_date}` }),
                   p.minor ? el("span", { class: "fact", text: "mineur" }) : null,
                   p.secret_connection ? el("span", { class: "fact warn", text: "connexion secrète" }) : null,
                   (p.oppositions || []).length ? el("span", { class: "fact warn", text: `oppositions : ${p.oppositions.join(", ")}` }) : null];
    return el("section", { class: "patient", dataPatient: p.id, "aria-label": `Patient ${p.given_name} ${p.family_name}` },
      el("h3", { text: `${p.given_name} ${p.family_name}` }, el("span", { class: "hint", text: ` ${p.id}` })),
      el("div", { class: "facts" }, facts),
      el("ul", { class: "auths", "aria-label": "Autorisations d'accès au DMP" },
        auths.length ? auths.map((a) => el("li", { class: `auth a-${a.status}`, dataSubject: a.subject, dataStatus: a.status,
          text: `${subjectName(a)} : ${AUTH_STATUS[a.status] || a.status}` })) : el("li", { class: "empty", text: "aucune autorisation" })),
      docs.length ? el("div", { class: "cards" }, docCards(docs)) : el("p", { class: "empty", text: "Aucun document dans le DMP." }));
  }));
  if (patientsPage.total > patients.length) blocks.push(more(patientsPage, "patients", "/patients"));
  redraw($("patients"), (blocks.length ? blocks : [el("p", { class: "empty", text: "Aucun patient." })]));
  $("professionals").tBodies[0].replaceChildren(...pros.map((p) => el("tr", { dataProfessional: p.id },
    el("td", { text: `${p.given_name} ${p.family_name}` }), el("td", { text: p.rpps }),
    el("td", { text: [p.profession, p.specialty].filter(Boolean).join(" / ") }),
    el("td", { text: (state.structures[p.structure] || {}).name || p.structure || "" }), el("td", { text: p.mssante || "" }))),
    ...(prosPage.total > pros.length ? [el("tr", { class: "more" }, el("td", { colspan: "5" }, more(prosPage, "professionnels", "/professionals")))] : []));
  $("structures").tBodies[0].replaceChildren(...structures.map((s) => el("tr", { dataStructure: s.id },
    el("td", { text: s.name }), el("td", { text: s.finess }), el("td", { text: `${s.address.postal_code} ${s.address.city}`.trim() }))),
    ...(structuresPage.total > structures.length ? [el("tr", { class: "more" }, el("td", { colspan: "3" }, more(structuresPage, "structures", "/structures")))] : []));
  const boxes = await Promise.all(mailboxes.map(mailboxBlock));
  if (mailboxesPage.total > mailboxes.length) boxes.push(more(mailboxesPage, "boîtes", "/mss/mailboxes"));
  redraw($("mailboxes"), (boxes.length ? boxes : [el("p", { class: "empty", text: "Aucune boîte aux lettres." })]));
  let outbox = [];
  try { outbox = await api("GET", "/pfi/outbox"); } catch (err) { /* shown again on the next refresh */ }
  $("outbox").tBodies[0].replaceChildren(...outbox.map((m) => el("tr", { dataOutbox: m.id, class: m.state === "dead" ? "warn" : null },
    el("td", { text: m.id }), el("td", { text: m.state === "dead" ? "abandonné" : "en attente" }), el("td", { text: m.operation }),
    el("td", { text: m.ref || "" }), el("td", { text: m.attempts }),
    el("td", { text: m.state === "dead" ? (m.reason || "") : (m.last_error ? `${m.last_error} · prochain essai ${m.next_attempt}` : "") }))));
  $("outbox").hidden = !outbox.length;
  $("outbox-empty").hidden = !!outbox.length;
});

// A large world (issue 21): the first page is drawn, and a line says how many more the control API pages.
function more(page, what, path) {
  return el("p", { class: "hint more", dataTotal: String(page.total),
    text: `${page.items.length} premiers ${what} affichés sur ${page.total.toLocaleString("fr-FR")} ; les suivants : GET /_bench${path}?offset=${page.items.length}&limit=…` });
}

async function mailboxBlock(m) {
  const open = state.openMailboxes.has(m.address);
  const block = el("div", { class: "mailbox", dataMailbox: m.address },
    el("span", { class: "who", text: m.address }), " ",
    el("span", { class: "hint", text: `${MAILBOX_ROLE[m.role] || m.role} · ${m.type}` }), " ",
    el("button", { type: "button", "aria-expanded": String(open), dataKey: "mailbox:" + m.address, onclick: () => {
      if (open) state.openMailboxes.delete(m.address); else state.openMailboxes.add(m.address);
      refreshWorld();
    } }, open ? "Masquer les messages" : "Voir les messages"));
  if (!open) return block;
  let messages = [];
  try { messages = await api("GET", `/mss/mailboxes/${encodeURIComponent(m.address)}/messages`); } catch (err) { /* gone */ }
  const hidden = Math.max(messages.length - MAX_MESSAGES, 0);
  messages = messages.slice(hidden);
  const xdms = await Promise.all(messages.map((msg) =>
    api("GET", `/mss/messages/${encodeURIComponent(msg.id)}/xdm`).catch(() => null)));
  block.append(el("ul", { class: "messages" }, messages.length ? messages.map((msg, i) => el("li", { dataMessage: msg.id },
    el("strong", { text: msg.subject || "(sans objet)" }),
    el("div", { text: `de ${msg.sender} · reçu ${msg.received_at} · ${msg.size} octets` +
                      ((msg.flags || []).length ? ` · ${msg.flags.join(" ")}` : "") }),
    xdmBlock(xdms[i]),
    xdms[i] && xdms[i].package ? null : findingList(msg.findings)))
    : el("li", { class: "empty", text: "Aucun message." })));
  if (hidden) block.append(el("p", { class: "hint", text: `${hidden} messages plus anciens non affichés` }));
  return block;
}

const XDM_ACTION = { C: "remplacement", D: "suppression" };

function findingList(findings) {
  if (!(findings || []).length) return null;
  return el("ul", { class: "findings" }, findings.map((f) => el("li", {},
    el("span", { class: `sev sev-${f.severity}`, text: SEVERITY[f.severity] || f.severity || "" }), " ",
    el("strong", { text: f.rule || "" }), " : ", findingText(f))));
}

// A finding's French text when it has one (issue 19); the English message stays in the JSON for CI.
function findingText(f) {
  return f.message_fr || f.message || "";
}

function xdmBlock(xdm) {
  if (!xdm || !xdm.package) return el("div", { class: "parts", text: "pas de paquet XDM" });
  return el("div", { class: "xdm", dataXdm: xdm.package },
    el("div", { text: `${xdm.package} (${xdm.size} octets)` +
                      (xdm.error ? ` : illisible, ${xdm.error.code} ${xdm.error.message}` : "") }),
    xdm.documents.length ? el("ul", { class: "xdm-docs" }, xdm.documents.map((d) => el("li", { dataUniqueId: d.unique_id },
      el("strong", { text: d.title || d.path }),
      ` · ${d.type_code} · ${d.unique_id} · ${XDM_ACTION[d.action] || (d.action ? "action " + d.action : "envoi initial")}` +
      (d.hash_ok && d.size_ok ? "" : " · empreinte ou taille fausse")))) : null,
    xdm.files.length ? el("div", { class: "parts", text: "fichiers : " + xdm.files.map((f) => `${f.name} (${f.size})`).join(", ") }) : null,
    findingList(xdm.findings));
}

// Configurer votre DPI: GET /_bench/endpoints, drawn as tables (issue 18 point 4) ------------------------
function configTable(id, rows) {
  const kept = rows.filter(([, value]) => value !== null && value !== undefined && value !== "");
  return el("table", { class: "grid config", id },
    el("tbody", {}, kept.map(([label, value]) => el("tr", {}, el("th", { scope: "row", text: label }),
      el("td", {}, el("code", { text: String(value) }))))));
}

function configSection(title, ...content) {
  return el("section", { class: "config-section" }, el("h3", { text: title }), ...content);
}

async function refreshConfigNow() {
  let d;
  try { d = await api("GET", "/endpoints"); } catch (err) { $("config").replaceChildren(el("p", { class: "error", text: err.message })); return; }
  const u = d.urls, sections = [];
  const back = u.backchannel !== u.http || (u.https && u.backchannel_https !== u.https);
  sections.push(configSection("Banc", configTable("config-bench", [
    ["Version", d.version], ["Scénario", d.scenario || "(aucun)"], ["TLS", d.tls ? "activé" : "désactivé"],
    ["URL publique (navigateur)", u.http], ["URL publique HTTPS", u.https],
    ["Canal arrière (serveurs)", back ? u.backchannel : null], ["Canal arrière HTTPS", back && u.https ? u.backchannel_https : null],
    ["API de contrôle", u.control + (u.control_token_required ? " (jeton de contrôle exigé)" : "")]])));
  sections.push(configSection("DMP (SOAP 1.2, WS-Addressing, VIHF signé)" + (d.dmp.plain_http_refused ? " — HTTPS avec certificat client" : ""),
    configTable("config-dmp", d.dmp.services.flatMap((s) => [[s.service, s.https || s.http], [`${s.service} : WSDL`, s.wsdl_https || s.wsdl]]))));
  for (const issuer of d.oidc) {
    const side = issuer.urls.https || issuer.urls.http;
    const rows = [["Émetteur (issuer)", side.issuer], ["Découverte", side.discovery],
      ["Autorisation (navigateur)", side.authorization_endpoint], ["Jeton", side.token_endpoint],
      ["Userinfo", side.userinfo_endpoint], ["JWKS", side.jwks_uri], ["Introspection", side.introspection_endpoint],
      ["CIBA", side.backchannel_authentication_endpoint], ["Portées", issuer.scopes.join(" ")], ["acr_values", issuer.acr]];
    for (const c of issuer.clients) {
      rows.push(["client_id", c.client_id], ["client_secret", c.client_secret], ["redirect_uri", c.redirect_uris.join(", ")]);
    }
    sections.push(configSection(`${issuer.title} (OIDC)`, configTable(`config-oidc-${issuer.name}`, rows)));
  }
  sections.push(configSection("Annuaire Santé (FHIR R4, API V2)", configTable("config-annuaire", [
    ["Base", d.annuaire.base_https || d.annuaire.base], ["En-tête", `${d.annuaire.api_key_header}: ${d.annuaire.api_keys.join(" | ")}`]])));
  sections.push(configSection("PFI (HL7 v2 sur MLLP)", configTable("config-pfi", [
    ["Envoi des messages du DPI", `${d.pfi.host}:${d.pfi.port}`],
    ["Écoute MLLP du DPI (ZAM)", d.pfi.dpi_listener || "aucune (mockbench up --dpi-mllp HÔTE:PORT)"]])));
  sections.push(configSection("MSSanté (SMTP, IMAP)", configTable("config-mss", [
    ["SMTP", `${d.mss.smtp.host}:${d.mss.smtp.port}${d.mss.smtp.starttls ? " STARTTLS" : ""}`],
    ["IMAP", `${d.mss.imap.host}:${d.mss.imap.port}${d.mss.imap.starttls ? " STARTTLS" : ""}`],
    ["Authentification", d.mss.smtp.auth_in_clear ? null : "jamais en clair : après STARTTLS seulement"],
    ...d.mss.auth_rules.map((rule) => ["Règle", rule])])));
  const cert = d.certificates;
  sections.push(configSection("Certificats", configTable("config-certificates", [
    ["Dossier", cert.folder], ["Autorité (ca.crt)", cert.ca], ["Serveur", cert.server],
    ...cert.clients.flatMap((c) => [[`Client ${c.name}`, `${c.cert} + ${c.key}`], [`${c.name} : sujet`, c.subject], [`${c.name} : PKCS#12`, c.p12]]),
    ...cert.signing.flatMap((s) => [[`Cachet VIHF ${s.idnst}`, `${s.cert} + ${s.key}`], [`${s.idnst} : PKCS#12`, s.p12]]),
    ["Mot de passe PKCS#12", cert.p12_password], ["Attention", cert.problem]])));
  const ids = d.identities;
  const grid = (id, head, rows) => el("table", { class: "grid config", id },
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((v) => el("td", { text: v === null || v === undefined ? "" : String(v) }))))));
  sections.push(configSection("Identités du monde chargé" + (ids.truncated ? " (listes coupées)" : ""),
    grid("config-patients", ["Patient", "INS", "OID", "Nom", "Prénom", "Naissance", "Sexe"],
         ids.patients.map((p) => [p.id, p.ins, p.ins_oid, p.family_name, p.given_name, p.birth_date, p.sex])),
    grid("config-professionals", ["Professionnel", "IDNPS", "RPPS", "Nom", "Structure", "MSSanté"],
         ids.professionals.map((p) => [p.id, p.idnps, p.rpps, `${p.given_name} ${p.family_name}`, p.structure, p.mssante])),
    grid("config-structures", ["Structure", "FINESS", "FINESS EJ", "IDNST", "Nom"],
         ids.structures.map((s) => [s.id, s.finess, s.finess_ej, s.idnst, s.name])),
    grid("config-mailboxes", ["Boîte aux lettres", "Type", "Titulaire", "Rôle"],
         ids.mailboxes.map((b) => [b.address, b.type, b.owner, b.role]))));
  redraw($("config"), sections);
}
const refreshConfig = serialized(refreshConfigNow);

function refreshAll() { refreshClock(); refreshScenario(); refreshFaults(); refreshWorld(); }

// Keyboard ---------------------------------------------------------------------------------------
function moveInTimeline(delta) {
  const rows = Array.from(document.querySelectorAll("#timeline li:not([hidden]) .entry"));
  if (!rows.length) return;
  const index = rows.indexOf(document.activeElement);
  const next = index < 0 ? 0 : Math.max(0, Math.min(rows.length - 1, index + delta));
  rows[next].focus();
  rows[next].scrollIntoView({ block: "nearest" });
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  const typing = target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA");
  if (document.querySelector("dialog[open]")) return;    // dialogs handle Escape and Tab themselves
  if (typing) return;
  const key = event.key;
  const views = { "1": "timeline", "2": "world", "3": "scenario", "4": "config" };
  if (views[key]) { show(views[key]); $("tab-" + views[key]).focus(); event.preventDefault(); return; }
  if (key === "?") { $("help").showModal(); event.preventDefault(); return; }
  if (key === "/") { show("timeline"); $("filter-text").focus(); event.preventDefault(); return; }
  if (key === "h") { show("scenario"); $("clock-input").focus(); $("clock-input").select(); event.preventDefault(); return; }
  if (key === "g") { show("scenario"); $("scenario-select").focus(); event.preventDefault(); return; }
  if (state.view === "timeline" && (key === "j" || key === "ArrowDown")) { moveInTimeline(1); event.preventDefault(); return; }
  if (state.view === "timeline" && (key === "k" || key === "ArrowUp")) { moveInTimeline(-1); event.preventDefault(); return; }
  if (target && target.getAttribute("role") === "tab" && (key === "ArrowRight" || key === "ArrowLeft")) {
    const tabs = Array.from(document.querySelectorAll(".tabs [role=tab]"));
    const next = tabs[(tabs.indexOf(target) + (key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    show(next.dataset.view); next.focus(); event.preventDefault();
  }
}

// Start ------------------------------------------------------------------------------------------
function start() {
  for (const tab of document.querySelectorAll(".tabs [role=tab]")) tab.addEventListener("click", () => show(tab.dataset.view));
  $("help-button").addEventListener("click", () => $("help").showModal());
  for (const button of document.querySelectorAll("[data-close]")) button.addEventListener("click", () => $(button.dataset.close).close());
  $("detail-close").addEventListener("click", closeDetail);
  $("detail").addEventListener("close", () => { if (state.detailOrigin && state.detailOrigin.isConnected) state.detailOrigin.focus(); });
  $("load-form").addEventListener("submit", (event) => { event.preventDefault(); loadScenario($("scenario-select").value); });
  $("reset-button").addEventListener("click", () => { $("confirm-reset").returnValue = ""; $("confirm-reset").showModal(); });
  $("confirm-reset").addEventListener("close", () => { if ($("confirm-reset").returnValue === "reset") resetBench(); });
  $("filter-channel").append(...Object.entries(CHANNELS).map(([value, text]) => el("option", { value, text })));
  for (const id of ["filter-channel", "filter-verdict", "filter-patient"]) $(id).addEventListener("change", applyFilter);
  $("filter-text").addEventListener("input", () => later("filter", applyFilter, 120));
  $("filter").addEventListener("submit", (event) => { event.preventDefault(); applyFilter(); });
  $("filter-clear").addEventListener("click", clearFilter);
  $("finish-button").addEventListener("click", finishSteps);
  $("clock-form").addEventListener("submit", (event) => { event.preventDefault(); advance($("clock-input").value.trim()); });
  for (const button of document.querySelectorAll(".advance")) button.addEventListener("click", () => advance(button.dataset.advance));
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", () => { const view = viewOfFragment(); if (view && view !== state.view) show(view); });
  if (viewOfFragment()) show(viewOfFragment());
  $("timeline-empty").hidden = false;
  loadScenarios().then(refreshScenario).then(refreshFaults);
  refreshClock();
  refreshWorld().then(connect);
  setInterval(() => { refreshClock(); refreshScenario(); refreshFaults(); }, 5000);   // what no journal entry announces
}

document.addEventListener("DOMContentLoaded", start);
