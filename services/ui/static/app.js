// The data stager's researcher page. Plain DOM, no libraries. Every name shown comes from
// file systems other people control, so text goes in with textContent only (no innerHTML).
// Every state-changing call carries the page's CSRF token; what the user picked is kept in
// sessionStorage, so an expired session loses nothing.

const body = document.body;
const PAGE = Number(body.dataset.pageSize) || 200;
const POLL_MS = Number(body.dataset.pollMs) || 2000;
const JOBS_PAGE = Number(body.dataset.jobsPage) || 25;
const STORE_KEY = 'stager-ui-state';
const FINAL = new Set(['completed', 'archived', 'cancelled']);
let csrf = document.querySelector('meta[name="csrf-token"]').content;

class UiError extends Error {
  constructor(message, status, code) { super(message); this.status = status; this.code = code; }
}

// --- small helpers -----------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') node.textContent = v;
    else if (k === 'className') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function size(n) {
  if (n === null || n === undefined) return '';
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0; let v = Number(n);
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

function when(epoch) {
  if (!epoch || epoch < 0) return '';
  return new Date(epoch * 1000).toLocaleString();
}

function duration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '';
  s = Math.round(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function join(dir, name) { return dir === '/' ? `/${name}` : `${dir}/${name}`; }
function basename(p) { return p.replace(/\/+$/, '').split('/').pop(); }

function say(text, isError = false) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.classList.toggle('error', isError);
}

async function call(method, url, payload) {
  const opts = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (method !== 'GET') {
    opts.headers['X-CSRF-Token'] = csrf;
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(payload || {});
  }
  let r;
  try { r = await fetch(url, opts); } catch (e) {
    throw new UiError('the server cannot be reached: check your connection and try again', 0);
  }
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (r.status === 401 && data && data.code === 'session_expired') {
    sessionExpired();
    throw new UiError(data.errorMessage, 401, 'session_expired');
  }
  if (!r.ok && r.status !== 207) {
    throw new UiError((data && data.errorMessage) || `the server answered ${r.status}`, r.status);
  }
  return { status: r.status, data };
}

// --- kept state (survives an expired session) --------------------------------------------

const state = {
  local: { path: null, offset: 0, page: null, selected: new Map() },
  repo: { path: null, offset: 0, page: null, selected: new Map() },
  jobs: { state: '', offset: 0, timer: null, seen: new Map(), detail: new Map() },
  session: null,
};

function save() {
  const dump = (side) => ({ path: state[side].path, selected: [...state[side].selected.entries()] });
  sessionStorage.setItem(STORE_KEY, JSON.stringify({ local: dump('local'), repo: dump('repo') }));
}

function restore() {
  try {
    const kept = JSON.parse(sessionStorage.getItem(STORE_KEY) || 'null');
    if (!kept) return false;
    for (const side of ['local', 'repo']) {
      if (kept[side]) {
        state[side].path = kept[side].path || state[side].path;
        state[side].selected = new Map(kept[side].selected || []);
      }
    }
    return true;
  } catch (e) { return false; }
}

function sessionExpired() {
  save();
  const d = document.getElementById('expired');
  if (!d.open) d.showModal();
}

// --- panes -------------------------------------------------------------------------------

const SIDE_NAME = { local: 'Project storage', repo: 'Repository' };

function paneBody(side) { return document.querySelector(`#${side} .pane-body`); }

async function load(side, path, offset = 0, fresh = false) {
  const url = side === 'local' ? '/ui/local' : '/ui/repo';
  const q = new URLSearchParams({ path, offset: String(offset), limit: String(PAGE) });
  if (fresh) q.set('fresh', '1');
  const pane = paneBody(side);
  pane.setAttribute('aria-busy', 'true');
  try {
    const { data } = await call('GET', `${url}?${q}`);
    state[side].path = data.path;
    state[side].offset = data.offset;
    state[side].page = data;
    save();
    render(side);
  } catch (e) {
    if (e.code === 'session_expired') return;
    if (side === 'repo' && e.status === 401) { showRepoLogin(e.message); return; }
    renderError(side, path, e.message);
  } finally {
    pane.removeAttribute('aria-busy');
  }
}

function toolbar(side, path) {
  const input = el('input', { id: `${side}-path`, value: path, size: 40, spellcheck: 'false' });
  const form = el('form', { className: 'row pathform' },
    el('label', { for: `${side}-path`, text: 'Folder path' }), input,
    el('button', { type: 'submit', text: 'Open' }));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(side, input.value.trim() || '/'); });
  const up = el('button', { type: 'button', text: 'Up one level', 'data-action': 'up' });
  up.addEventListener('click', () => goUp(side));
  const refresh = el('button', { type: 'button', text: 'Refresh' });
  refresh.addEventListener('click', () => load(side, state[side].path, state[side].offset, true));
  const all = el('button', { type: 'button', text: 'Select all' });
  all.addEventListener('click', () => selectPage(side, true));
  const none = el('button', { type: 'button', text: 'Select none' });
  none.addEventListener('click', () => { state[side].selected.clear(); save(); render(side); });
  return [form, el('div', { className: 'row' }, up, refresh, all, none)];
}

