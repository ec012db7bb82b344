// The AerolithDB web console: plain JavaScript, no build step. It talks to this gateway's
// public API (REST, and GraphQL over a WebSocket for live changes) and, for the replication
// view, to the replicator admin API named in /console/config.json, with the token the
// person signs in with, sent as a bearer header (never in a URL). Every value it shows goes
// in through textContent: document content is hostile input.
'use strict';

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const TOKEN_KEY = 'aerolith-console-token';
const PAGE = 20;
const LIVE_QUERY =
  'subscription($c: String!, $s: String) { changes(collection: $c, since: $s) ' +
  '{ op collection id version updatedAt origin data token } }';

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  collection: null,
  cursors: [null], // the cursor of each page seen, for "next" and "first"
  doc: null, // { collection, id, etag }
  live: null,
};

function say(text, kind) {
  const m = $('message');
  m.textContent = text;
  m.className = kind || '';
}

/** One API call: JSON in and out, the bearer token attached; an error carries the code. */
async function api(method, path, body, headers) {
  const h = Object.assign({}, headers || {});
  if (state.token) h.Authorization = 'Bearer ' + state.token;
  let payload;
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    payload = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const r = await fetch(path, { method, headers: h, body: payload, cache: 'no-store' });
  const text = await r.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = text; }
  }
  if (!r.ok) {
    const err = data && data.error ? data.error : { code: 'http_' + r.status, message: text };
    const e = new Error(err.code + ': ' + err.message);
    e.status = r.status;
    e.code = err.code;
    throw e;
  }
  return { status: r.status, data, etag: r.headers.get('ETag') };
}

/** Runs an action, showing its error (if any) in the message line. */
function guarded(action) {
  return async (event) => {
    if (event) event.preventDefault();
    try {
      await action(event);
    } catch (e) {
      say(e.message, 'error');
    }
  };
}

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(what + ' is not valid JSON: ' + e.message);
  }
}

function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function linkButton(text, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'link';
  b.textContent = text;
  b.addEventListener('click', guarded(onClick));
  return b;
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

function show(view) {
  for (const s of document.querySelectorAll('.view')) s.hidden = s.id !== view;
  for (const b of document.querySelectorAll('#tabs button')) {
    b.classList.toggle('active', b.dataset.view === view);
  }
}

// Signing in: the token is checked against the API before it is kept.

async function signIn(token) {
  state.token = token || null;
  try {
    await api('GET', '/v1/collections');
  } catch (e) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    throw new Error('Sign-in failed: ' + e.message);
  }
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  $('tabs').hidden = false;
  $('sign-out').hidden = false;
  $('who').textContent = token ? 'signed in' : 'no token (authentication off)';
  await detectAdmin();
  say('Signed in.', 'ok');
  await openCollections();
}

function signOut() {
  stopLive();
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  admin.base = null;
  admin.history = {};
  $('tab-replication').hidden = true;
  $('tabs').hidden = true;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  $('token').value = '';
  show('signin');
  say('Signed out.', 'ok');
}

// Collections.

async function openCollections() {
  show('collections');
  const { data } = await api('GET', '/v1/collections');
  const body = $('collection-table').tBodies[0];
  clear(body);
  for (const c of data.collections) {
    const row = body.insertRow();
    cell(row, c.name);
    cell(row, c.conflict_strategy);
    const indexes = cell(row, '…');
    const actions = cell(row, '');
    actions.appendChild(linkButton('Browse', () => openDocuments(c.name)));
    api('GET', '/v1/collections/' + enc(c.name) + '/indexes').then(
      (r) => {
        indexes.textContent = r.data.indexes.map((i) => i.name + ' (' + i.state + ')').join(', ') || '—';
      },
      () => { indexes.textContent = '?'; },
    );
  }
}

async function createCollection() {
  const name = $('new-collection').value.trim();
  const r = await api('PUT', '/v1/collections/' + enc(name), { conflict_strategy: $('new-strategy').value });
  say(r.status === 201 ? 'Created collection ' + name + '.' : 'Collection ' + name + ' exists already.', 'ok');
  $('new-collection').value = '';
  await openCollections();
}

// Documents: pages by keyset cursor.

async function openDocuments(collection) {
  state.collection = collection;
  state.cursors = [null];
  $('doc-collection').textContent = collection;
  show('documents');
  await loadPage(0);
}

