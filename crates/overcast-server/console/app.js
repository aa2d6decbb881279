/* overcast console: the browser side of overcast's web console.
 *
 * Plain ES2020 with no framework, modules or build step; the server embeds this file with
 * index.html and app.css and serves them under /console/. Signing in trades an overcast
 * token for an HttpOnly session cookie (POST /console/session); the CSRF token that comes
 * back lives only in a variable here and goes out as X-CSRF-Token on every change.
 * Every piece of data reaches the DOM through h() and textContent, never innerHTML.
 * Routing is by hash: #/fleet/ENV, #/instances/ENV/ID, #/operations/ID, ...
 */
'use strict';

(() => {
  // ---- Constants: states, statuses, verbs and the sections that belong to an environment.
  const INSTANCE_STATES = ['pending', 'running', 'stopping', 'stopped', 'rebooting', 'terminating', 'terminated', 'error'];
  const OP_STATUSES = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];
  const FINAL = new Set(['succeeded', 'failed', 'cancelled']);
  const SESSION_ENDED = 'Your session has ended; sign in again.';
  const VERBS = { start: 'Start', stop: 'Stop', reboot: 'Reboot', terminate: 'Terminate', promote: 'Promote', tag: 'Tag', untag: 'Untag' };
  const ENV_SECTIONS = ['fleet', 'create', 'images', 'security-groups', 'key-pairs', 'objects', 'secrets', 'parameters', 'services'];
  const NAV = [
    ['fleet', 'Fleet', true], ['create', 'Create VM', true, true], ['operations', 'Operations', false], ['audit', 'Audit', false],
    ['images', 'Images', true], ['security-groups', 'Security groups', true], ['key-pairs', 'Key pairs', true],
    ['objects', 'Objects', true], ['secrets', 'Secrets', true], ['parameters', 'Parameters', true], ['services', 'Containers', true],
  ];

  // ---- Session state: who is signed in, the CSRF token, the current view's generation and clean-ups.
  const S = {
    csrf: null,
    whoami: null,
    envs: [],
    env: null,
    gen: 0,
    cleanups: [],
    fleetMarked: false,
    plan: null,
    keepStatus: false,
    focusAfter: null,
  };

  // ---- DOM helpers: h() builds elements (text is always textContent), plus small shorthands.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    append(el, children);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else if (k === 'class') el.className = v;
        else if (k === 'for') el.htmlFor = v;
        else if (k === 'value' || k === 'checked' || k === 'selected' || k === 'disabled' || k === 'multiple') el[k] = v;
        else if (v === true) el.setAttribute(k, '');
        else el.setAttribute(k, String(v));
      }
    }
    return el;
  }
  function append(el, ...children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const $ = (id) => document.getElementById(id);
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
  function replace(el, ...children) { clear(el); return append(el, children); }
  const canChange = () => !!S.whoami && S.whoami.role !== 'viewer';
  // A control that changes something: marked data-change, and not built at all for viewers.
  function chg(el) {
    if (!canChange()) return null;
    el.setAttribute('data-change', '');
    return el;
  }
  let uid = 0;
  const nextId = (p) => `${p}-${++uid}`;
  function field(label, input, hint) {
    if (!input.id) input.id = nextId('f');
    return h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hint ? h('span', { class: 'hint' }, hint) : null);
  }
  function checkField(label, input) {
    if (!input.id) input.id = nextId('f');
    return h('div', { class: 'field inline' }, input, h('label', { for: input.id }, label));
  }
  function options(pairs, selected) {
    return pairs.map(([v, l]) => h('option', { value: v, selected: v === selected }, l));
  }
  const loading = (text) => h('p', { class: 'loading' }, text || 'Loading…');
  const empty = (text) => h('p', { class: 'empty' }, text || 'Nothing here yet.');
  function table(attrs, headers, rows) {
    return h('div', { class: 'table-wrap' },
      h('table', attrs || {},
        h('thead', {}, h('tr', {}, headers.map((x) => (x instanceof Node ? x : h('th', { scope: 'col' }, x))))),
        h('tbody', {}, rows)));
  }
  function kvList(pairs) {
    return h('dl', { class: 'kv' }, pairs.filter((p) => p).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v === null || v === undefined || v === '' ? '—' : v)]));
  }
  function card(...children) { return h('section', { class: 'card' }, children); }
  function titleRow(title, ...right) { return h('div', { class: 'title-row' }, h('h1', { tabindex: '-1' }, title), h('div', { class: 'row' }, right)); }

  // ---- Formatting: times, sizes, badges, tags, key=value.
  function fmtTime(s) {
    if (!s) return '—';
    const d = new Date(s);
    return Number.isNaN(d.getTime()) ? String(s) : d.toLocaleString();
  }
  function fmtClock(s) {
    const d = s ? new Date(s) : new Date();
    return Number.isNaN(d.getTime()) ? String(s) : d.toLocaleTimeString();
  }
  function fmtBytes(n) {
    if (n === null || n === undefined) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = Number(n);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
  }
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  function tone(value, kind) {
    const s = String(value || '').toLowerCase();
    if (kind === 'op') return { succeeded: 'ok', failed: 'bad', cancelled: 'idle' }[s] || 'busy';
    if (['running', 'done', 'available', 'active', 'succeeded', 'completed', 'enabled'].includes(s)) return 'ok';
    if (['terminated', 'terminating', 'shutting-down', 'error', 'failed', 'denied', 'deregistered', 'deleting'].includes(s)) return 'bad';
    if (['pending', 'stopping', 'rebooting', 'provisioning', 'activating', 'deactivating', 'deprovisioning', 'draining', 'in_progress', 'creating', 'accepted'].includes(s)) return 'busy';
    return 'idle';
  }
  function badge(value, kind) { return h('span', { class: `badge ${tone(value, kind)}` }, value || '—'); }
  function tagList(tags) {
    const entries = Object.entries(tags || {}).sort(([a], [b]) => a.localeCompare(b));
    if (!entries.length) return h('span', { class: 'muted' }, '—');
    return h('span', { class: 'tags' }, entries.map(([k, v]) => h('span', { class: 'tag' }, `${k}=${v}`)));
  }
  function parseKV(text) {
    const t = String(text || '').trim();
    const i = t.indexOf('=');
    if (i <= 0) return null;
    return { key: t.slice(0, i).trim(), value: t.slice(i + 1).trim() };
  }
  function segClass(state) {
    if (state === 'running') return 's-running';
    if (state === 'stopped') return 's-stopped';
    if (['pending', 'stopping', 'rebooting'].includes(state)) return 's-busy';
    if (['terminating', 'terminated', 'shutting-down', 'error'].includes(state)) return 's-gone';
    return 's-stopped';
  }

  // ---- URLs: path segments are encoded; object keys and parameter names keep their slashes.
  const RAW = Symbol('raw');
  const raw = (s) => ({ [RAW]: s });
  const encKey = (key) => String(key).split('/').map(encodeURIComponent).join('/');
  function path(strings, ...vals) {
    let out = strings[0];
    vals.forEach((v, i) => {
      out += (v && typeof v === 'object' && RAW in v) ? v[RAW] : encodeURIComponent(String(v));
      out += strings[i + 1];
    });
    return out;
  }
  function qs(obj) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(obj || {})) {
      if (v === undefined || v === null || v === '' || v === false) continue;
      p.set(k, String(v));
    }
    const s = p.toString();
    return s ? `?${s}` : '';
  }
  const envPath = (env) => path`/v1/environments/${env}`;
  const route = (...segs) => `#/${segs.map((s) => encodeURIComponent(s)).join('/')}`;
  const bucketRoute = (env, bucket, prefix) => `${route('objects', env, bucket)}/${encKey(prefix || '')}`;
  function navigate(hash, focusId) {
    S.focusAfter = focusId || null;
    if (location.hash === hash) render();
    else location.hash = hash;
  }

  // ---- Status region: one message at a time in #status (aria-live="polite").
  function setStatus(content, kind, opts) {
    const box = $('status');
    const msg = h('div', { class: `msg ${kind || 'info'}` },
      h('span', {}, content),
      h('button', { type: 'button', class: 'btn-small dismiss', onclick: () => clear(box) }, 'Dismiss'));
    replace(box, msg);
    S.keepStatus = !!(opts && opts.keep);
  }
  function errorText(err) {
    if (!err) return 'Something went wrong.';
    const msg = err.message || String(err);
    return err.field ? `${msg} (field: ${err.field})` : msg;
  }
  function showError(err) {
    if (err && err.sessionEnded) return;
    console.error(err);
    const parts = [errorText(err)];
    if (err && err.operationId) parts.push(' — ', h('a', { href: route('operations', err.operationId) }, `operation ${err.operationId}`));
    setStatus(parts, 'error');
  }

  // ---- API client: JSON in and out, CSRF on changes, a 401 ends the session.
  class ApiError extends Error {
    constructor(status, code, message, field, operationId, sessionEnded) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field || null;
      this.operationId = operationId || null;
      this.sessionEnded = !!sessionEnded;
    }
  }
  async function api(method, url, body, opts) {
    const o = opts || {};
    const headers = { Accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (method !== 'GET' && method !== 'HEAD' && S.csrf) headers['X-CSRF-Token'] = S.csrf;
    if (o.async) headers.Prefer = 'respond-async';
    let res;
    try {
      res = await fetch(url, init);
    } catch (e) {
      throw new ApiError(0, 'network', `The server could not be reached (${e.message}).`);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = text; }
    }
    if (res.status === 401 && !o.noSessionEnd) {
      sessionEnded();
      throw new ApiError(401, 'unauthorized', SESSION_ENDED, null, null, true);
    }
    if (!res.ok) {
      const e = (data && typeof data === 'object' && data.error) || {};
      throw new ApiError(res.status, e.code || `http_${res.status}`, e.message || `${res.status} ${res.statusText || 'error'}`, e.field, e.operation_id);
    }
    return data;
  }
  // Every item of a paged list (for small lists such as environments and regions).
  async function apiAll(url, max) {
    const items = [];
    let token = null;
    for (let i = 0; i < (max || 10); i += 1) {
      const sep = url.includes('?') ? '&' : '?';
      const d = await api('GET', token ? `${url}${sep}page_token=${encodeURIComponent(token)}` : url);
      items.push(...((d && d.items) || []));
      token = d && d.next_page_token;
      if (!token) break;
    }
    return items;
  }

  // ---- Session: sign in, sign out, session end, and the viewer guard.
  async function checkSession() {
    try {
      const data = await api('GET', '/console/session', undefined, { noSessionEnd: true });
      await signedIn(data);
    } catch (e) {
      showSignin(e.status === 401 ? '' : errorText(e));
    }
  }
  async function signedIn(data) {
    S.csrf = data.csrf_token;
    S.whoami = data.whoami;
    const w = S.whoami;
    $('whoami').textContent = `${w.token_name} · ${w.org} · ${w.role}`;
    $('whoami').title = `token ${w.token_id}; session until ${fmtTime(data.expires_at)}`;
    $('signin-view').hidden = true;
    $('session-bar').hidden = false;
    try {
      S.envs = await apiAll('/v1/environments');
    } catch (e) {
      S.envs = [];
      showError(e);
    }
    if (!S.whoami) return;
    const sel = $('env-select');
    replace(sel, S.envs.length ? S.envs.map((e) => h('option', { value: e.name }, e.name)) : h('option', { value: '' }, 'none'));
    if (!S.env || !S.envs.some((e) => e.name === S.env)) S.env = S.envs.length ? S.envs[0].name : null;
    if (S.env) sel.value = S.env;
    buildNav();
    render();
  }
  function showSignin(message) {
    runCleanups();
    S.gen += 1;
    S.csrf = null;
    S.whoami = null;
    const dlg = $('plan');
    if (dlg.open) dlg.close();
    $('session-bar').hidden = true;
    clear($('view'));
    $('signin-view').hidden = false;
    $('signin-error').textContent = message || '';
    $('signin-token').focus();
  }
  function sessionEnded() {
    if (!S.whoami) return;
    showSignin(SESSION_ENDED);
    setStatus(SESSION_ENDED, 'error');
  }
  async function onSigninSubmit(ev) {
    ev.preventDefault();
    const input = $('signin-token');
    const button = $('signin-submit');
    const token = input.value.trim();
    $('signin-error').textContent = '';
    if (!token) {
      $('signin-error').textContent = 'Enter a token.';
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      const data = await api('POST', '/console/session', { token }, { noSessionEnd: true });
      input.value = '';
      clear($('status'));
      await signedIn(data);
    } catch (e) {
      $('signin-error').textContent = errorText(e);
      input.select();
    } finally {
      button.disabled = false;
    }
  }
  async function onSignout() {
    try {
      await api('DELETE', '/console/session', undefined, { noSessionEnd: true });
    } catch (e) {
      if (e.status !== 401) showError(e);
    }
    showSignin('');
    setStatus('You have signed out.', 'ok');
  }
  // ---- Header: environment picker and navigation links.
  function buildNav() {
    const env = S.env || '';
    const links = NAV.filter(([, , , change]) => !change || canChange()).map(([section, label, scoped, change]) => {
      if (scoped && !env) return null;
      const a = h('a', { href: scoped ? route(section, env) : `#/${section}`, 'data-section': section }, label);
      if (change) a.setAttribute('data-change', '');
      return h('li', {}, a);
    });
    replace($('nav-links'), links);
    markNav();
  }
  function markNav() {
    const section = currentSection();
    const sectionOf = { instances: 'fleet' };
    document.querySelectorAll('#nav-links a').forEach((a) => {
      if (a.dataset.section === (sectionOf[section] || section)) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    });
  }
  function currentSection() {
    return (location.hash.replace(/^#\/?/, '').split(/[/?]/)[0] || '');
  }
  function useEnv(env) {
    if (S.env === env) return;
    S.env = env;
    const sel = $('env-select');
    if (![...sel.options].some((o) => o.value === env)) sel.append(h('option', { value: env }, env));
    sel.value = env;
    buildNav();
  }
  function onEnvChange() {
    const env = $('env-select').value;
    if (!env) return;
    const section = currentSection();
    S.env = env;
    buildNav();
    if (ENV_SECTIONS.includes(section)) navigate(route(section, env));
    else if (section === 'instances' || section === '') navigate(route('fleet', env));
  }
  const envInfo = (env) => S.envs.find((e) => e.name === env) || null;
  const envStages = (env) => ((envInfo(env) || {}).stages || {}).stages || [];
  const envRegions = (env) => (envInfo(env) || {}).regions || [];

  // ---- Router: hash → view; each view gets a context whose timers and streams end when it is left.
  const ROUTES = [
    [/^fleet\/([^/]+)$/, (c, m) => viewFleet(c, m[1])],
    [/^instances\/([^/]+)\/([^/]+)$/, (c, m) => viewInstance(c, m[1], m[2])],
    [/^create\/([^/]+)$/, (c, m) => viewCreate(c, m[1])],
    [/^operations$/, (c) => viewOperations(c)],
    [/^operations\/([^/]+)$/, (c, m) => viewOperation(c, m[1])],
    [/^audit$/, (c) => viewAudit(c)],
    [/^images\/([^/]+)$/, (c, m) => viewImages(c, m[1])],
    [/^security-groups\/([^/]+)$/, (c, m) => viewSecurityGroups(c, m[1])],
    [/^key-pairs\/([^/]+)$/, (c, m) => viewKeyPairs(c, m[1])],
    [/^objects\/([^/]+)$/, (c, m) => viewBuckets(c, m[1])],
    [/^objects\/([^/]+)\/([^/]+)(?:\/(.*))?$/, (c, m) => viewBucket(c, m[1], m[2], m[3] || '')],
    [/^secrets\/([^/]+)$/, (c, m) => viewSecrets(c, m[1])],
    [/^parameters\/([^/]+)$/, (c, m) => viewParameters(c, m[1])],
    [/^services\/([^/]+)$/, (c, m) => viewServices(c, m[1])],
  ];
  function runCleanups() {
    const fns = S.cleanups;
    S.cleanups = [];
    for (const fn of fns) {
      try { fn(); } catch (e) { console.error(e); }
    }
  }
  function decodeSeg(s) {
    try { return decodeURIComponent(s); } catch (_) { return s; }
  }
  function render() {
    if (!S.whoami) return;
    runCleanups();
    const gen = ++S.gen;
    if (!S.keepStatus) clear($('status'));
    S.keepStatus = false;
    const h0 = location.hash.replace(/^#\/?/, '');
    const qi = h0.indexOf('?');
    const pathPart = qi >= 0 ? h0.slice(0, qi) : h0;
    const query = new URLSearchParams(qi >= 0 ? h0.slice(qi + 1) : '');
    markNav();
    if (pathPart === '') {
      location.replace(S.env ? route('fleet', S.env) : '#/operations');
      return;
    }
    const view = clear($('view'));
    const ctx = {
      gen,
      query,
      el: view,
      alive: () => gen === S.gen && !!S.whoami,
      onLeave: (fn) => S.cleanups.push(fn),
      every(ms, fn) {
        const t = setInterval(() => { if (ctx.alive()) fn(); }, ms);
        S.cleanups.push(() => clearInterval(t));
        return t;
      },
    };
    let handled = false;
    for (const [re, fn] of ROUTES) {
      const m = pathPart.match(re);
      if (!m) continue;
      handled = true;
      const args = m.map((s, i) => (i === 0 || s === undefined ? s : (re.source.startsWith('^objects') && i === 3 ? s.split('/').map(decodeSeg).join('/') : decodeSeg(s))));
      // Called synchronously so a view's skeleton is in place before focus moves below.
      let pending;
      try {
        pending = fn(ctx, args);
      } catch (e) {
        pending = Promise.reject(e);
      }
      Promise.resolve(pending).catch((e) => { if (ctx.alive()) showError(e); });
      break;
    }
    if (!handled) {
      append(view, h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, 'No page lives at this address. ', S.env ? h('a', { href: route('fleet', S.env) }, 'Go to the fleet') : null));
    }
    const focusId = S.focusAfter;
    S.focusAfter = null;
    if (focusId && $(focusId)) $(focusId).focus();
    else if (!document.activeElement || document.activeElement === document.body || !document.body.contains(document.activeElement)) {
      const h1 = view.querySelector('h1');
      if (h1) h1.focus({ preventScroll: true });
    }
  }

  // ---- Shared list pieces: paging over next_page_token, and reporting changes (operations).
  function makePager(ctx, mount, fetchPage, renderPage, opts) {
    const o = opts || {};
    const stack = [null];
    let idx = 0;
    let next = null;
    const body = h('div', {});
    const prev = h('button', { type: 'button', id: o.prevId, disabled: true, onclick: () => go(idx - 1) }, '← Previous');
    const nxt = h('button', { type: 'button', id: o.nextId, disabled: true, onclick: () => go(idx + 1) }, 'Next →');
    const where = h('span', { class: 'muted' });
    append(mount, body, h('div', { class: 'pager' }, prev, nxt, where));
    async function load() {
      replace(body, loading(o.loadingText));
      prev.disabled = true;
      nxt.disabled = true;
      let data;
      try {
        data = await fetchPage(stack[idx]);
      } catch (e) {
        if (!ctx.alive()) return;
        replace(body, h('p', { class: 'empty' }, `Could not load: ${errorText(e)}`));
        prev.disabled = idx === 0;
        throw e;
      }
      if (!ctx.alive()) return;
      next = data.next_page_token || null;
      const items = data.items || [];
      if (!items.length && !(o.nonEmpty && o.nonEmpty(data))) replace(body, empty(o.emptyText));
      else replace(body, renderPage(data));
      prev.disabled = idx === 0;
      nxt.disabled = !next;
      where.textContent = idx > 0 || next ? `Page ${idx + 1}` : '';
    }
    function go(i) {
      if (i < 0) return;
      if (i > idx) stack[i] = next;
      idx = i;
      stack.length = idx + 1;
      load().catch(showError);
    }
    return {
      load,
      reset() { stack.length = 1; idx = 0; return load(); },
    };
  }
  function opLink(id) { return h('a', { href: route('operations', id), class: 'mono' }, id); }
  // Reports a change's answer: an Operation (waiting for it when still going) or anything else.
  async function reportChange(ctx, res, what, after) {
    if (!res || !res.id || !res.status) {
      setStatus(`${what}: done.`, 'ok');
      if (after) await after();
      return res;
    }
    let op = res;
    if (!FINAL.has(op.status)) {
      setStatus([`${what}: operation `, opLink(op.id), ` is ${op.status}…`], 'info');
      try {
        op = await api('GET', `${path`/v1/operations/${op.id}`}?timeout=60`);
      } catch (e) {
        showError(e);
        return res;
      }
      if (!ctx.alive()) return op;
    }
    if (op.status === 'succeeded') setStatus([`${what}: done (operation `, opLink(op.id), ').'], 'ok');
    else if (op.status === 'failed') setStatus([`${what} failed: ${op.error ? op.error.message : 'no reason given'} (operation `, opLink(op.id), ').'], 'error');
    else setStatus([`${what}: operation `, opLink(op.id), ` is ${op.status}.`], 'info');
    if (after) await after();
    return op;
  }
  async function change(ctx, method, url, body, what, after) {
    const res = await api(method, url, body);
    return reportChange(ctx, res, what, after);
  }
  function confirmDelete(what) {
    return window.confirm(`Delete ${what}? This cannot be undone.`);
  }
  // A form that disables its submit button while its handler runs and shows errors beside itself.
  function actionForm(attrs, children, onSubmit) {
    const err = h('p', { class: 'form-error', role: 'alert' });
    const form = h('form', attrs, children, err);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      const buttons = form.querySelectorAll('button[type="submit"]');
      buttons.forEach((b) => { b.disabled = true; });
      try {
        await onSubmit(form);
      } catch (e) {
        if (!e.sessionEnded) {
          err.textContent = errorText(e);
          showError(e);
        }
      } finally {
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
    return form;
  }
  function regionSelect(env, id) {
    const regions = envRegions(env);
    return h('select', { id: id || nextId('region') }, h('option', { value: '' }, 'default'), regions.map((r) => h('option', { value: r }, r)));
  }

  // ---- Plan dialog: dry run → plan → (typed confirmation) → the real request → its operation.
  async function startBulk(env, action, selector) {
    setStatus(`Planning: ${VERBS[action].toLowerCase()}…`, 'info');
    const ans = await api('POST', `${envPath(env)}/instances/${encodeURIComponent(action)}`, { ...selector, dry_run: true });
    clear($('status'));
    openPlan(env, action, selector, ans || {});
  }
  function openPlan(env, action, selector, ans) {
    const dlg = $('plan');
    const plan = ans.plan || {};
    const targets = plan.targets || [];
    const skipped = plan.skipped || [];
    const calls = plan.calls || [];
    const verb = VERBS[action] || action;
    S.plan = { env, action, selector, confirm: plan.confirm || null };
    $('plan-title').textContent = `${verb}: plan`;
    $('plan-summary').textContent = `${verb} ${targets.length} instance(s) in ${env}; skip ${skipped.length}`;
    $('plan-message').textContent = ans.message || '';
    const none = () => h('li', { class: 'muted' }, 'None');
    replace($('plan-targets'), targets.length ? targets.map((t) => h('li', { 'data-id': t.id },
      h('span', { class: 'mono' }, t.id), ` · ${t.region} · ${t.state}`,
      t.stage || t.to_stage ? ` · ${t.stage || 'no stage'}${t.to_stage ? ` → ${t.to_stage}` : ''}` : '')) : none());
    replace($('plan-skipped'), skipped.length ? skipped.map((s) => h('li', { 'data-id': s.id },
      h('span', { class: 'mono' }, s.id), `: ${s.reason}`, s.state ? ` (${s.state})` : '')) : none());
    replace($('plan-calls'), calls.length ? calls.map((c) => h('li', {}, `${c.region}: ${c.action} × ${c.instances}`)) : none());
    const confirmBox = $('plan-confirm');
    const confirmInput = $('plan-confirm-text');
    confirmInput.value = '';
    $('plan-error').textContent = '';
    confirmBox.hidden = !plan.confirm || !targets.length;
    $('plan-confirm-expected').textContent = plan.confirm || '';
    const old = $('plan-go');
    if (old) old.remove();
    if (targets.length && canChange()) {
      const danger = action === 'stop' || action === 'terminate';
      const go = h('button', { id: 'plan-go', type: 'button', class: danger ? 'primary danger' : 'primary', 'data-change': true, onclick: planGo },
        `${verb} ${plural(targets.length, 'instance')}`);
      go.disabled = !!plan.confirm;
      $('plan-actions').append(go);
    }
    if (!dlg.open) dlg.showModal();
    const first = [...dlg.querySelectorAll('input, button')].find((el) => !el.disabled && el.offsetParent !== null);
    if (first) first.focus();
  }
  function onConfirmInput() {
    const go = $('plan-go');
    if (go && S.plan) go.disabled = !!S.plan.confirm && $('plan-confirm-text').value !== S.plan.confirm;
  }
  async function planGo() {
    const p = S.plan;
    const go = $('plan-go');
    if (!p || !go || go.disabled) return;
    const body = { ...p.selector, dry_run: false };
    if (p.confirm) body.confirm = $('plan-confirm-text').value;
    go.disabled = true;
    $('plan-error').textContent = '';
    try {
      const res = await api('POST', `${envPath(p.env)}/instances/${encodeURIComponent(p.action)}`, body, { async: true });
      $('plan').close();
      if (res && res.id && res.status) {
        navigate(route('operations', res.id));
      } else {
        setStatus((res && res.message) || 'Nothing to do.', 'info');
      }
    } catch (e) {
      if (e.sessionEnded) return;
      $('plan-error').textContent = errorText(e);
      if (e.operationId) navigate(route('operations', e.operationId));
      go.disabled = false;
    }
  }
  function closePlan() { const dlg = $('plan'); if (dlg.open) dlg.close(); }

  // ---- Fleet view: filters in the hash, the stage × state picture, the table, the bulk bar.
  async function viewFleet(ctx, env) {
    useEnv(env);
    const q = ctx.query;
    const f = { stage: q.get('stage') || '', state: q.get('state') || '', name: q.get('name') || '', tag: q.get('tag') || '' };
    const tagPair = parseKV(f.tag);
    const apiFilters = { stage: f.stage, state: f.state, name: f.name };
    if (tagPair) apiFilters[`tag.${tagPair.key}`] = tagPair.value;
    const hasFilters = !!(f.stage || f.state || f.name || tagPair);

    // Filters
    const stageList = h('datalist', { id: 'stage-options' }, envStages(env).map((s) => h('option', { value: s })));
    const stageIn = h('input', { id: 'filter-stage', type: 'text', value: f.stage, list: 'stage-options', autocomplete: 'off' });
    const stateIn = h('select', { id: 'filter-state' }, options([['', 'any'], ...INSTANCE_STATES.map((s) => [s, s])], f.state));
    const nameIn = h('input', { id: 'filter-name', type: 'text', value: f.name, autocomplete: 'off' });
    const tagIn = h('input', { id: 'filter-tag', type: 'text', value: f.tag, placeholder: 'key=value', autocomplete: 'off' });
    const filterForm = h('form', { id: 'filter-form', class: 'filters', role: 'search', 'aria-label': 'Filter instances' },
      stageList,
      field('Stage', stageIn), field('State', stateIn), field('Name', nameIn), field('Tag', tagIn),
      h('div', { class: 'form-actions' },
        h('button', { id: 'filter-apply', type: 'submit', class: 'primary' }, 'Apply'),
        hasFilters ? h('a', { href: route('fleet', env), class: 'button' }, 'Clear') : null));
    filterForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const tag = tagIn.value.trim();
      if (tag && !parseKV(tag)) {
        setStatus('The tag filter must look like key=value.', 'error');
        tagIn.focus();
        return;
      }
      const hash = route('fleet', env) + qs({ stage: stageIn.value.trim(), state: stateIn.value, name: nameIn.value.trim(), tag });
      navigate(hash, 'filter-apply');
    });

    // Picture and header
    const total = h('span', { id: 'fleet-total', class: 'fleet-total' }, '…');
    const asOf = h('span', { id: 'fleet-as-of', class: 'muted' });
    const refresh = h('button', { id: 'fleet-refresh', type: 'button', title: 'List again from the backend (fresh=true)' }, 'Refresh');
    const picture = h('div', { id: 'fleet-picture', class: 'picture' }, loading('Loading the fleet picture…'));

    // Table
    const selected = new Set();
    let fleetTotal = null;
    const selectAll = canChange() ? h('input', { type: 'checkbox', id: 'select-all' }) : null;
    const tbody = h('tbody', {});
    const headers = [
      selectAll ? h('th', { scope: 'col' }, h('label', { for: 'select-all', class: 'sr-only' }, 'Select every instance on this page'), selectAll) : null,
      'ID', 'Name', 'Stage', 'State', 'Type', 'Region', 'Private IP', 'Public IP', 'Tags',
    ].filter((x) => x !== null).map((x) => (x instanceof Node ? x : h('th', { scope: 'col' }, x)));
    const tbl = h('table', { id: 'fleet-table' }, h('thead', {}, h('tr', {}, headers)), tbody);
    const prev = h('button', { id: 'fleet-prev', type: 'button', disabled: true }, '← Previous');
    const next = h('button', { id: 'fleet-next', type: 'button', disabled: true }, 'Next →');
    const pageNote = h('span', { class: 'muted' });
    const tokens = [null];
    let idx = 0;
    let nextToken = null;

    // Bulk bar (operators and admins)
    let bulkBar = null;
    let updateBulk = () => {};
    if (canChange()) {
      const target = h('p', { id: 'bulk-target', class: 'bulk-target' });
      const force = h('input', { type: 'checkbox', id: 'bulk-force' });
      const toStage = h('input', { type: 'text', id: 'bulk-to-stage', placeholder: 'next stage', list: 'stage-options', autocomplete: 'off' });
      const tagKV = h('input', { type: 'text', id: 'bulk-tag', placeholder: 'key=value', autocomplete: 'off' });
      const btn = (a) => h('button', { type: 'button', 'data-bulk': a, 'data-change': true, class: a === 'terminate' ? 'danger' : '', onclick: () => runBulk(a) }, VERBS[a]);
      const buttons = ['start', 'stop', 'reboot', 'terminate', 'promote', 'tag'].map(btn);
      const [bStart, bStop, bReboot, bTerm, bPromote, bTag] = buttons;
      bulkBar = chg(h('div', { id: 'bulk-actions', class: 'bulk', role: 'group', 'aria-label': 'Bulk actions' },
        target,
        bStart,
        h('span', { class: 'row' }, bStop, checkField('force', force)),
        bReboot, bTerm,
        h('span', { class: 'row' }, bPromote, h('label', { for: 'bulk-to-stage', class: 'sr-only' }, 'Promote to stage'), toStage),
        h('span', { class: 'row' }, bTag, h('label', { for: 'bulk-tag', class: 'sr-only' }, 'Tag to set (key=value)'), tagKV)));
      updateBulk = () => {
        const n = selected.size;
        if (n) target.textContent = `Acts on the ${n} selected instance(s)`;
        else if (hasFilters) target.textContent = `Acts on every instance matching the filters (${fleetTotal === null ? '…' : fleetTotal})`;
        else target.textContent = 'Filter the fleet or select instances to act on them.';
        buttons.forEach((b) => { b.disabled = !n && !hasFilters; });
        if (selectAll) {
          const boxes = tbody.querySelectorAll('input.select-row');
          selectAll.checked = boxes.length > 0 && n === boxes.length;
          selectAll.indeterminate = n > 0 && n < boxes.length;
        }
      };
      const runBulk = (action) => {
        const sel = {};
        if (selected.size) {
          sel.ids = [...selected];
        } else {
          if (f.stage) sel.stage = f.stage;
          if (f.state) sel.state = f.state;
          if (f.name) sel.name = f.name;
          if (tagPair) sel.tags = { [tagPair.key]: tagPair.value };
        }
        if (action === 'stop' && force.checked) sel.force = true;
        if (action === 'promote' && toStage.value.trim()) sel.to_stage = toStage.value.trim();
        if (action === 'tag') {
          const kv = parseKV(tagKV.value);
          if (!kv) {
            setStatus('Enter the tag to set as key=value.', 'error');
            tagKV.focus();
            return;
          }
          sel.set = { [kv.key]: kv.value };
        }
        startBulk(env, action, sel).catch(showError);
      };
      selectAll.addEventListener('change', () => {
        tbody.querySelectorAll('input.select-row').forEach((b) => {
          b.checked = selectAll.checked;
          if (b.checked) selected.add(b.value); else selected.delete(b.value);
        });
        updateBulk();
      });
    }

    append(ctx.el,
      titleRow(`Fleet · ${env}`, asOf, refresh, canChange() ? chg(h('a', { href: route('create', env), class: 'button' }, 'Create VM')) : null),
      filterForm,
      card(h('div', { class: 'fleet-head' }, h('h2', { class: 'sr-only' }, 'Fleet picture'), total,
        hasFilters ? h('span', { class: 'muted' }, 'matching the filters') : null), picture),
      bulkBar,
      h('div', { class: 'table-wrap' }, tbl),
      h('div', { class: 'pager' }, prev, next, pageNote));
    updateBulk();

    function row(inst) {
      const tags = inst.tags || {};
      const stage = inst.stage || tags.stage || tags[((envInfo(env) || {}).stages || {}).tag_key || 'stage'] || '';
      let box = null;
      if (canChange()) {
        const id = nextId('sel');
        box = h('td', {},
          h('label', { for: id, class: 'sr-only' }, `Select ${inst.id}`),
          h('input', {
            type: 'checkbox', class: 'select-row', id, value: inst.id,
            onchange: (ev) => { if (ev.target.checked) selected.add(inst.id); else selected.delete(inst.id); updateBulk(); },
          }));
      }
      return h('tr', { 'data-instance-id': inst.id },
        box,
        h('td', {}, h('a', { href: route('instances', env, inst.id), class: 'mono' }, inst.id)),
        h('td', {}, inst.name || tags.Name || '—'),
        h('td', {}, stage || h('span', { class: 'muted' }, '—')),
        h('td', {}, badge(inst.state)),
        h('td', {}, inst.instance_type || '—'),
        h('td', {}, inst.region || '—'),
        h('td', { class: 'mono' }, inst.private_ip || '—'),
        h('td', { class: 'mono' }, inst.public_ip || '—'),
        h('td', { class: 'wrap' }, tagList(tags)));
    }
    const cols = headers.length;
    async function loadPage(fresh) {
      replace(tbody, h('tr', {}, h('td', { colspan: cols, class: 'loading' }, 'Loading instances…')));
      prev.disabled = true;
      next.disabled = true;
      const data = await api('GET', `${envPath(env)}/instances${qs({ limit: 100, ...apiFilters, page_token: tokens[idx], fresh: fresh ? 'true' : '' })}`);
      if (!ctx.alive()) return;
      const items = data.items || [];
      selected.clear();
      replace(tbody, items.length ? items.map(row)
        : h('tr', {}, h('td', { colspan: cols, class: 'empty' }, hasFilters ? 'No instances match these filters.' : 'No instances in this environment yet.')));
      nextToken = data.next_page_token || null;
      prev.disabled = idx === 0;
      next.disabled = !nextToken;
      pageNote.textContent = idx > 0 || nextToken ? `Page ${idx + 1}` : '';
      asOf.textContent = `as of ${fmtClock(data.as_of)}`;
      updateBulk();
      if (!S.fleetMarked) {
        S.fleetMarked = true;
        performance.mark('fleet-rendered');
      }
    }
    async function loadCounts() {
      try {
        const d = await api('GET', `${envPath(env)}/fleet${qs(apiFilters)}`);
        if (!ctx.alive()) return;
        fleetTotal = d.total;
        total.textContent = plural(d.total, 'instance');
        renderPicture(picture, d.counts || [], env);
        if (!asOf.textContent && d.as_of) asOf.textContent = `as of ${fmtClock(d.as_of)}`;
        updateBulk();
      } catch (e) {
        if (!ctx.alive()) return;
        total.textContent = '';
        replace(picture, h('p', { class: 'empty' }, `The fleet picture could not be loaded: ${errorText(e)}`));
        throw e;
      }
    }
    const loadAll = (fresh) => Promise.all([loadCounts(), loadPage(fresh)]).catch(showError);
    prev.addEventListener('click', () => { if (idx > 0) { idx -= 1; tokens.length = idx + 1; loadPage().catch(showError); } });
    next.addEventListener('click', () => { if (nextToken) { idx += 1; tokens[idx] = nextToken; tokens.length = idx + 1; loadPage().catch(showError); } });
    refresh.addEventListener('click', async () => {
      refresh.disabled = true;
      await loadAll(true);
      refresh.disabled = false;
    });
    await loadAll(false);
  }
  function renderPicture(el, counts, env) {
    clear(el);
    if (!counts.length) {
      el.append(empty('No instances.'));
      return;
    }
    const byStage = new Map();
    for (const c of counts) {
      const key = c.stage === undefined || c.stage === null || c.stage === '' ? null : c.stage;
      if (!byStage.has(key)) byStage.set(key, new Map());
      const m = byStage.get(key);
      m.set(c.state, (m.get(c.state) || 0) + (c.count || 0));
    }
    const order = envStages(env);
    const keys = [...byStage.keys()].sort((a, b) => {
      if (a === null) return 1;
      if (b === null) return -1;
      const ia = order.indexOf(a);
      const ib = order.indexOf(b);
      if (ia >= 0 || ib >= 0) return (ia < 0 ? 1e9 : ia) - (ib < 0 ? 1e9 : ib);
      return a.localeCompare(b);
    });
    const totals = keys.map((k) => [...byStage.get(k).values()].reduce((x, y) => x + y, 0));
    const max = Math.max(1, ...totals);
    keys.forEach((key, i) => {
      const states = byStage.get(key);
      const ordered = [...states.keys()].sort((a, b) => {
        const ia = INSTANCE_STATES.indexOf(a);
        const ib = INSTANCE_STATES.indexOf(b);
        return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
      });
      const label = key === null ? 'no stage' : key;
      const bar = h('div', { class: 'stage-bar', 'aria-hidden': 'true' });
      for (const st of ordered) {
        const n = states.get(st);
        if (!n) continue;
        const seg = h('div', { class: `seg ${segClass(st)}`, title: `${label}: ${st} ${n}`, 'data-state': st });
        seg.style.width = `${(n / max) * 100}%`;
        bar.append(seg);
      }
      el.append(h('div', { class: 'stage-row', 'data-stage': key === null ? '' : key },
        h('div', { class: 'stage-name' }, `${label} `, h('span', { class: 'muted' }, `(${totals[i]})`)),
        bar,
        h('div', { class: 'stage-legend' }, ordered.map((st) => h('span', { 'data-state': st },
          h('span', { class: `swatch ${segClass(st)}`, 'aria-hidden': 'true' }), `${st} ${states.get(st)}`)))));
    });
  }

  // ---- Instance view: fields, actions through the plan dialog, tags, and the serial console.
  async function viewInstance(ctx, env, id) {
    useEnv(env);
    const info = h('div', {}, loading('Loading the instance…'));
    const tagsBox = h('div', {}, loading());
    const actions = canChange()
      ? h('div', { class: 'row', id: 'instance-actions', role: 'group', 'aria-label': 'Instance actions' },
        ['start', 'stop', 'reboot', 'terminate', 'promote'].map((a) => chg(h('button', {
          type: 'button', 'data-action': a, class: a === 'terminate' ? 'danger' : '',
          onclick: () => startBulk(env, a, { ids: [id] }).catch(showError),
        }, VERBS[a]))))
      : null;
    const tagInput = h('input', { id: 'tag-kv', type: 'text', placeholder: 'key=value', autocomplete: 'off' });
    const tagEditor = canChange() ? chg(actionForm({ id: 'tag-form', class: 'row' },
      [field('Set tag', tagInput), h('button', { type: 'submit' }, 'Set tag')],
      async () => {
        const kv = parseKV(tagInput.value);
        if (!kv) throw new ApiError(0, 'invalid', 'Enter the tag as key=value.', 'tag');
        await startBulk(env, 'tag', { ids: [id], set: { [kv.key]: kv.value } });
      })) : null;
    const follow = h('input', { type: 'checkbox', id: 'console-follow', checked: true });
    const pre = h('pre', { id: 'serial-console', class: 'console', tabindex: '0', 'aria-label': 'Serial console output' }, 'Waiting for console output…');
    const consoleNote = h('span', { class: 'muted', id: 'console-note' });

    append(ctx.el,
      h('p', {}, h('a', { href: route('fleet', env) }, `← Fleet · ${env}`)),
      titleRow(`Instance ${id}`, h('button', { type: 'button', onclick: () => loadInfo(true).catch(showError) }, 'Refresh')),
      card(info, actions ? h('h2', {}, 'Actions') : null, actions),
      card(h('h2', {}, 'Tags'), tagsBox, tagEditor),
      card(h('div', { class: 'row spread' }, h('h2', {}, 'Serial console'), h('div', { class: 'row' }, consoleNote, checkField('Follow', follow))), pre));

    async function loadInfo(fresh) {
      const inst = await api('GET', `${envPath(env)}/instances/${encodeURIComponent(id)}${qs({ fresh: fresh ? 'true' : '' })}`);
      if (!ctx.alive()) return;
      const tags = inst.tags || {};
      replace(info, kvList([
        ['ID', h('span', { class: 'mono' }, inst.id)],
        ['Name', inst.name || tags.Name],
        ['State', h('span', {}, badge(inst.state), inst.state_reason ? ` ${inst.state_reason}` : '')],
        ['Stage', inst.stage || tags.stage],
        ['Type', inst.instance_type],
        ['Image', inst.image],
        ['Region', inst.zone ? `${inst.region} (${inst.zone})` : inst.region],
        ['Private IP', inst.private_ip],
        ['Public IP', inst.public_ip],
        ['SSH', inst.ssh_address ? h('code', {}, inst.ssh_address) : null],
        ['Key pair', inst.key_pair],
        ['Security groups', (inst.security_groups || []).join(', ')],
        ['Launched', fmtTime(inst.launched_at)],
        ['Org', inst.org],
      ]));
      const entries = Object.entries(tags).sort(([a], [b]) => a.localeCompare(b));
      replace(tagsBox, entries.length
        ? table({ id: 'instance-tags' }, ['Key', 'Value', canChange() ? h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Remove')) : null].filter(Boolean),
          entries.map(([k, v]) => h('tr', { 'data-tag': k }, h('td', { class: 'mono' }, k), h('td', { class: 'mono wrap' }, v),
            canChange() ? h('td', {}, chg(h('button', {
              type: 'button', class: 'btn-small', 'aria-label': `Remove tag ${k}`,
              onclick: () => startBulk(env, 'untag', { ids: [id], keys: [k] }).catch(showError),
            }, 'Remove'))) : null)))
        : empty('No tags.'));
    }

    let inFlight = false;
    let lastOutput = null;
    let lastError = null;
    async function pollConsole() {
      if (inFlight) return;
      inFlight = true;
      try {
        const out = await api('GET', `${envPath(env)}/instances/${encodeURIComponent(id)}/console`);
        if (!ctx.alive()) return;
        lastError = null;
        const text = (out && out.output) || '';
        if (text !== lastOutput) {
          lastOutput = text;
          pre.textContent = text || '(no output yet)';
          if (follow.checked) pre.scrollTop = pre.scrollHeight;
        }
        consoleNote.textContent = `updated ${fmtClock()}`;
      } catch (e) {
        if (!ctx.alive() || e.sessionEnded) return;
        const t = errorText(e);
        consoleNote.textContent = `console: ${t}`;
        if (t !== lastError) { lastError = t; showError(e); }
      } finally {
        inFlight = false;
      }
    }
    follow.addEventListener('change', () => { if (follow.checked) pre.scrollTop = pre.scrollHeight; });
    ctx.every(2000, pollConsole);
    ctx.every(10000, () => loadInfo(false).catch(() => {}));
    pollConsole();
    await loadInfo(false);
  }

  // ---- Create VM view: one form that launches instances as an operation.
  async function viewCreate(ctx, env) {
    useEnv(env);
    append(ctx.el, titleRow(`Create VM · ${env}`));
    if (!canChange()) {
      append(ctx.el, empty('Your role cannot create instances.'));
      return;
    }
    const name = h('input', { id: 'create-name', type: 'text', required: true, autocomplete: 'off' });
    const count = h('input', { id: 'create-count', type: 'number', min: '1', max: '100', value: '1' });
    const mtype = h('select', { id: 'create-machine-type' }, h('option', { value: '' }, 'Loading…'));
    const imageList = h('datalist', { id: 'create-image-options' });
    const image = h('input', { id: 'create-image', type: 'text', list: 'create-image-options', autocomplete: 'off', placeholder: 'image id or name' });
    const stageList = h('datalist', { id: 'create-stage-options' }, envStages(env).map((s) => h('option', { value: s })));
    const stage = h('input', { id: 'create-stage', type: 'text', list: 'create-stage-options', autocomplete: 'off', placeholder: envStages(env)[0] || '' });
    const keyPair = h('select', { id: 'create-key-pair' }, h('option', { value: '' }, 'none'));
    const groups = h('select', { id: 'create-security-groups', multiple: true, size: '4' });
    const region = regionSelect(env, 'create-region');
    const userData = h('textarea', { id: 'create-user-data', rows: '6', spellcheck: 'false', placeholder: '#cloud-config' });
    const form = chg(actionForm({ id: 'create-form', class: 'card' }, [
      h('div', { class: 'form-grid' },
        field('Name', name), field('Count', count), field('Machine type', mtype), field('Image', image, 'Leave empty for the machine type\'s image.'),
        field('Stage', stage, 'Default: the first stage.'), field('Key pair', keyPair), field('Region', region),
        field('Security groups', groups, 'Optional; Ctrl/Cmd-click to pick several.'),
        h('div', { class: 'wide' }, field('User data', userData))),
      imageList, stageList,
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary', id: 'create-submit' }, 'Create')),
    ], async () => {
      const body = { name: name.value.trim() };
      const n = parseInt(count.value, 10);
      if (!body.name) throw new ApiError(0, 'invalid', 'Give the instance a name.', 'name');
      if (n > 0) body.count = n;
      if (mtype.value) body.machine_type = mtype.value;
      if (image.value.trim()) body.image = image.value.trim();
      if (stage.value.trim()) body.stage = stage.value.trim();
      if (keyPair.value) body.key_pair = keyPair.value;
      if (region.value) body.region = region.value;
      const sgs = [...groups.selectedOptions].map((o) => o.value);
      if (sgs.length) body.security_groups = sgs;
      if (userData.value) body.user_data = userData.value;
      const res = await api('POST', `${envPath(env)}/instances`, body, { async: true });
      if (res && res.id) navigate(route('operations', res.id));
      else setStatus((res && res.message) || 'Done.', 'ok');
    }));
    append(ctx.el, form);
    name.focus();

    const fill = async (what, fn) => {
      try { await fn(); } catch (e) { if (ctx.alive()) setStatus(`Could not load ${what}: ${errorText(e)}`, 'error'); }
    };
    await Promise.all([
      fill('machine types', async () => {
        const types = await apiAll('/v1/machine-types');
        if (!ctx.alive()) return;
        replace(mtype, h('option', { value: '' }, types.length ? 'choose…' : 'none defined'),
          types.map((t) => h('option', { value: t.name }, t.description ? `${t.name} — ${t.description}` : t.name)));
      }),
      fill('images', async () => {
        const images = await apiAll(`${envPath(env)}/images`);
        if (!ctx.alive()) return;
        replace(imageList, images.map((i) => h('option', { value: i.id }, `${i.name} (${i.region})`)));
      }),
      fill('key pairs', async () => {
        const keys = await apiAll(`${envPath(env)}/key-pairs`);
        if (!ctx.alive()) return;
        append(keyPair, keys.map((k) => h('option', { value: k.name }, `${k.name} (${k.region})`)));
      }),
      fill('security groups', async () => {
        const sgs = await apiAll(`${envPath(env)}/security-groups`);
        if (!ctx.alive()) return;
        replace(groups, sgs.map((g) => h('option', { value: g.id }, `${g.name} (${g.id})`)));
      }),
    ]);
  }

  // ---- Operation view: live status over Server-Sent Events, polling as the fallback.
  async function viewOperation(ctx, id) {
    const kind = h('span', { id: 'op-kind', class: 'mono' }, '…');
    const status = h('span', { id: 'op-status', class: 'badge idle' }, '…');
    const progress = h('progress', { id: 'op-progress', max: '1' });
    const progressText = h('span', { id: 'op-progress-text' }, '');
    const errBox = h('div', { id: 'op-error', class: 'warning', role: 'alert', hidden: true });
    const details = h('div', {});
    const links = h('div', { id: 'op-links' });
    const cancel = chg(h('button', { id: 'op-cancel', type: 'button', class: 'danger', hidden: true }, 'Cancel'));
    const resultsBody = h('tbody', {});
    const resultsTable = h('div', { class: 'table-wrap' }, h('table', { id: 'op-results' },
      h('thead', {}, h('tr', {}, ['Target', 'Outcome', 'Message', 'Detail'].map((x) => h('th', { scope: 'col' }, x)))), resultsBody));
    const live = h('span', { class: 'muted', id: 'op-live' });

    append(ctx.el,
      h('p', {}, h('a', { href: '#/operations' }, '← Operations')),
      titleRow(`Operation ${id}`, live, cancel),
      card(kvList([['Kind', kind], ['Status', status]]),
        h('div', { class: 'op-progress' }, h('label', { for: 'op-progress' }, 'Progress'), progress, progressText),
        errBox, details),
      links,
      h('h2', {}, 'Results'), resultsTable);

    let op = null;
    function update(next) {
      if (!ctx.alive() || !next) return;
      op = next;
      kind.textContent = op.kind;
      status.textContent = op.status;
      status.className = `badge ${tone(op.status, 'op')}`;
      const p = op.progress || { done: 0, total: 0 };
      if (p.total > 0) {
        progress.max = p.total;
        progress.value = Math.min(p.done, p.total);
      } else if (FINAL.has(op.status)) {
        progress.max = 1;
        progress.value = 1;
      } else {
        progress.removeAttribute('value');
      }
      progressText.textContent = `${p.done} / ${p.total}`;
      if (op.error) {
        errBox.hidden = false;
        replace(errBox, h('strong', {}, `${op.error.code}: `), op.error.message, op.error.field ? ` (field: ${op.error.field})` : '');
      } else {
        errBox.hidden = true;
      }
      replace(details, kvList([
        ['Target', op.target],
        ['Environment', op.environment],
        ['Requested by', op.requested_by],
        ['Org', op.org],
        ['Created', fmtTime(op.created_at)],
        ['Started', fmtTime(op.started_at)],
        ['Finished', fmtTime(op.finished_at)],
        ['Backend calls', op.backend_calls === undefined ? null : String(op.backend_calls)],
        op.cancel_requested ? ['Cancel', 'requested'] : null,
      ]));
      if (cancel) cancel.hidden = FINAL.has(op.status) || !!op.cancel_requested;
      const instanceOp = String(op.kind || '').startsWith('instance.') && op.environment;
      const results = op.results || [];
      replace(resultsBody, results.length ? results.map((r) => h('tr', { 'data-target': r.target },
        h('td', { class: 'mono' }, instanceOp ? h('a', { href: route('instances', op.environment, r.target) }, r.target) : r.target),
        h('td', {}, badge(r.outcome)),
        h('td', { class: 'wrap' }, r.message || ''),
        h('td', { class: 'wrap mono' }, r.detail === undefined || r.detail === null ? '' : (typeof r.detail === 'string' ? r.detail : JSON.stringify(r.detail)))))
        : h('tr', {}, h('td', { colspan: 4, class: 'empty' }, FINAL.has(op.status) ? 'No results.' : 'No results yet.')));
      if (op.status === 'succeeded' && instanceOp && results.length) {
        const done = results.filter((r) => r.outcome === 'done');
        replace(links, card(h('h2', {}, 'Instances'), h('ul', {}, done.map((r) => h('li', {},
          h('a', { href: route('instances', op.environment, r.target), class: 'mono' }, r.target),
          op.kind === 'instance.create' ? ' — serial console follows live' : '')))));
      } else {
        clear(links);
      }
      live.textContent = FINAL.has(op.status) ? `finished ${fmtClock(op.finished_at)}` : `live · ${fmtClock()}`;
    }
    if (cancel) {
      cancel.addEventListener('click', async () => {
        cancel.disabled = true;
        try {
          const res = await api('POST', `${path`/v1/operations/${id}`}/cancel`, undefined, { async: true });
          setStatus('Cancel requested.', 'ok');
          if (res && res.id) update(res);
        } catch (e) {
          showError(e);
        } finally {
          cancel.disabled = false;
        }
      });
    }

    update(await api('GET', path`/v1/operations/${id}`));
    if (!op || FINAL.has(op.status)) return;

    let polling = null;
    function startPolling() {
      if (polling || !ctx.alive()) return;
      live.textContent = 'polling…';
      let busy = false;
      polling = ctx.every(1000, async () => {
        if (busy || !op || FINAL.has(op.status)) return;
        busy = true;
        try {
          update(await api('GET', path`/v1/operations/${id}`));
        } catch (e) {
          if (ctx.alive()) showError(e);
        } finally {
          busy = false;
        }
        if (op && FINAL.has(op.status)) clearInterval(polling);
      });
    }
    if (typeof EventSource === 'undefined') {
      startPolling();
      return;
    }
    let es = new EventSource(path`/v1/operations/${id}/events`);
    const closeStream = () => { if (es) { es.close(); es = null; } };
    ctx.onLeave(closeStream);
    es.addEventListener('operation', (ev) => {
      let next;
      try { next = JSON.parse(ev.data); } catch (_) { return; }
      update(next);
      if (FINAL.has(next.status)) closeStream();
    });
    es.onerror = () => {
      if (!es) return;
      closeStream();
      if (op && !FINAL.has(op.status)) startPolling();
    };
  }

  // ---- Operations list: filters (status, kind) in the hash, newest first, paged.
  async function viewOperations(ctx) {
    const q = ctx.query;
    const status = h('select', { id: 'ops-status' }, options([['', 'any'], ...OP_STATUSES.map((s) => [s, s])], q.get('status') || ''));
    const kind = h('input', { id: 'ops-kind', type: 'text', value: q.get('kind') || '', placeholder: 'e.g. instance.stop', autocomplete: 'off' });
    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter operations' },
      field('Status', status), field('Kind', kind), h('button', { type: 'submit', class: 'primary', id: 'ops-apply' }, 'Apply'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      navigate(`#/operations${qs({ status: status.value, kind: kind.value.trim() })}`, 'ops-apply');
    });
    const list = h('div', {});
    append(ctx.el, titleRow('Operations'), form, list);
    const pager = makePager(ctx, list,
      (token) => api('GET', `/v1/operations${qs({ limit: 50, status: q.get('status'), kind: q.get('kind'), page_token: token })}`),
      (data) => table({ id: 'ops-table' }, ['ID', 'Kind', 'Status', 'Progress', 'Target', 'Environment', 'Requested by', 'Created'],
        data.items.map((op) => h('tr', { 'data-operation-id': op.id },
          h('td', {}, opLink(op.id)),
          h('td', { class: 'mono' }, op.kind),
          h('td', {}, badge(op.status, 'op')),
          h('td', { class: 'num' }, op.progress ? `${op.progress.done} / ${op.progress.total}` : ''),
          h('td', { class: 'mono wrap' }, op.target || ''),
          h('td', {}, op.environment || '—'),
          h('td', {}, op.requested_by || ''),
          h('td', {}, fmtTime(op.created_at))))),
      { prevId: 'ops-prev', nextId: 'ops-next', emptyText: 'No operations match.', loadingText: 'Loading operations…' });
    await pager.load();
  }

  // ---- Audit view: authenticated changes, filtered by token, operation and time, paged.
  async function viewAudit(ctx) {
    const q = ctx.query;
    const token = h('input', { id: 'audit-token', type: 'text', value: q.get('token_id') || '', autocomplete: 'off' });
    const opId = h('input', { id: 'audit-operation', type: 'text', value: q.get('operation_id') || '', autocomplete: 'off' });
    const since = h('input', { id: 'audit-since', type: 'datetime-local', step: '1' });
    if (q.get('since')) {
      const d = new Date(q.get('since'));
      if (!Number.isNaN(d.getTime())) since.value = new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
    }
    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the audit log' },
      field('Token id', token), field('Operation id', opId), field('Since (local time)', since),
      h('button', { type: 'submit', class: 'primary', id: 'audit-apply' }, 'Apply'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      let sinceIso = '';
      if (since.value) {
        const d = new Date(since.value);
        if (!Number.isNaN(d.getTime())) sinceIso = d.toISOString();
      }
      navigate(`#/audit${qs({ token_id: token.value.trim(), operation_id: opId.value.trim(), since: sinceIso })}`, 'audit-apply');
    });
    const list = h('div', {});
    append(ctx.el, titleRow('Audit log'), form, list);
    const pager = makePager(ctx, list,
      (tok) => api('GET', `/v1/audit${qs({ limit: 50, token_id: q.get('token_id'), operation_id: q.get('operation_id'), since: q.get('since'), page_token: tok })}`),
      (data) => table({ id: 'audit-table' }, ['At', 'Token', 'Role', 'Method', 'Route', 'Target', 'Status', 'Outcome', 'Operation'],
        data.items.map((a) => h('tr', { 'data-audit-id': a.id },
          h('td', {}, fmtTime(a.at)),
          h('td', { title: a.token_id }, a.token_name),
          h('td', {}, a.role),
          h('td', { class: 'mono' }, a.method),
          h('td', { class: 'mono wrap' }, a.route),
          h('td', { class: 'mono wrap' }, a.target || ''),
          h('td', { class: 'num' }, String(a.status_code)),
          h('td', {}, badge(a.outcome)),
          h('td', {}, a.operation_id ? opLink(a.operation_id) : '—')))),
      { prevId: 'audit-prev', nextId: 'audit-next', emptyText: 'No audit entries match.', loadingText: 'Loading the audit log…' });
    await pager.load();
  }

  // ---- Images view: the environment's images; make one from an instance; delete.
  async function viewImages(ctx, env) {
    useEnv(env);
    const list = h('div', {});
    let reload = async () => {};
    const name = h('input', { id: 'image-name', type: 'text', required: true, autocomplete: 'off' });
    const instance = h('input', { id: 'image-instance', type: 'text', required: true, autocomplete: 'off', placeholder: 'instance id' });
    const desc = h('input', { id: 'image-description', type: 'text', autocomplete: 'off' });
    const noReboot = h('input', { id: 'image-no-reboot', type: 'checkbox' });
    const form = chg(actionForm({ id: 'image-form', class: 'card' }, [
      h('h2', {}, 'Make an image from an instance'),
      h('div', { class: 'form-grid' }, field('Name', name), field('Instance', instance), field('Description', desc), checkField('Do not reboot the instance', noReboot)),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create image')),
    ], async () => {
      const body = { name: name.value.trim(), instance_id: instance.value.trim() };
      if (desc.value.trim()) body.description = desc.value.trim();
      if (noReboot.checked) body.no_reboot = true;
      const res = await api('POST', `${envPath(env)}/images`, body, { async: true });
      name.value = '';
      await reportChange(ctx, res, `Image ${body.name}`, reload);
    }));
    append(ctx.el, titleRow(`Images · ${env}`, h('button', { type: 'button', onclick: () => reload(true).catch(showError) }, 'Refresh')), list, form);
    const pager = makePager(ctx, list,
      (token) => api('GET', `${envPath(env)}/images${qs({ page_token: token, fresh: reloadFresh ? 'true' : '' })}`),
      (data) => table({ id: 'images-table' }, ['ID', 'Name', 'State', 'Region', 'Created', 'Description', 'Tags', canChange() ? h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')) : null].filter(Boolean),
        data.items.map((img) => h('tr', { 'data-image-id': img.id },
          h('td', { class: 'mono' }, img.id),
          h('td', {}, img.name),
          h('td', {}, badge(img.state)),
          h('td', {}, img.region),
          h('td', {}, fmtTime(img.created_at)),
          h('td', { class: 'wrap' }, img.description || ''),
          h('td', { class: 'wrap' }, tagList(img.tags)),
          canChange() ? h('td', {}, chg(h('button', {
            type: 'button', class: 'btn-small danger', 'aria-label': `Delete image ${img.id}`,
            onclick: async () => {
              if (!confirmDelete(`image ${img.name} (${img.id})`)) return;
              try { await change(ctx, 'DELETE', `${envPath(env)}/images/${encodeURIComponent(img.id)}`, undefined, `Delete image ${img.id}`, reload); } catch (e) { showError(e); }
            },
          }, 'Delete'))) : null))),
      { emptyText: 'No images.', loadingText: 'Loading images…' });
    let reloadFresh = false;
    reload = async (fresh) => { reloadFresh = !!fresh; if (ctx.alive()) await pager.reset(); reloadFresh = false; };
    await pager.load();
  }

  // ---- Security groups view: groups with their rules; create, add and remove rules, delete.
  async function viewSecurityGroups(ctx, env) {
    useEnv(env);
    const list = h('div', {}, loading('Loading security groups…'));
    const name = h('input', { id: 'sg-name', type: 'text', required: true, autocomplete: 'off' });
    const desc = h('input', { id: 'sg-description', type: 'text', required: true, autocomplete: 'off' });
    const region = regionSelect(env, 'sg-region');
    const form = chg(actionForm({ id: 'sg-form', class: 'card' }, [
      h('h2', {}, 'Create a security group'),
      h('div', { class: 'form-grid' }, field('Name', name), field('Description', desc), field('Region', region)),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create group')),
    ], async () => {
      const body = { name: name.value.trim(), description: desc.value.trim() || name.value.trim() };
      if (region.value) body.region = region.value;
      const res = await api('POST', `${envPath(env)}/security-groups`, body);
      name.value = '';
      desc.value = '';
      await reportChange(ctx, res, `Security group ${body.name}`, load);
    }));
    append(ctx.el, titleRow(`Security groups · ${env}`, h('button', { type: 'button', onclick: () => load(true).catch(showError) }, 'Refresh')), list, form);

    const ruleText = (r) => {
      const ports = r.protocol === 'all' || (r.from_port === null || r.from_port === undefined)
        ? 'all'
        : (r.from_port === r.to_port || r.to_port === null || r.to_port === undefined ? String(r.from_port) : `${r.from_port}-${r.to_port}`);
      return ports;
    };
    const cleanRule = (r) => {
      const out = { direction: r.direction, protocol: r.protocol };
      for (const k of ['from_port', 'to_port', 'cidr', 'source_group']) if (r[k] !== undefined && r[k] !== null) out[k] = r[k];
      return out;
    };
    function groupCard(g) {
      const base = `${envPath(env)}/security-groups/${encodeURIComponent(g.id)}`;
      const rules = g.rules || [];
      const rows = rules.map((r) => h('tr', {},
        h('td', {}, r.direction), h('td', {}, r.protocol), h('td', { class: 'mono' }, ruleText(r)),
        h('td', { class: 'mono' }, r.cidr || r.source_group || '—'),
        canChange() ? h('td', {}, chg(h('button', {
          type: 'button', class: 'btn-small', 'aria-label': `Remove ${r.direction} ${r.protocol} ${ruleText(r)} rule`,
          onclick: async () => {
            try { await change(ctx, 'DELETE', `${base}/rules`, cleanRule(r), 'Remove rule', load); } catch (e) { showError(e); }
          },
        }, 'Remove'))) : null));
      let addForm = null;
      if (canChange()) {
        const dir = h('select', {}, options([['ingress', 'ingress'], ['egress', 'egress']], 'ingress'));
        const proto = h('select', {}, options([['tcp', 'tcp'], ['udp', 'udp'], ['icmp', 'icmp'], ['all', 'all']], 'tcp'));
        const from = h('input', { type: 'number', min: '-1', max: '65535', class: 'port' });
        const to = h('input', { type: 'number', min: '-1', max: '65535', class: 'port' });
        const src = h('input', { type: 'text', placeholder: '0.0.0.0/0 or sg-…', autocomplete: 'off' });
        addForm = chg(actionForm({ class: 'filters', 'aria-label': `Add a rule to ${g.name}` }, [
          field('Direction', dir), field('Protocol', proto), field('From port', from), field('To port', to),
          field('CIDR or group', src),
          h('button', { type: 'submit' }, 'Add rule'),
        ], async () => {
          const rule = { direction: dir.value, protocol: proto.value };
          if (proto.value !== 'all') {
            if (from.value !== '') rule.from_port = parseInt(from.value, 10);
            if (to.value !== '') rule.to_port = parseInt(to.value, 10);
            else if (from.value !== '') rule.to_port = rule.from_port;
          }
          const s = src.value.trim();
          if (s) { if (s.includes('/')) rule.cidr = s; else rule.source_group = s; }
          await change(ctx, 'POST', `${base}/rules`, rule, 'Add rule', load);
        }));
      }
      return h('section', { class: 'card', 'data-group-id': g.id },
        h('div', { class: 'row spread' },
          h('h2', {}, g.name, ' ', h('span', { class: 'muted mono' }, g.id)),
          canChange() ? chg(h('button', {
            type: 'button', class: 'btn-small danger', 'aria-label': `Delete security group ${g.name}`,
            onclick: async () => {
              if (!confirmDelete(`security group ${g.name} (${g.id})`)) return;
              try { await change(ctx, 'DELETE', base, undefined, `Delete group ${g.name}`, load); } catch (e) { showError(e); }
            },
          }, 'Delete group')) : null),
        h('p', { class: 'muted' }, `${g.description || ''} · ${g.region}${g.vpc_id ? ` · ${g.vpc_id}` : ''}`),
        rules.length
          ? table({}, ['Direction', 'Protocol', 'Ports', 'Source / destination', canChange() ? h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')) : null].filter(Boolean), rows)
          : empty('No rules.'),
        addForm);
    }
    async function load(fresh) {
      const groups = await apiAll(`${envPath(env)}/security-groups${qs({ fresh: fresh ? 'true' : '' })}`);
      if (!ctx.alive()) return;
      replace(list, groups.length ? groups.map(groupCard) : empty('No security groups.'));
    }
    await load(false);
  }

  // ---- Key pairs view: list; create (the private key is shown once); delete.
  async function viewKeyPairs(ctx, env) {
    useEnv(env);
    const list = h('div', {});
    const created = h('div', { id: 'key-created' });
    let reload = async () => {};
    const name = h('input', { id: 'key-name', type: 'text', required: true, autocomplete: 'off' });
    const type = h('select', { id: 'key-type' }, options([['', 'default'], ['ed25519', 'ed25519'], ['rsa', 'rsa']], ''));
    const region = regionSelect(env, 'key-region');
    const form = chg(actionForm({ id: 'key-form', class: 'card' }, [
      h('h2', {}, 'Create a key pair'),
      h('div', { class: 'form-grid' }, field('Name', name), field('Key type', type), field('Region', region)),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create key pair')),
    ], async () => {
      const body = { name: name.value.trim() };
      if (type.value) body.key_type = type.value;
      if (region.value) body.region = region.value;
      const res = await api('POST', `${envPath(env)}/key-pairs`, body);
      name.value = '';
      showPrivateKey(body.name, res);
      await reportChange(ctx, res && res.operation, `Key pair ${body.name}`, reload);
    }));
    function showPrivateKey(keyName, res) {
      clear(created);
      if (!res || !res.private_key) return;
      const url = URL.createObjectURL(new Blob([res.private_key], { type: 'application/x-pem-file' }));
      ctx.onLeave(() => URL.revokeObjectURL(url));
      append(created, h('section', { class: 'card', 'aria-labelledby': 'key-created-title' },
        h('h2', { id: 'key-created-title' }, `Private key for ${keyName}`),
        h('p', { class: 'warning' }, 'This private key is shown once. It cannot be shown again: download it or copy it now.'),
        h('pre', { class: 'key', id: 'private-key', tabindex: '0' }, res.private_key),
        h('div', { class: 'form-actions' },
          h('a', { href: url, download: `${keyName}.pem`, class: 'button primary', id: 'private-key-download' }, 'Download'),
          h('button', { type: 'button', onclick: () => clear(created) }, 'I have saved it; hide'))));
      $('private-key-download').focus();
    }
    append(ctx.el, titleRow(`Key pairs · ${env}`), created, list, form);
    const pager = makePager(ctx, list,
      (token) => api('GET', `${envPath(env)}/key-pairs${qs({ page_token: token })}`),
      (data) => table({ id: 'keys-table' }, ['Name', 'Type', 'Fingerprint', 'Region', 'ID', 'Tags', canChange() ? h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')) : null].filter(Boolean),
        data.items.map((k) => h('tr', { 'data-key-name': k.name },
          h('td', {}, k.name),
          h('td', {}, k.key_type || '—'),
          h('td', { class: 'mono wrap' }, k.fingerprint || '—'),
          h('td', {}, k.region),
          h('td', { class: 'mono' }, k.id || '—'),
          h('td', { class: 'wrap' }, tagList(k.tags)),
          canChange() ? h('td', {}, chg(h('button', {
            type: 'button', class: 'btn-small danger', 'aria-label': `Delete key pair ${k.name}`,
            onclick: async () => {
              if (!confirmDelete(`key pair ${k.name}`)) return;
              try {
                await change(ctx, 'DELETE', `${envPath(env)}/key-pairs/${encodeURIComponent(k.name)}${qs({ region: k.region })}`, undefined, `Delete key pair ${k.name}`, reload);
              } catch (e) { showError(e); }
            },
          }, 'Delete'))) : null))),
      { emptyText: 'No key pairs.', loadingText: 'Loading key pairs…' });
    reload = async () => { if (ctx.alive()) await pager.reset(); };
    await pager.load();
  }

  // ---- Buckets view: the object store's buckets; create one.
  async function viewBuckets(ctx, env) {
    useEnv(env);
    const list = h('div', {});
    let reload = async () => {};
    const name = h('input', { id: 'bucket-name', type: 'text', required: true, autocomplete: 'off' });
    const region = regionSelect(env, 'bucket-region');
    const form = chg(actionForm({ id: 'bucket-form', class: 'card' }, [
      h('h2', {}, 'Create a bucket'),
      h('div', { class: 'form-grid' }, field('Name', name), field('Region', region)),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create bucket')),
    ], async () => {
      const body = { name: name.value.trim() };
      if (region.value) body.region = region.value;
      const res = await api('POST', `${envPath(env)}/buckets`, body);
      name.value = '';
      await reportChange(ctx, res, `Bucket ${body.name}`, reload);
    }));
    append(ctx.el, titleRow(`Objects · ${env}`), list, form);
    const pager = makePager(ctx, list,
      (token) => api('GET', `${envPath(env)}/buckets${qs({ page_token: token })}`),
      (data) => table({ id: 'buckets-table' }, ['Bucket', 'Region', 'Versioning', 'Created', 'Tags'],
        data.items.map((b) => h('tr', { 'data-bucket': b.name },
          h('td', {}, h('a', { href: bucketRoute(env, b.name, '') }, b.name)),
          h('td', {}, b.region),
          h('td', {}, b.versioning || '—'),
          h('td', {}, fmtTime(b.created_at)),
          h('td', { class: 'wrap' }, tagList(b.tags))))),
      { emptyText: 'No buckets.', loadingText: 'Loading buckets…' });
    reload = async () => { if (ctx.alive()) await pager.reset(); };
    await pager.load();
  }

  // ---- Bucket view: breadcrumbs, folders and objects under a prefix; upload, download, presign, delete.
  async function viewBucket(ctx, env, bucket, prefix) {
    useEnv(env);
    const base = `${envPath(env)}/buckets/${encodeURIComponent(bucket)}`;
    const objectUrl = (key) => `${base}/objects/${encKey(key)}`;

    // Breadcrumbs
    const crumbs = [h('li', {}, h('a', { href: route('objects', env) }, 'Buckets')), h('li', {}, h('a', { href: bucketRoute(env, bucket, '') }, bucket))];
    const parts = prefix.split('/').filter((p) => p !== '');
    let acc = '';
    parts.forEach((p) => {
      acc += `${p}/`;
      crumbs.push(h('li', {}, h('a', { href: bucketRoute(env, bucket, acc) }, p)));
    });
    const last = crumbs[crumbs.length - 1].querySelector('a');
    if (last) last.setAttribute('aria-current', 'page');

    const presignBox = h('div', { id: 'presign-result', 'aria-live': 'polite' });
    const list = h('div', {});
    let reload = async () => {};

    // Upload (operators and admins)
    let uploadCard = null;
    if (canChange()) {
      const file = h('input', { type: 'file', id: 'upload-file' });
      const key = h('input', { type: 'text', id: 'upload-key', autocomplete: 'off', placeholder: `${prefix}file name` });
      const bar = h('progress', { id: 'upload-progress', max: '100', value: '0', hidden: true });
      const pct = h('span', { id: 'upload-percent', class: 'muted' });
      const status = h('p', { id: 'upload-status', role: 'status' });
      const submit = h('button', { type: 'submit', id: 'upload-submit', class: 'primary' }, 'Upload');
      file.addEventListener('change', () => {
        const f = file.files && file.files[0];
        key.placeholder = f ? `${prefix}${f.name}` : `${prefix}file name`;
      });
      const form = h('form', { id: 'upload-form', class: 'card' },
        h('h2', {}, 'Upload'),
        h('div', { class: 'form-grid' }, field('File', file), field('Key', key, 'Default: this folder plus the file name.')),
        h('div', { class: 'form-actions' }, submit, h('label', { for: 'upload-progress', class: 'sr-only' }, 'Upload progress'), bar, pct),
        status);
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const f = file.files && file.files[0];
        if (!f) {
          status.textContent = 'Choose a file first.';
          file.focus();
          return;
        }
        const k = key.value.trim() || `${prefix}${f.name}`;
        const xhr = new XMLHttpRequest();
        ctx.onLeave(() => { if (xhr.readyState !== 4) xhr.abort(); });
        xhr.open('PUT', objectUrl(k));
        xhr.setRequestHeader('Content-Type', 'application/octet-stream');
        xhr.setRequestHeader('X-CSRF-Token', S.csrf || '');
        xhr.setRequestHeader('Accept', 'application/json');
        bar.hidden = false;
        bar.value = 0;
        bar.max = 100;
        pct.textContent = '0%';
        status.textContent = `Uploading ${k}…`;
        submit.disabled = true;
        xhr.upload.onprogress = (e) => {
          if (!e.lengthComputable) return;
          bar.max = e.total || 1;
          bar.value = e.loaded;
          pct.textContent = `${Math.floor((e.loaded / (e.total || 1)) * 100)}%`;
        };
        xhr.onload = async () => {
          submit.disabled = false;
          if (!ctx.alive()) return;
          let data = null;
          try { data = JSON.parse(xhr.responseText); } catch (_) { data = null; }
          if (xhr.status === 401) { sessionEnded(); return; }
          if (xhr.status >= 200 && xhr.status < 300) {
            const size = data && typeof data.size === 'number' ? data.size : f.size;
            bar.value = bar.max;
            pct.textContent = '100%';
            status.textContent = `Uploaded ${(data && data.key) || k} (${size} bytes)`;
            file.value = '';
            key.value = '';
            await reload().catch(showError);
          } else {
            const e = (data && data.error) || {};
            const err = new ApiError(xhr.status, e.code, e.message || `Upload failed: ${xhr.status}`, e.field);
            status.textContent = errorText(err);
            showError(err);
          }
        };
        xhr.onerror = () => {
          submit.disabled = false;
          if (!ctx.alive()) return;
          status.textContent = 'The upload failed: the server could not be reached.';
          setStatus(status.textContent, 'error');
        };
        xhr.send(f);
      });
      uploadCard = chg(form);
    }

    append(ctx.el,
      titleRow(`${bucket}${prefix ? ` / ${prefix}` : ''}`, h('button', { type: 'button', onclick: () => reload().catch(showError) }, 'Refresh')),
      h('nav', { 'aria-label': 'Breadcrumbs' }, h('ol', { class: 'breadcrumbs' }, crumbs)),
      uploadCard, presignBox, list);

    async function presign(key) {
      const res = await api('POST', `${base}/presign`, { key, method: 'GET' });
      if (!ctx.alive()) return;
      const input = h('input', { type: 'text', id: 'presign-url', readonly: true, value: res.url });
      const copy = h('button', {
        type: 'button', id: 'presign-copy',
        onclick: async () => {
          try {
            await navigator.clipboard.writeText(res.url);
            setStatus('Link copied.', 'ok');
          } catch (_) {
            input.select();
            setStatus('Select the link and copy it (the clipboard is not available here).', 'info');
          }
        },
      }, 'Copy');
      replace(presignBox, h('section', { class: 'card' },
        h('h2', {}, `Presigned link for ${key}`),
        h('div', { class: 'presign' }, h('label', { for: 'presign-url', class: 'sr-only' }, 'Presigned URL'), input, copy,
          h('button', { type: 'button', onclick: () => clear(presignBox) }, 'Close')),
        h('p', { class: 'muted' }, `${res.method} · valid until ${fmtTime(res.expires_at)} · anyone with the link can use it.`)));
      input.focus();
      input.select();
    }

    const pager = makePager(ctx, list,
      (token) => api('GET', `${base}/objects${qs({ prefix, delimiter: '/', limit: 500, page_token: token })}`),
      (data) => {
        const folders = (data.prefixes || []).map((p) => h('tr', { 'data-prefix': p },
          h('td', {}, '📁 ', h('a', { href: bucketRoute(env, bucket, p) }, p.slice(prefix.length) || p)),
          h('td', { class: 'num' }, '—'), h('td', {}, '—'), h('td', {})));
        const objects = (data.items || []).map((o) => h('tr', { 'data-key': o.key },
          h('td', { class: 'mono wrap' }, o.key.slice(prefix.length) || o.key),
          h('td', { class: 'num', title: `${o.size} bytes` }, fmtBytes(o.size)),
          h('td', {}, fmtTime(o.last_modified)),
          h('td', {}, h('div', { class: 'row' },
            h('a', { class: 'download button btn-small', href: objectUrl(o.key), download: true, 'aria-label': `Download ${o.key}` }, 'Download'),
            h('button', { type: 'button', class: 'btn-small presign-btn', 'aria-label': `Presigned link for ${o.key}`, onclick: () => presign(o.key).catch(showError) }, 'Link'),
            canChange() ? chg(h('button', {
              type: 'button', class: 'btn-small danger', 'aria-label': `Delete ${o.key}`,
              onclick: async () => {
                if (!confirmDelete(`object ${o.key}`)) return;
                try { await change(ctx, 'DELETE', objectUrl(o.key), undefined, `Delete ${o.key}`, reload); } catch (e) { showError(e); }
              },
            }, 'Delete')) : null))));
        return table({ id: 'objects-table' }, ['Name', h('th', { scope: 'col', class: 'num' }, 'Size'), 'Modified', h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions'))], [folders, objects]);
      },
      { emptyText: prefix ? 'Nothing under this prefix.' : 'This bucket is empty.', loadingText: 'Loading objects…', nonEmpty: (d) => (d.prefixes || []).length > 0 });
    reload = async () => { if (ctx.alive()) await pager.reset(); };
    await pager.load();
  }

  // ---- Secrets view: metadata only; a value appears after an explicit Reveal, and can be hidden.
  async function viewSecrets(ctx, env) {
    useEnv(env);
    const list = h('div', {});
    append(ctx.el, titleRow(`Secrets · ${env}`),
      canChange() ? h('p', { class: 'muted' }, 'Values are hidden. Reveals are recorded in the audit log.') : null, list);
    const cols = canChange() ? 9 : 8;
    const pager = makePager(ctx, list,
      (token) => api('GET', `${envPath(env)}/secrets${qs({ limit: 100, page_token: token })}`),
      (data) => table({ id: 'secrets-table' },
        ['Name', 'Description', 'Region', 'Created', 'Last changed', 'Versions', 'Deletion', 'Tags', canChange() ? h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Value')) : null].filter(Boolean),
        data.items.map((s) => {
          const versions = s.versions || {};
          const vtext = Object.entries(versions).map(([v, stages]) => `${v.slice(0, 8)}${stages && stages.length ? ` (${stages.join(', ')})` : ''}`).join('; ');
          const tr = h('tr', { 'data-secret': s.name },
            h('td', { class: 'mono' }, s.name),
            h('td', { class: 'wrap' }, s.description || ''),
            h('td', {}, s.region),
            h('td', {}, fmtTime(s.created_at)),
            h('td', {}, fmtTime(s.last_changed_at)),
            h('td', { class: 'wrap mono', title: vtext }, Object.keys(versions).length ? String(Object.keys(versions).length) : '—'),
            h('td', {}, s.deletion_date ? h('span', { class: 'badge bad' }, fmtTime(s.deletion_date)) : '—'),
            h('td', { class: 'wrap' }, tagList(s.tags)),
            canChange() ? h('td', {}, revealButton(ctx, `secret ${s.name}`, cols, () => tr,
              async () => {
                const v = await api('GET', `${envPath(env)}/secrets/${encodeURIComponent(s.name)}/value${qs({ region: s.region })}`);
                return v.value !== null && v.value !== undefined ? v.value : `(binary, base64) ${v.value_base64 || ''}`;
              })) : null);
          return tr;
        })),
      { emptyText: 'No secrets.', loadingText: 'Loading secrets…' });
    await pager.load();
  }
  // Reveal/Hide: fetches a value on demand into a row below, with the audit note; Hide drops it.
  function revealButton(ctx, what, cols, rowOf, fetchValue) {
    let shown = null;
    const btn = h('button', { type: 'button', class: 'btn-small reveal', 'aria-expanded': 'false', 'aria-label': `Reveal ${what}` }, 'Reveal');
    const hide = () => {
      if (shown) { shown.remove(); shown = null; }
      btn.textContent = 'Reveal';
      btn.setAttribute('aria-expanded', 'false');
      btn.setAttribute('aria-label', `Reveal ${what}`);
    };
    btn.addEventListener('click', async () => {
      if (shown) { hide(); btn.focus(); return; }
      btn.disabled = true;
      try {
        const value = await fetchValue();
        if (!ctx.alive()) return;
        const pre = h('pre', { class: 'secret', tabindex: '0' }, value);
        shown = h('tr', { class: 'revealed' }, h('td', { colspan: cols },
          h('p', { class: 'muted' }, `Value of ${what}. Reveals are recorded in the audit log.`),
          pre,
          h('button', { type: 'button', class: 'btn-small', onclick: () => { hide(); btn.focus(); } }, 'Hide')));
        rowOf().after(shown);
        btn.textContent = 'Hide';
        btn.setAttribute('aria-expanded', 'true');
        btn.setAttribute('aria-label', `Hide ${what}`);
        ctx.onLeave(hide);
      } catch (e) {
        showError(e);
      } finally {
        btn.disabled = false;
      }
    });
    return btn;
  }

  // ---- Parameters view: metadata, plain values shown directly, SecureString values on Reveal.
  async function viewParameters(ctx, env) {
    useEnv(env);
    const q = ctx.query;
    const pathIn = h('input', { id: 'param-path', type: 'text', value: q.get('path') || '', placeholder: '/', autocomplete: 'off' });
    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter parameters' },
      field('Path', pathIn), h('button', { type: 'submit', class: 'primary', id: 'param-apply' }, 'Apply'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      navigate(route('parameters', env) + qs({ path: pathIn.value.trim() }), 'param-apply');
    });
    const list = h('div', {});
    append(ctx.el, titleRow(`Parameters · ${env}`), form,
      canChange() ? h('p', { class: 'muted' }, 'SecureString values are hidden. Reveals are recorded in the audit log.') : null, list);
    const valueUrl = (name) => `${envPath(env)}/parameter-values/${encKey(String(name).replace(/^\/+/, ''))}`;
    const pager = makePager(ctx, list,
      (token) => api('GET', `${envPath(env)}/parameters${qs({ limit: 50, path: q.get('path'), recursive: q.get('path') ? 'true' : '', page_token: token })}`),
      (data) => table({ id: 'parameters-table' }, ['Name', 'Type', 'Version', 'Last modified', 'Description', 'Value'],
        data.items.map((p) => {
          const tr = h('tr', { 'data-parameter': p.name });
          let valueCell;
          if (p.type === 'SecureString') {
            valueCell = canChange()
              ? revealButton(ctx, `parameter ${p.name}`, 6, () => tr, async () => {
                const v = await api('GET', valueUrl(p.name));
                return v.value === null || v.value === undefined ? '' : v.value;
              })
              : h('span', { class: 'muted' }, 'hidden');
          } else {
            valueCell = p.value !== null && p.value !== undefined ? h('code', {}, p.value) : h('span', { class: 'muted' }, '—');
          }
          append(tr,
            h('td', { class: 'mono' }, p.name),
            h('td', {}, p.type),
            h('td', { class: 'num' }, String(p.version)),
            h('td', {}, fmtTime(p.last_modified_at)),
            h('td', { class: 'wrap' }, p.description || ''),
            h('td', { class: 'wrap' }, valueCell));
          return tr;
        })),
      { emptyText: 'No parameters.', loadingText: 'Loading parameters…' });
    await pager.load();
  }

  // ---- Containers view: clusters, their services (scale), a service's events and tasks, task logs.
  async function viewServices(ctx, env) {
    useEnv(env);
    const list = h('div', {}, loading('Loading clusters…'));
    const detail = h('div', { id: 'service-detail' });
    append(ctx.el, titleRow(`Containers · ${env}`, h('button', { type: 'button', onclick: () => load().catch(showError) }, 'Refresh')), list, detail);
    const clusterPath = (c) => `${envPath(env)}/clusters/${encodeURIComponent(c.name)}`;

    function serviceRow(c, s) {
      let scale = null;
      if (canChange()) {
        const input = h('input', { type: 'number', min: '0', value: String(s.desired_count), class: 'port', 'aria-label': `Desired count of ${s.name}` });
        input.id = nextId('desired');
        scale = chg(actionForm({ class: 'row', 'aria-label': `Scale ${s.name}` }, [
          h('label', { for: input.id, class: 'sr-only' }, `Desired count of ${s.name}`), input,
          h('button', { type: 'submit', class: 'btn-small' }, 'Scale'),
        ], async () => {
          const n = parseInt(input.value, 10);
          if (!(n >= 0)) throw new ApiError(0, 'invalid', 'The desired count must be 0 or more.', 'desired_count');
          await change(ctx, 'PATCH', `${clusterPath(c)}/services/${encodeURIComponent(s.name)}${qs({ region: s.region })}`, { desired_count: n }, `Scale ${s.name} to ${n}`, load);
        }));
      }
      return h('tr', { 'data-service': s.name },
        h('td', {}, s.name),
        h('td', {}, badge(s.status)),
        h('td', { class: 'num' }, String(s.desired_count)),
        h('td', { class: 'num' }, String(s.running_count)),
        h('td', { class: 'num' }, String(s.pending_count)),
        h('td', { class: 'mono wrap' }, s.task_definition),
        h('td', {}, s.launch_type || '—'),
        h('td', {}, h('button', { type: 'button', class: 'btn-small', onclick: () => showService(c, s).catch(showError) }, 'Tasks & events')),
        canChange() ? h('td', {}, scale) : null);
    }
    async function clusterCard(c) {
      const body = h('div', {}, loading('Loading services…'));
      const sec = h('section', { class: 'card', 'data-cluster': c.name },
        h('h2', {}, c.name, ' ', badge(c.status)),
        h('p', { class: 'muted' }, `${c.region} · ${c.active_services || 0} services · ${c.running_tasks || 0} running, ${c.pending_tasks || 0} pending tasks`),
        body);
      api('GET', `${clusterPath(c)}/services${qs({ region: c.region })}`).then((d) => {
        if (!ctx.alive()) return;
        const items = d.items || [];
        replace(body, items.length
          ? table({}, ['Service', 'Status', h('th', { scope: 'col', class: 'num' }, 'Desired'), h('th', { scope: 'col', class: 'num' }, 'Running'),
            h('th', { scope: 'col', class: 'num' }, 'Pending'), 'Task definition', 'Launch', h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Details')),
            canChange() ? h('th', { scope: 'col' }, 'Scale') : null].filter(Boolean), items.map((s) => serviceRow(c, s)))
          : empty('No services.'));
      }).catch((e) => { if (ctx.alive()) { replace(body, empty(`Could not load services: ${errorText(e)}`)); showError(e); } });
      return sec;
    }
    async function showService(c, s) {
      replace(detail, card(loading(`Loading ${s.name}…`)));
      const [svc, tasks] = await Promise.all([
        api('GET', `${clusterPath(c)}/services/${encodeURIComponent(s.name)}${qs({ region: s.region })}`),
        api('GET', `${clusterPath(c)}/tasks${qs({ region: s.region, service: s.name })}`),
      ]);
      if (!ctx.alive()) return;
      const logs = h('div', { id: 'task-logs' });
      const events = svc.events || [];
      const taskItems = tasks.items || [];
      replace(detail, h('section', { class: 'card', 'aria-labelledby': 'service-detail-title' },
        h('div', { class: 'row spread' }, h('h2', { id: 'service-detail-title', tabindex: '-1' }, `${c.name} / ${s.name}`),
          h('button', { type: 'button', class: 'btn-small', onclick: () => clear(detail) }, 'Close')),
        (svc.deployments || []).length ? [h('h3', {}, 'Deployments'), table({}, ['ID', 'Status', 'Rollout', 'Task definition', 'Desired', 'Running', 'Pending', 'Created'],
          svc.deployments.map((d) => h('tr', {}, h('td', { class: 'mono' }, d.id), h('td', {}, badge(d.status)), h('td', {}, d.rollout_state || '—'),
            h('td', { class: 'mono wrap' }, d.task_definition), h('td', { class: 'num' }, String(d.desired_count)), h('td', { class: 'num' }, String(d.running_count)),
            h('td', { class: 'num' }, String(d.pending_count)), h('td', {}, fmtTime(d.created_at)))))] : null,
        h('h3', {}, 'Tasks'),
        taskItems.length ? table({ id: 'tasks-table' }, ['Task', 'Last status', 'Desired', 'Started', 'Stopped', 'Reason', h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Logs'))],
          taskItems.map((t) => h('tr', { 'data-task': t.id },
            h('td', { class: 'mono' }, t.id), h('td', {}, badge(t.last_status)), h('td', {}, t.desired_status),
            h('td', {}, fmtTime(t.started_at)), h('td', {}, fmtTime(t.stopped_at)), h('td', { class: 'wrap' }, t.stopped_reason || ''),
            h('td', {}, h('button', { type: 'button', class: 'btn-small', onclick: () => showLogs(c, t, logs).catch(showError) }, 'Logs'))))) : empty('No tasks.'),
        logs,
        h('h3', {}, 'Recent events'),
        events.length ? h('ul', { class: 'plan-list' }, events.map((e) => h('li', {}, h('span', { class: 'muted' }, fmtTime(e.at)), ' ', e.message))) : empty('No events.')));
      $('service-detail-title').focus();
    }
    async function showLogs(c, t, mount) {
      replace(mount, loading('Loading logs…'));
      const d = await api('GET', `${clusterPath(c)}/tasks/${encodeURIComponent(t.id)}/logs${qs({ region: t.region, order: 'newest', limit: 500 })}`);
      if (!ctx.alive()) return;
      const lines = (d.lines || []).slice().reverse();
      const text = lines.map((l) => `${new Date(l.at_ms).toLocaleTimeString()}  ${l.message}`).join('\n');
      replace(mount, h('h3', {}, `Logs of ${t.id}`, d.container ? ` (${d.container})` : ''),
        h('pre', { class: 'logs', id: 'task-log', tabindex: '0' }, text || '(no log lines)'));
      const pre = $('task-log');
      if (pre) pre.scrollTop = pre.scrollHeight;
    }
    async function load() {
      const clusters = await apiAll(`${envPath(env)}/clusters`);
      if (!ctx.alive()) return;
      if (!clusters.length) { replace(list, empty('No clusters.')); return; }
      replace(list, await Promise.all(clusters.map(clusterCard)));
    }
    await load();
  }

  // ---- Start-up: wire the static page (sign-in, header, plan dialog), then ask for the session.
  function init() {
    $('signin-form').addEventListener('submit', onSigninSubmit);
    $('signout').addEventListener('click', onSignout);
    $('env-select').addEventListener('change', onEnvChange);
    $('plan-cancel').addEventListener('click', closePlan);
    $('plan-confirm-text').addEventListener('input', onConfirmInput);
    $('plan-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const go = $('plan-go');
      if (go && !go.disabled) planGo();
    });
    $('plan').addEventListener('close', () => { S.plan = null; });
    window.addEventListener('hashchange', render);
    checkSession();
  }
  init();
})();