function crumbs(side, path) {
  const list = el('ol');
  const parts = path.split('/').filter(Boolean);
  const root = el('button', { type: 'button', className: 'link', text: '/' });
  root.addEventListener('click', () => load(side, '/'));
  list.append(el('li', {}, root));
  let acc = '';
  parts.forEach((p, i) => {
    acc += `/${p}`;
    const target = acc;
    if (i === parts.length - 1) {
      list.append(el('li', {}, el('span', { 'aria-current': 'location', text: p })));
    } else {
      const b = el('button', { type: 'button', className: 'link', text: p });
      b.addEventListener('click', () => load(side, target));
      list.append(el('li', {}, b));
    }
  });
  return el('nav', { className: 'crumbs', 'aria-label': `${SIDE_NAME[side]} location` }, list);
}

function goUp(side) {
  const p = state[side].path || '/';
  if (p === '/') return;
  load(side, p.replace(/\/[^/]*\/?$/, '') || '/');
}

function selectable(entry) { return entry.type === 'dir' || entry.type === 'regular'; }

function selectPage(side, on) {
  const page = state[side].page;
  if (!page) return;
  for (const e of page.entries) {
    if (!selectable(e)) continue;
    const p = join(page.path, e.name);
    if (on) state[side].selected.set(p, { type: e.type, size: e.size }); else state[side].selected.delete(p);
  }
  save();
  render(side);
}

function renderError(side, path, message) {
  const pane = paneBody(side);
  pane.replaceChildren(...toolbar(side, path), el('p', { className: 'error', role: 'alert', text: message }));
}

function render(side) {
  const page = state[side].page;
  const pane = paneBody(side);
  const rows = page.entries.map((e) => row(side, page.path, e));
  const table = el('table', { className: 'files', id: `${side}-table` },
    el('caption', { className: 'sr-only', text: `${SIDE_NAME[side]}: ${page.path}` }),
    el('thead', {}, el('tr', {},
      el('th', { scope: 'col' }, el('span', { className: 'sr-only', text: 'Selected' })),
      el('th', { scope: 'col', text: 'Name' }), el('th', { scope: 'col', text: 'Size' }),
      el('th', { scope: 'col', text: 'Modified' }))),
    el('tbody', {}, ...rows));
  table.addEventListener('keydown', (ev) => keys(side, ev));
  const first = page.total ? page.offset + 1 : 0;
  const last = page.offset + page.entries.length;
  const prev = el('button', { type: 'button', text: 'Previous page', disabled: page.offset === 0 });
  prev.addEventListener('click', () => load(side, page.path, Math.max(0, page.offset - PAGE)));
  const next = el('button', { type: 'button', text: 'Next page', disabled: last >= page.total });
  next.addEventListener('click', () => load(side, page.path, page.offset + PAGE));
  const count = state[side].selected.size;
  pane.replaceChildren(
    ...toolbar(side, page.path),
    crumbs(side, page.path),
    el('p', { className: 'hint', id: `${side}-count`, 'aria-live': 'polite',
      text: `${count} selected${count ? '' : ' (without a selection, the current folder is the destination)'}` }),
    el('div', { className: 'table-wrap' }, table),
    el('div', { className: 'pager' }, prev,
      el('span', { text: page.total ? `${first}–${last} of ${page.total}` : 'This folder is empty' }), next),
  );
}