async function loadPage(index) {
  const cursor = state.cursors[index];
  let path = '/v1/collections/' + enc(state.collection) + '/docs?limit=' + PAGE;
  if (cursor) path += '&cursor=' + enc(cursor);
  const { data } = await api('GET', path);
  state.page = index;
  state.cursors.length = index + 1;
  if (data.next_cursor) state.cursors.push(data.next_cursor);
  $('doc-next').disabled = !data.next_cursor;
  const body = $('doc-table').tBodies[0];
  clear(body);
  for (const d of data.documents) {
    const row = body.insertRow();
    row.insertCell().appendChild(linkButton(d.id, () => openDocument(state.collection, d.id)));
    cell(row, d.version);
    const text = JSON.stringify(d.data);
    cell(row, text.length > 200 ? text.slice(0, 200) + '…' : text, 'data');
  }
}

async function addDocument() {
  const data = parseJson($('new-doc-data').value, 'The document');
  const id = $('new-doc-id').value.trim();
  const base = '/v1/collections/' + enc(state.collection) + '/docs';
  const r = id
    ? await api('PUT', base + '/' + enc(id), data, { 'If-None-Match': '*' })
    : await api('POST', base, data);
  say('Added document ' + r.data.id + '.', 'ok');
  $('new-doc-id').value = '';
  await loadPage(0);
}

// The editor: saves with If-Match, so a concurrent change is a clear 412, never lost.

async function openDocument(collection, id) {
  const r = await api('GET', '/v1/collections/' + enc(collection) + '/docs/' + enc(id));
  state.doc = { collection, id, etag: r.etag };
  $('edit-collection').textContent = collection;
  $('edit-id').textContent = id;
  $('edit-version').textContent = r.data.version;
  $('edit-data').value = JSON.stringify(r.data.data, null, 2);
  show('editor');
}

function docPath() {
  return '/v1/collections/' + enc(state.doc.collection) + '/docs/' + enc(state.doc.id);
}

async function saveDocument() {
  const data = parseJson($('edit-data').value, 'The document');
  try {
    const r = await api('PUT', docPath(), data, { 'If-Match': state.doc.etag });
    state.doc.etag = r.etag;
    $('edit-version').textContent = r.data.version;
    say('Saved ' + state.doc.id + ' as version ' + r.data.version + '.', 'ok');
  } catch (e) {
    if (e.status === 412) {
      throw new Error('Not saved: ' + state.doc.id + ' changed since you opened it ' +
        '(412 precondition_failed). Reload to see the current version, then edit again.');
    }
    throw e;
  }
}

async function deleteDocument() {
  if (!window.confirm('Delete ' + state.doc.id + ' from ' + state.doc.collection + '?')) return;
  try {
    await api('DELETE', docPath(), undefined, { 'If-Match': state.doc.etag });
  } catch (e) {
    if (e.status === 412) {
      throw new Error('Not deleted: ' + state.doc.id + ' changed since you opened it (412 precondition_failed).');
    }
    throw e;
  }
  say('Deleted ' + state.doc.id + '.', 'ok');
  await openDocuments(state.doc.collection);
}

// Queries.

async function runQuery() {
  const collection = $('query-collection').value.trim();
  const body = { filter: parseJson($('query-filter').value || '{}', 'The filter') };
  const sort = $('query-sort').value.trim();
  if (sort) {
    body.sort = sort.split(',').map((s) => {
      const [field, order] = s.trim().split(':');
      return { field, order: order || 'asc' };
    });
  }
  const projection = $('query-projection').value.trim();
  if (projection) body.projection = projection.split(',').map((p) => p.trim());
  body.limit = Number($('query-limit').value) || 20;
  if ($('query-explain').checked) body.explain = true;
  const { data } = await api('POST', '/v1/collections/' + enc(collection) + '/query', body);
  const out = $('query-result');
  clear(out);
  if ($('query-as-json').checked) {
    const pre = document.createElement('pre');
    pre.id = 'query-json';
    pre.textContent = JSON.stringify(data.documents, null, 2);
    out.appendChild(pre);
  } else {
    const fields = [];
    for (const d of data.documents) {
      for (const k of Object.keys(d.data || {})) if (!fields.includes(k) && fields.length < 12) fields.push(k);
    }
    const table = document.createElement('table');
    table.id = 'query-table';
    const head = table.createTHead().insertRow();
    for (const h of ['id', ...fields]) {
      const th = document.createElement('th');
      th.textContent = h;
      head.appendChild(th);
    }
    const tbody = table.createTBody();
    for (const d of data.documents) {
      const row = tbody.insertRow();
      cell(row, d.id);
      for (const f of fields) {
        const v = d.data ? d.data[f] : undefined;
        cell(row, v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v), 'data');
      }
    }
    out.appendChild(table);
  }
  renderPlan(data.plan);
  say(data.documents.length + ' documents' + (data.next_cursor ? ' (more match)' : '') + '.', 'ok');
}

/** The query's plan (with explain): per storage node, the index used and records examined. */
function renderPlan(plan) {
  const out = $('query-plan');
  clear(out);
  if (!plan) return;
  const table = document.createElement('table');
  table.id = 'plan-table';
  const head = table.createTHead().insertRow();
  for (const h of ['node', 'index', 'examined']) {
    const th = document.createElement('th');
    th.textContent = h;
    head.appendChild(th);
  }
  const tbody = table.createTBody();
  for (const step of plan) {
    const row = tbody.insertRow();
    cell(row, step.node);
    cell(row, step.index === null || step.index === undefined ? 'scan' : step.index);
    cell(row, String(step.examined));
  }
  out.appendChild(table);
}

// Live changes: a GraphQL subscription over a WebSocket (the token in connection_init's
// payload, not the URL), resumed from the last change's token after a reconnect.

function setLiveStatus(text) {
  $('live-status').textContent = text;
}

function startLive() {
  stopLive();
  const live = { collection: $('live-collection').value.trim(), token: null, ws: null, stopped: false, retries: 0 };
  state.live = live;
  clear($('live-events'));
  $('live-token').textContent = '';
  connectLive(live);
}

function connectLive(live) {
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const ws = new WebSocket(scheme + location.host + '/graphql/ws', 'graphql-transport-ws');
  live.ws = ws;
  setLiveStatus('connecting');
  ws.onopen = () => {
    const payload = state.token ? { Authorization: 'Bearer ' + state.token } : {};
    ws.send(JSON.stringify({ type: 'connection_init', payload }));
  };
  ws.onmessage = (m) => {
    let msg;
    try { msg = JSON.parse(m.data); } catch (e) { return; }
    if (msg.type === 'connection_ack') {
      live.retries = 0;
      setLiveStatus(live.token ? 'live (resumed)' : 'live');
      const variables = { c: live.collection, s: live.token };
      ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: LIVE_QUERY, variables } }));
    } else if (msg.type === 'next') {
      if (msg.payload.errors) {
        say('Live changes: ' + msg.payload.errors.map((e) => e.message).join('; '), 'error');
        return;
      }
      const ev = msg.payload.data.changes;
      live.token = ev.token;
      $('live-token').textContent = ev.token;
      // A checkpoint only moves the position (nothing changed): kept, not listed.
      if (ev.op === 'checkpoint') return;
      const li = document.createElement('li');
      li.textContent = ev.op + ' ' + ev.id + ' ' + (ev.version || '') + ' ' +
        (ev.data === null || ev.data === undefined ? '' : JSON.stringify(ev.data));
      $('live-events').prepend(li);
    } else if (msg.type === 'error') {
      say('Live changes: ' + JSON.stringify(msg.payload), 'error');
    } else if (msg.type === 'ping') {
      ws.send(JSON.stringify({ type: 'pong' }));
    }
  };
  ws.onclose = (e) => {
    if (live.stopped || state.live !== live) return;
    if (e.code === 4403 || e.code === 4401) {
      setLiveStatus('refused (' + e.reason + ')');
      return;
    }
    const wait = Math.min(5000, 250 * 2 ** live.retries++);
    setLiveStatus('reconnecting in ' + wait + ' ms');
    setTimeout(() => { if (!live.stopped && state.live === live) connectLive(live); }, wait);
  };
}

function stopLive() {
  const live = state.live;
  if (!live) return;
  live.stopped = true;
  state.live = null;
  if (live.ws) live.ws.close();
  setLiveStatus('stopped');
}

// The cluster: DCs, nodes, health and shard ownership, refreshed while shown.

async function openCluster() {
  show('cluster');
  await loadCluster();
}