function row(side, dir, e) {
  const path = join(dir, e.name);
  const checked = state[side].selected.has(path);
  const box = el('input', {
    type: 'checkbox', checked, disabled: !selectable(e),
    'aria-label': `Select ${e.name}`, 'data-path': path,
  });
  box.addEventListener('change', () => {
    if (box.checked) state[side].selected.set(path, { type: e.type, size: e.size });
    else state[side].selected.delete(path);
    save();
    const c = document.getElementById(`${side}-count`);
    if (c) c.textContent = `${state[side].selected.size} selected`;
  });
  let name;
  if (e.type === 'dir') {
    name = el('button', { type: 'button', className: 'link', 'data-open': path }, e.name + '/');
    name.addEventListener('click', () => load(side, path));
  } else {
    name = el('span', { text: e.name });
  }
  const badges = [];
  if (e.type === 'symlink') badges.push(el('span', { className: 'badge', text: 'symlink, not copied' }));
  if (e.type === 'unknown') badges.push(el('span', { className: 'badge warn', text: 'unreadable or special' }));
  return el('tr', { className: checked ? 'selected' : '' },
    el('td', {}, box), el('td', { className: 'name' }, name, ...badges),
    el('td', { className: 'num', text: e.type === 'dir' ? '' : size(e.size) }),
    el('td', { text: when(e.mtime) }));
}

function keys(side, ev) {
  const rowsEls = [...document.querySelectorAll(`#${side}-table tbody tr`)];
  const current = rowsEls.findIndex((r) => r.contains(document.activeElement));
  // Focus row i (or the next focusable one in direction step): its checkbox, else its link.
  const focusRow = (i, step = 1) => {
    for (; i >= 0 && i < rowsEls.length; i += step) {
      const r = rowsEls[i];
      const target = r.querySelector('input:not([disabled])') || r.querySelector('button');
      if (target) { target.focus(); return; }
    }
  };
  if (ev.key === 'ArrowDown') { ev.preventDefault(); focusRow(current + 1, 1); } else if (ev.key === 'ArrowUp') {
    ev.preventDefault(); focusRow(current - 1, -1);
  } else if (ev.key === 'Home') { ev.preventDefault(); focusRow(0, 1); } else if (ev.key === 'End') {
    ev.preventDefault(); focusRow(rowsEls.length - 1, -1);
  } else if (ev.key === 'Enter' && current >= 0) {
    const open = rowsEls[current].querySelector('[data-open]');
    if (open) { ev.preventDefault(); load(side, open.dataset.open); }
  } else if (ev.key === 'Backspace') { ev.preventDefault(); goUp(side); } else if ((ev.ctrlKey || ev.metaKey) && ev.key === 'a') {
    ev.preventDefault(); selectPage(side, true); focusRow(current);
  }
}

// --- repository login --------------------------------------------------------------------

function showRepoLogin(message) {
  document.getElementById('repo-login').hidden = false;
  document.getElementById('repo-tools').hidden = true;
  paneBody('repo').replaceChildren();
  document.getElementById('repo-login-error').textContent = message && !/first/.test(message) ? message : '';
}

function showRepoTools(user) {
  document.getElementById('repo-login').hidden = true;
  document.getElementById('repo-tools').hidden = false;
  document.getElementById('repo-who').textContent = user;
}

async function repoLogin(ev) {
  ev.preventDefault();
  const user = document.getElementById('repo-user');
  const pass = document.getElementById('repo-pass');
  const err = document.getElementById('repo-login-error');
  err.textContent = '';
  try {
    const { data } = await call('POST', '/ui/repo/login', { username: user.value, password: pass.value });
    pass.value = '';
    showRepoTools(data.repoUser);
    state.session.repoUser = data.repoUser;
    say(`Logged in to the repository as ${data.repoUser}.`);
    const keep = state.repo.path && state.repo.path !== '/' ? state.repo.path : data.repoRoot;
    await load('repo', keep);
  } catch (e) {
    pass.value = '';
    if (e.code !== 'session_expired') err.textContent = e.message;
  }
}

async function repoLogout() {
  await call('POST', '/ui/repo/logout', {});
  state.repo.selected.clear(); save();
  showRepoLogin('');
  say('Logged out of the repository.');
}

async function mkdir(ev) {
  ev.preventDefault();
  const input = document.getElementById('mkdir-name');
  if (!input.value.trim()) { say('Type a name for the new folder.', true); return; }
  try {
    const { data } = await call('POST', '/ui/repo/mkdir', { parent: state.repo.path, name: input.value.trim() });
    input.value = '';
    say(`Folder ${data.path} created.`);
    await load('repo', state.repo.path, state.repo.offset, true);
  } catch (e) { if (e.code !== 'session_expired') say(e.message, true); }
}

async function dacLookup(ev) {
  ev.preventDefault();
  const n = document.getElementById('dac-number').value.trim();
  if (!n) { say('Type a project number such as 3010000.01.', true); return; }
  try {
    const { data } = await call('GET', `/ui/dac/${encodeURIComponent(n)}`);
    say(`Project ${n}: ${data.path}`);
    await load('repo', data.path);
  } catch (e) { if (e.code !== 'session_expired') say(e.message, true); }
}

// --- building jobs -----------------------------------------------------------------------

let pending = null;

function destinationOf(side) {
  const picked = [...state[side].selected.entries()];
  if (picked.length === 0) return { path: state[side].path };
  if (picked.length === 1 && picked[0][1].type === 'dir') return { path: picked[0][0] };
  return { error: `pick one destination folder in ${SIDE_NAME[side]} (or none: then its open folder is used)` };
}

function prepare(direction) {
  const from = direction === 'upload' ? 'local' : 'repo';
  const to = direction === 'upload' ? 'repo' : 'local';
  if (!state.session.repoUser) { say('Log in to the repository first.', true); return; }
  const sources = [...state[from].selected.entries()];
  if (sources.length === 0) { say(`Pick at least one file or folder in ${SIDE_NAME[from]}.`, true); return; }
  const dest = destinationOf(to);
  if (dest.error) { say(dest.error, true); return; }
  if (!state[to].page) { say(`Open a folder in ${SIDE_NAME[to]} first.`, true); return; }
  const here = state[to].page.path === dest.path ? new Set(state[to].page.entries.map((e) => e.name)) : null;
  pending = { direction, sources: sources.map(([p]) => p), destination: dest.path };
  const tbody = document.querySelector('#confirm tbody');
  let bytes = 0; let folders = 0;
  tbody.replaceChildren(...sources.map(([p, info]) => {
    const name = basename(p);
    const note = here && here.has(name)
      ? 'exists at the destination: identical files are skipped, different ones fail (nothing is overwritten)'
      : '';
    if (info.type === 'dir') folders += 1; else bytes += Number(info.size) || 0;
    return el('tr', {}, el('td', { className: 'wrap', 'data-label': 'Source', text: p }),
      el('td', { className: 'wrap', 'data-label': 'Destination', text: join(dest.path, name) }),
      el('td', { className: 'num', 'data-label': 'Size', text: info.type === 'dir' ? 'folder' : size(info.size) }),
      el('td', { className: note ? 'warn' : '', 'data-label': 'Note', text: note }));
  }));
  const files = sources.length - folders;
  document.getElementById('confirm-summary').textContent =
    `${sources.length} transfer job${sources.length === 1 ? '' : 's'} ` +
    `${direction === 'upload' ? 'to the repository' : 'to project storage'}: ` +
    `${files} file${files === 1 ? '' : 's'} (${size(bytes)})` +
    (folders ? ` and ${folders} folder${folders === 1 ? '' : 's'} (sized when the job runs)` : '') + '.';
  resetPreview();
  document.getElementById('confirm').showModal();
  document.getElementById('confirm-submit').focus();
}

// --- dry run: the worker plans each job as the user and moves nothing --------------------

let previewRun = null; // { ids: [...], stopped: bool } of the dry runs being followed

function resetPreview() {
  stopPreview();
  document.getElementById('preview').hidden = true;
  document.getElementById('preview-status').textContent = '';
  document.getElementById('preview-results').replaceChildren();
  document.getElementById('confirm-preview').disabled = false;
}

// Stop following the dry runs and take them out of the history (cancelled if unfinished).
function stopPreview() {
  if (!previewRun) return;
  previewRun.stopped = true;
  for (const id of previewRun.ids) {
    call('POST', `/ui/jobs/${encodeURIComponent(id)}/delete`, {}).catch(() => {});
  }
  previewRun = null;
}

const ACTION_TEXT = { transfer: 'transfer', skip: 'skip (unchanged)', conflict: 'refused', fail: 'fails' };