async function loadCluster() {
  const { data } = await api('GET', '/v1/cluster');
  $('cluster-dc').textContent = data.dc;
  $('cluster-shards').textContent = String(data.shards);
  const body = $('cluster-table').tBodies[0];
  clear(body);
  for (const dc of data.dcs) {
    for (const n of dc.nodes) {
      const row = body.insertRow();
      row.dataset.node = dc.id + '/' + n.id;
      cell(row, dc.id);
      cell(row, dc.state);
      cell(row, n.id);
      cell(row, n.healthy ? 'healthy' : 'unhealthy', n.healthy ? 'healthy' : 'unhealthy');
      cell(row, String(n.shards.length));
    }
  }
}

// Replication: the replicator admin API of this gateway's DC, when the gateway names one
// (`--console-admin`) and it answers this token (it asks for the admin role). The browser
// reaches it across origins; the replicator answers only the consoles it names.

const admin = { base: null, history: {}, peers: [] };
const HISTORY = 60; // points per series: two minutes at one poll every 2 s

async function detectAdmin() {
  admin.base = null;
  admin.history = {};
  $('tab-replication').hidden = true;
  let config;
  try {
    config = (await api('GET', '/console/config.json')).data;
  } catch (e) {
    return;
  }
  if (!config || !config.admin) return;
  try {
    await api('GET', config.admin + '/admin/status');
  } catch (e) {
    // Not an admin token, or the admin API is not reachable from this browser.
    $('who').textContent += ' · replication view: ' + (e.code || 'unreachable');
    return;
  }
  admin.base = config.admin;
  $('repl-admin').textContent = config.admin;
  $('tab-replication').hidden = false;
}

function adminApi(method, path, body) {
  return api(method, admin.base + path, body);
}

async function openReplication() {
  show('replication');
  await loadReplication();
}

async function loadReplication() {
  const { data } = await adminApi('GET', '/admin/status');
  $('repl-dc').textContent = data.dc;
  admin.peers = data.peers.map((p) => p.dc);
  const body = $('peer-table').tBodies[0];
  clear(body);
  for (const p of data.peers) {
    const row = body.insertRow();
    row.dataset.peer = p.dc;
    cell(row, p.dc);
    cell(row, p.state, p.state);
    cell(row, String(p.lag_changes));
    cell(row, String(p.lag_ms));
    cell(row, String(p.sent));
    cell(row, String(p.applied));
    cell(row, String(p.conflicts));
    const actions = cell(row, '');
    if (p.state === 'paused') {
      actions.appendChild(linkButton('Resume', () => peerAction(data.dc, p.dc, 'resume')));
    } else {
      actions.appendChild(linkButton('Pause', () => peerAction(data.dc, p.dc, 'pause')));
    }
    const series = admin.history[p.dc] || (admin.history[p.dc] = []);
    series.push(p.lag_ms);
    if (series.length > HISTORY) series.shift();
  }
  drawLag();
  fillSelect($('resync-peer'), admin.peers);
  fillSelect($('failover-dc'), [data.dc, ...admin.peers]);
  await loadConflicts();
}