function planSummary(p) {
  const parts = [
    `${p.transfer_files} file${p.transfer_files === 1 ? '' : 's'} (${size(p.transfer_bytes)}) to transfer`,
    `${p.skip_files} unchanged (${size(p.skip_bytes)}) to skip`,
  ];
  if (p.conflict_files) {
    parts.push(`${p.conflict_files} refused: they exist at the destination and differ, or the name is taken (nothing is overwritten)`);
  } else {
    parts.push('nothing to overwrite, no name clashes');
  }
  if (p.fail_files) parts.push(`${p.fail_files} would fail`);
  return parts.join('; ') + '.';
}

function planResult(source, j) {
  const box = el('div', { className: 'plan', 'data-preview': j.id });
  box.append(el('h4', { text: source }));
  if (j.state !== 'completed' || !j.plan) {
    box.append(el('p', { className: 'error', text: j.error || `the dry run ended ${STATE_TEXT[j.state] || j.state}` }));
    return box;
  }
  const p = j.plan;
  box.append(el('p', { className: p.conflict_files || p.fail_files ? 'warn' : '', text: planSummary(p) }));
  if (p.entries.length) {
    const rows = p.entries.map((e) => el('tr', { 'data-action': e.action },
      el('td', { className: 'path', text: e.src }), el('td', { className: 'path', text: e.dst }),
      el('td', { className: 'num', text: size(e.size) }),
      el('td', { className: e.action === 'conflict' || e.action === 'fail' ? 'warn' : '',
        text: ACTION_TEXT[e.action] + (e.reason && e.reason !== 'unchanged' ? `: ${e.reason}` : '') })));
    box.append(el('div', { className: 'table-wrap' }, el('table', { className: 'plan-table' },
      el('caption', { className: 'sr-only', text: `Dry run of ${source}` }),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Source' }),
        el('th', { scope: 'col', text: 'Destination' }), el('th', { scope: 'col', text: 'Size' }),
        el('th', { scope: 'col', text: 'What happens' }))),
      el('tbody', {}, ...rows))));
    if (p.entries_total > p.entries.length) {
      box.append(el('p', { className: 'hint', text: `The first ${p.entries.length} of ${p.entries_total} files are listed.` }));
    }
  }
  return box;
}

async function previewPending() {
  if (!pending) return;
  resetPreview();
  const section = document.getElementById('preview');
  const status = document.getElementById('preview-status');
  const results = document.getElementById('preview-results');
  const button = document.getElementById('confirm-preview');
  section.hidden = false;
  button.disabled = true;
  status.textContent = 'Planning: the transfer service lists both sides as you; nothing is copied…';
  let data;
  try { ({ data } = await call('POST', '/ui/preview', pending)); } catch (e) {
    button.disabled = false;
    status.textContent = e.code === 'session_expired' ? '' : e.message;
    return;
  }
  const run = { ids: data.accepted.map((j) => j.id), stopped: false };
  previewRun = run;
  const sources = new Map(data.accepted.map((j) => [j.id, j.src]));
  for (const r of data.rejected) results.append(el('p', { className: 'error', text: `${r.source}: ${r.message}` }));
  const left = new Set(run.ids);
  while (left.size && !run.stopped) {
    for (const id of [...left]) {
      let j;
      try { ({ data: j } = await call('GET', `/ui/jobs/${encodeURIComponent(id)}`)); } catch (e) {
        if (e.code === 'session_expired') return;
        left.delete(id);
        results.append(el('p', { className: 'error', text: e.message }));
        continue;
      }
      if (run.stopped) return;
      if (j.final) { left.delete(id); results.append(planResult(sources.get(id) || j.src, j)); }
    }
    if (left.size) {
      status.textContent = `Planning: ${run.ids.length - left.size} of ${run.ids.length} done…`;
      await new Promise((resolve) => { setTimeout(resolve, Math.min(POLL_MS, 1000)); });
    }
  }
  if (run.stopped) return;
  status.textContent = `Dry run done for ${run.ids.length} job${run.ids.length === 1 ? '' : 's'}: nothing was copied. Submit to run the transfers.`;
  stopPreview(); // the plans are on screen; the dry-run jobs leave the history
  button.disabled = false;
}