/** Replaces a select's options only when they changed, so a choice survives refreshes. */
function fillSelect(select, values) {
  const now = Array.from(select.options).map((o) => o.value);
  if (now.join('\n') === values.join('\n')) return;
  clear(select);
  for (const v of values) {
    const o = document.createElement('option');
    o.value = v;
    o.textContent = v;
    select.appendChild(o);
  }
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** The lag of each peer over the last polls, one line each, scaled to the largest value. */
function drawLag() {
  const chart = $('lag-chart');
  const legend = $('lag-legend');
  clear(chart);
  clear(legend);
  const [w, h, top] = [600, 160, 16];
  const peers = Object.keys(admin.history);
  const max = Math.max(1, ...peers.flatMap((p) => admin.history[p]));
  chart.appendChild(svg('line', { x1: 0, y1: top, x2: w, y2: top }));
  chart.appendChild(svg('line', { x1: 0, y1: h - 1, x2: w, y2: h - 1 }));
  const label = svg('text', { x: 4, y: 12 });
  label.textContent = max + ' ms';
  chart.appendChild(label);
  peers.forEach((peer, i) => {
    const series = admin.history[peer];
    const points = series.map((v, j) => {
      const x = (w * (HISTORY - series.length + j)) / (HISTORY - 1);
      const y = h - 1 - ((h - 1 - top) * v) / max;
      return x.toFixed(1) + ',' + y.toFixed(1);
    });
    const line = svg('polyline', { points: points.join(' '), class: 'series-' + (i % 4) });
    line.dataset.peer = peer;
    line.dataset.latest = String(series[series.length - 1]);
    chart.appendChild(line);
    const key = document.createElement('span');
    key.className = 'series-' + (i % 4);
    key.textContent = '— ' + peer + ': ' + series[series.length - 1] + ' ms';
    legend.appendChild(key);
  });
}

async function loadConflicts() {
  const { data } = await adminApi('GET', '/admin/conflicts?limit=20');
  const body = $('conflict-table').tBodies[0];
  clear(body);
  for (const c of data.conflicts) {
    const row = body.insertRow();
    cell(row, c.at);
    cell(row, c.from_dc);
    cell(row, c.collection);
    cell(row, c.id);
    cell(row, c.strategy);
    const r = c.resolution;
    cell(row, r.version + ' from ' + r.origin + (r.deleted ? ' (deleted)' : '') +
      (r.siblings ? ' with ' + r.siblings + ' siblings' : ''), 'data');
  }
}

async function peerAction(local, peer, action) {
  const question = action === 'pause'
    ? 'Pause shipping ' + local + "'s changes to " + peer + '? Its backlog is kept and ships on resume.'
    : 'Resume shipping ' + local + "'s changes to " + peer + '?';
  if (!window.confirm(question)) return;
  const { data } = await adminApi('POST', '/admin/peers/' + enc(peer) + '/' + action);
  say((action === 'pause' ? 'Paused' : 'Resumed') + ' shipping to ' + peer + ' (' + data.state + ').', 'ok');
  await loadReplication();
}

async function resync() {
  const peer = $('resync-peer').value;
  const collection = $('resync-collection').value.trim();
  const what = collection ? 'collection ' + collection : 'every collection';
  if (!window.confirm('Compare ' + what + ' with ' + peer + ' and repair the differences now?')) return;
  const body = { peer };
  if (collection) body.collection = collection;
  $('resync-result').textContent = '';
  const { data } = await adminApi('POST', '/admin/resync', body);
  $('resync-result').textContent = JSON.stringify(data, null, 2);
  say('Resync with ' + peer + ' done.', 'ok');
}

async function failover() {
  const dc = $('failover-dc').value;
  const to = $('failover-state').value;
  const question = to === 'down'
    ? 'Mark ' + dc + ' down for every gateway? Its clients are sent to other DCs until it is marked up.'
    : 'Mark ' + dc + ' up, back in service for every gateway?';
  if (!window.confirm(question)) return;
  await adminApi('POST', '/admin/failover', { dc, state: to });
  say('Marked ' + dc + ' ' + to + '.', 'ok');
}

setInterval(() => {
  if (!$('cluster').hidden) loadCluster().catch((e) => say(e.message, 'error'));
  if (!$('replication').hidden && admin.base) loadReplication().catch((e) => say(e.message, 'error'));
}, 2000);

document.addEventListener('DOMContentLoaded', () => {
  $('signin-form').addEventListener('submit', guarded(() => signIn($('token').value.trim())));
  $('sign-out').addEventListener('click', signOut);
  $('create-collection').addEventListener('submit', guarded(createCollection));
  $('new-doc').addEventListener('submit', guarded(addDocument));
  $('doc-first').addEventListener('click', guarded(() => loadPage(0)));
  $('doc-next').addEventListener('click', guarded(() => loadPage(state.page + 1)));
  $('save-doc').addEventListener('click', guarded(saveDocument));
  $('reload-doc').addEventListener('click', guarded(() => openDocument(state.doc.collection, state.doc.id)));
  $('delete-doc').addEventListener('click', guarded(deleteDocument));
  $('back-to-docs').addEventListener('click', guarded(() => openDocuments(state.doc.collection)));
  $('query-form').addEventListener('submit', guarded(runQuery));
  $('live-form').addEventListener('submit', guarded(startLive));
  $('live-stop').addEventListener('click', stopLive);
  $('resync-form').addEventListener('submit', guarded(resync));
  $('failover-form').addEventListener('submit', guarded(failover));
  const views = {
    collections: openCollections,
    query: async () => show('query'),
    live: async () => show('live'),
    cluster: openCluster,
    replication: openReplication,
  };
  for (const b of document.querySelectorAll('#tabs button')) {
    b.addEventListener('click', guarded(() => views[b.dataset.view]()));
  }
  if (state.token !== null) {
    guarded(() => signIn(state.token))();
  } else {
    show('signin');
  }
});