async function submitPending() {
  const d = document.getElementById('confirm');
  if (!pending) { d.close(); return; }
  const job = pending;
  try {
    const { status, data } = await call('POST', '/ui/jobs', job);
    resetPreview();
    d.close();
    pending = null;
    const from = job.direction === 'upload' ? 'local' : 'repo';
    state[from].selected.clear(); save(); render(from);
    let text = `${data.accepted.length} transfer job${data.accepted.length === 1 ? '' : 's'} submitted.`;
    if (status === 207) text += ' Refused: ' + data.rejected.map((r) => `${r.source}: ${r.message}`).join('; ');
    say(text, status === 207);
    state.jobs.offset = 0;
    await loadJobs();
  } catch (e) {
    resetPreview();
    d.close();
    if (e.code !== 'session_expired') say(e.message, true);
  }
}

// --- history -----------------------------------------------------------------------------

function progressText(j) {
  const parts = [`${j.percent}%`];
  if (j.bytes.total) parts.push(`${size(j.bytes.done)} of ${size(j.bytes.total)}`);
  if (j.files.total) parts.push(`${j.files.done} of ${j.files.total} files`);
  if (j.files.failed) parts.push(`${j.files.failed} failed`);
  if (j.state === 'active' && j.rate) parts.push(`${size(j.rate)}/s`);
  if (j.state === 'active' && j.eta !== null && j.eta !== undefined) parts.push(`about ${duration(j.eta)} left`);
  return parts.join(' · ');
}

const STATE_TEXT = {
  pending: 'queued', active: 'running', retry: 'waiting to retry', completed: 'completed',
  archived: 'failed', cancelled: 'cancelled',
};

function jobRow(j) {
  const bar = el('div', {
    className: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100',
    'aria-valuenow': String(j.percent), 'aria-label': `Progress of ${j.title || j.id}`,
  }, el('span', { className: `fill ${j.state}`, style: null }));
  bar.firstChild.dataset.percent = String(j.percent);
  const actions = el('div', { className: 'row tight' });
  const details = el('tr', { className: 'details', hidden: true, id: `d-${j.id}` },
    el('td', { colspan: '6' }, detailList(j)));
  const toggle = el('button', { type: 'button', 'aria-expanded': 'false', 'aria-controls': `d-${j.id}`, text: 'Details' });
  toggle.addEventListener('click', () => {
    details.hidden = !details.hidden;
    toggle.setAttribute('aria-expanded', String(!details.hidden));
    if (!details.hidden) loadDetail(j.id);
  });
  actions.append(toggle);
  if (!j.final) actions.append(action('Cancel', j, 'cancel', `Cancel ${j.title || j.id}? The transfer stops.`));
  if (j.restartable || j.resubmittable) actions.append(action(j.resubmittable ? 'Submit again' : 'Restart', j, 'restart'));
  actions.append(action('Delete', j, 'delete', j.final ? null : `Delete ${j.title || j.id}? It is cancelled first.`));
  const copy = el('button', { type: 'button', text: 'Copy as isync command' });
  copy.addEventListener('click', () => copyCommand(j));
  actions.append(copy);
  const tr = el('tr', { 'data-job': j.id, 'data-state': j.state },
    el('td', { className: 'wrap' }, el('div', { text: j.title || '(untitled)' }), el('small', { className: 'mono', text: j.id })),
    el('td', { className: 'path', text: j.src, title: j.src }),
    el('td', { className: 'path', text: j.dst, title: j.dst }),
    el('td', {}, el('span', { className: `state ${j.state}`, text: STATE_TEXT[j.state] || j.state })),
    el('td', { className: 'progress' }, bar, el('div', { className: 'hint', text: progressText(j) }),
      j.error ? el('div', { className: 'error', text: j.error }) : null),
    el('td', {}, actions));
  return [tr, details];
}

const CHECKSUM_TEXT = {
  verified: (n) => `verified: the sha256 of all ${n} file${n === 1 ? '' : 's'} agrees on both sides`,
  not_verified: (n) => `not verified${n ? ` (${n} file${n === 1 ? '' : 's'} agree; the others failed or were not checked)` : ''}`,
  mismatch: () => 'MISMATCH: a file differed after the copy; it is listed below as failed',
};

function checksumText(j) {
  if (j.dryRun) return 'not applicable (dry run: nothing was copied)';
  const f = CHECKSUM_TEXT[j.checksum];
  return f ? f(j.checksumFiles || 0) : (j.final ? 'not reported' : 'known when the transfer ends');
}

async function loadDetail(id) {
  try {
    const { data } = await call('GET', `/ui/jobs/${encodeURIComponent(id)}`);
    state.jobs.detail.set(id, data);
    const details = document.getElementById(`d-${id}`);
    if (details) details.firstChild.replaceChildren(detailList(data));
  } catch (e) { if (e.code !== 'session_expired') say(e.message, true); }
}

function detailList(j) {
  const d = state.jobs.detail.get(j.id);
  const items = [
    ['Created', when(j.created)], ['Last change', when(j.updated)], ['Attempts', String(j.attempts)],
    ['Files', `${j.files.done} done, ${j.files.failed} failed, ${j.files.total} in all`],
    ['Bytes', `${size(j.bytes.done)} of ${size(j.bytes.total)}`],
    ['Checksums', checksumText(j)],
    ['Error', j.error || 'none'],
  ];
  const dl = el('dl', { className: 'details-list' });
  for (const [k, v] of items) {
    dl.append(el('dt', { text: k }), el('dd', { text: v, 'data-item': k.toLowerCase() }));
  }
  const total = j.fileErrorsTotal || 0;
  const errors = (d && d.fileErrors) || [];
  if (total) {
    dl.append(el('dt', { text: 'Failed files' }));
    const dd = el('dd', { 'data-item': 'failed files' });
    if (errors.length) {
      dd.append(el('ul', { className: 'file-errors' }, ...errors.map((e) => el('li', { 'data-kind': e.kind || 'other' },
        el('span', { className: 'path', text: e.path }), el('span', { text: ` — ${e.error}` }),
        e.hint ? el('div', { className: 'hint file-hint', text: e.hint }) : null))));
      if (total > errors.length) dd.append(el('p', { className: 'hint', text: `and ${total - errors.length} more (the first ${errors.length} are listed)` }));
    } else {
      dd.textContent = `${total} (loading the list…)`;
    }
    dl.append(dd);
  }
  return dl;
}

function action(label, j, verb, confirmText) {
  const b = el('button', { type: 'button', text: label, 'data-verb': verb });
  b.addEventListener('click', async () => {
    if (confirmText && !window.confirm(confirmText)) return;
    try {
      await call('POST', `/ui/jobs/${encodeURIComponent(j.id)}/${verb}`, {});
      say(`${label}: ${j.title || j.id} done.`);
      await loadJobs();
    } catch (e) { if (e.code !== 'session_expired') say(e.message, true); }
  });
  return b;
}

async function copyCommand(j) {
  try {
    const { data } = await call('GET', `/ui/jobs/${encodeURIComponent(j.id)}/isync`);
    try {
      await navigator.clipboard.writeText(data.command);
      say(`Copied: ${data.command}`);
    } catch (e) {
      say(`isync command: ${data.command}`);
    }
  } catch (e) { if (e.code !== 'session_expired') say(e.message, true); }
}

// A job that finished since the last poll changed a folder: list both panes again.
function refreshOnFinish(jobs) {
  const seen = state.jobs.seen;
  const finished = jobs.filter((j) => j.final && seen.has(j.id) && seen.get(j.id) === false);
  for (const j of jobs) seen.set(j.id, j.final);
  if (!finished.length) return;
  for (const side of ['local', 'repo']) {
    const page = state[side].page;
    if (page && !document.getElementById('confirm').open) load(side, page.path, page.offset, true);
  }
}

// Rows are updated in place while their state stays the same, so focus and open details
// survive the polling; a row whose state changed is rebuilt.
function renderJobs(jobs) {
  const tbody = document.querySelector('#jobs tbody');
  const current = [...tbody.querySelectorAll('tr[data-job]')].map((r) => r.dataset.job);
  const same = jobs.length > 0 && current.length === jobs.length && jobs.every((j, i) => current[i] === j.id);
  if (!same) {
    const open = new Set([...tbody.querySelectorAll('tr.details:not([hidden])')].map((r) => r.id));
    const rows = jobs.flatMap(jobRow);
    for (const r of rows) {
      if (r.classList.contains('details') && open.has(r.id)) {
        r.hidden = false;
        const b = r.previousSibling && r.previousSibling.querySelector('[aria-expanded]');
        if (b) b.setAttribute('aria-expanded', 'true');
      }
    }
    if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: '6', text: 'No transfers here yet.' })));
    tbody.replaceChildren(...rows);
  } else {
    for (const j of jobs) {
      const tr = tbody.querySelector(`tr[data-job="${CSS.escape(j.id)}"]`);
      const details = document.getElementById(`d-${j.id}`);
      const [nt, nd] = jobRow(j);
      if (tr.dataset.state !== j.state) {
        const focused = tr.contains(document.activeElement);
        tr.replaceWith(nt);
        nd.hidden = details.hidden;
        nt.querySelector('[aria-expanded]').setAttribute('aria-expanded', String(!details.hidden));
        details.replaceWith(nd);
        if (focused) nt.querySelector('button').focus();
        if (!nd.hidden) loadDetail(j.id);
      } else {
        tr.querySelector('td.progress').replaceWith(nt.querySelector('td.progress'));
        details.firstChild.replaceWith(nd.firstChild);
      }
    }
  }
  for (const fill of tbody.querySelectorAll('.fill')) fill.style.width = `${fill.dataset.percent}%`;
}

async function loadJobs() {
  clearTimeout(state.jobs.timer);
  const q = new URLSearchParams({ offset: String(state.jobs.offset), limit: String(JOBS_PAGE) });
  if (state.jobs.state) q.set('state', state.jobs.state);
  let data;
  try { ({ data } = await call('GET', `/ui/jobs?${q}`)); } catch (e) {
    if (e.code !== 'session_expired') say(e.message, true);
    return;
  }
  refreshOnFinish(data.jobs);
  renderJobs(data.jobs);
  const pager = document.getElementById('jobs-pager');
  const prev = el('button', { type: 'button', text: 'Newer', disabled: data.offset === 0 });
  prev.addEventListener('click', () => { state.jobs.offset = Math.max(0, data.offset - JOBS_PAGE); loadJobs(); });
  const next = el('button', { type: 'button', text: 'Older', disabled: data.offset + data.jobs.length >= data.total });
  next.addEventListener('click', () => { state.jobs.offset = data.offset + JOBS_PAGE; loadJobs(); });
  const first = data.total ? data.offset + 1 : 0;
  pager.replaceChildren(prev, el('span', { text: `${first}–${data.offset + data.jobs.length} of ${data.total}` }), next);
  const live = document.getElementById('history-live');
  if (data.active > 0) {
    live.textContent = `${data.active} not finished: updating every ${Math.round(POLL_MS / 1000)} s`;
    state.jobs.timer = setTimeout(loadJobs, POLL_MS);
  } else {
    live.textContent = '';
  }
}

// --- start -------------------------------------------------------------------------------

async function start() {
  document.getElementById('repo-login').addEventListener('submit', repoLogin);
  document.getElementById('repo-logout').addEventListener('click', repoLogout);
  document.getElementById('mkdir').addEventListener('submit', mkdir);
  document.getElementById('dac').addEventListener('submit', dacLookup);
  document.getElementById('upload').addEventListener('click', () => prepare('upload'));
  document.getElementById('download').addEventListener('click', () => prepare('download'));
  document.getElementById('confirm-submit').addEventListener('click', submitPending);
  document.getElementById('confirm-preview').addEventListener('click', previewPending);
  document.getElementById('confirm').addEventListener('close', stopPreview);
  document.getElementById('confirm-cancel').addEventListener('click', () => {
    pending = null;
    document.getElementById('confirm').close();
  });
  document.getElementById('state-filter').addEventListener('change', (ev) => {
    state.jobs.state = ev.target.value; state.jobs.offset = 0; loadJobs();
  });
  document.getElementById('history-refresh').addEventListener('click', loadJobs);
  const kept = restore();
  try {
    ({ data: state.session } = await call('GET', '/ui/session'));
  } catch (e) { return; }
  csrf = state.session.csrf;
  if (kept && (state.local.selected.size || state.repo.selected.size)) {
    say('Your earlier selection was kept.');
  }
  await load('local', state.local.path || state.session.localRoot || '/');
  if (state.session.browsing) {
    showRepoTools(state.session.repoUser);
    await load('repo', state.repo.path || state.session.repoRoot);
  } else {
    showRepoLogin('');
    if (state.session.repoUser) state.session.repoUser = null;
  }
  await loadJobs();
  setInterval(async () => {
    try { await call('GET', '/ui/session'); } catch (e) { /* the dialog is shown on expiry */ }
  }, 60000);
}

start();
