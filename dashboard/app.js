// Footfall's dashboard: a small single-page app over the same Stats API that API clients use
// (POST /api/v2/query), plus the account and management routes. No framework, nothing loaded
// from anywhere but this origin. Every view's state lives in the URL, so any view can be
// bookmarked and shared. Text from the server is only ever set as text, never as HTML.

const main = document.getElementById('main');
const topBar = document.getElementById('top');

let me = null; // the logged-in user: {email, role, csrf}
let shareToken = null; // on a shared link's page
let timer = null; // the realtime refresh

// ---------------------------------------------------------------- helpers

function h(tag, props, ...kids) {
  const el = document.createElementNS(
    tag === 'svg' || props?.svg ? 'http://www.w3.org/2000/svg' : 'http://www.w3.org/1999/xhtml',
    tag,
  );
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false || k === 'svg') continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid !== null && kid !== undefined && kid !== false) {
      el.append(kid instanceof Node ? kid : String(kid));
    }
  }
  return el;
}

const svg = (tag, props, ...kids) => h(tag, { ...props, svg: true }, ...kids);

// `body` is sent as JSON; `raw` (a file) as it is, with the content type `extra` names.
async function api(path, { method = 'GET', body, raw, headers: extra = {} } = {}) {
  const headers = { ...extra };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (me) headers['x-csrf-token'] = me.csrf;
  if (shareToken) headers['x-footfall-share'] = shareToken;
  const r = await fetch(path, {
    method,
    headers,
    body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  if (r.status === 204) return null;
  const type = r.headers.get('content-type') || '';
  const data = type.includes('json') ? await r.json() : await r.blob();
  if (!r.ok) {
    const e = new Error((data && data.error) || r.statusText);
    e.status = r.status;
    e.data = data;
    throw e;
  }
  return data;
}

function download(name, blob) {
  const a = h('a', { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

function go(url) {
  history.pushState(null, '', url);
  route();
}

// Internal links navigate without a reload.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[href^="/"]');
  if (!a || a.hasAttribute('download') || e.ctrlKey || e.metaKey || e.shiftKey || e.button) return;
  e.preventDefault();
  go(a.getAttribute('href'));
});
addEventListener('popstate', () => route());

const numberFormat = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });
const num = (n) => (Math.abs(n) >= 10000 ? numberFormat.format(n) : n.toLocaleString('en'));

function duration(s) {
  const m = Math.floor(s / 60);
  return m ? `${m}m ${s % 60}s` : `${s}s`;
}

function errorBox(e) {
  return h('p', { class: 'error', role: 'alert', text: e.message || String(e) });
}

function form(fields, submit, onsubmit) {
  const status = h('p', { class: 'status', role: 'status' });
  const f = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      status.textContent = '';
      status.className = 'status';
      try {
        const done = await onsubmit(new FormData(f), f);
        if (done) status.textContent = done;
      } catch (err) {
        status.textContent = err.message;
        status.className = 'status error';
      }
    },
  }, fields, h('button', { type: 'submit', text: submit }), status);
  return f;
}

function field(label, props) {
  return h('label', {}, h('span', { text: label }), h('input', props));
}

// ---------------------------------------------------------------- theme and header

const theme = () => localStorage.getItem('footfall_theme');
function applyTheme() {
  const t = theme();
  if (t) document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
}
applyTheme();

function themeButton() {
  return h('button', {
    class: 'ghost',
    title: 'Switch between light and dark',
    'aria-label': 'Switch between light and dark theme',
    text: '◐',
    onclick: () => {
      const dark = theme() ? theme() === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
      localStorage.setItem('footfall_theme', dark ? 'light' : 'dark');
      applyTheme();
    },
  });
}

function header() {
  const nav = [h('a', { class: 'brand', href: shareToken ? location.pathname : '/', text: 'Footfall' })];
  if (me) {
    nav.push(h('a', { href: '/', text: 'Sites' }));
    if (me.role === 'admin') nav.push(h('a', { href: '/users', text: 'Users' }));
    nav.push(
      h('span', { class: 'grow' }),
      h('a', { href: '/account', text: me.email }),
      h('button', {
        class: 'ghost',
        text: 'Log out',
        onclick: async () => {
          await api('/api/auth/logout', { method: 'POST' }).catch(() => {});
          me = null;
          location.href = '/login';
        },
      }),
    );
  } else {
    nav.push(h('span', { class: 'grow' }));
  }
  nav.push(themeButton());
  topBar.replaceChildren(h('nav', { 'aria-label': 'Main' }, nav));
}

// ---------------------------------------------------------------- router

// A shared link in another site's frame (`?embed=true`): no header, the theme and background
// the embedding page asks for (`theme=light|dark|system`, `background=%23f5f5f5`).
let embedded = false;
function embed() {
  const q = new URLSearchParams(location.search);
  if (q.get('embed') !== 'true') return false;
  const t = q.get('theme');
  if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
  else if (t === 'system') delete document.documentElement.dataset.theme;
  const bg = q.get('background') || '';
  if (/^(#[0-9a-f]{3,8}|transparent)$/i.test(bg)) document.body.style.background = bg;
  document.body.classList.add('embed');
  topBar.replaceChildren();
  return true;
}

// The admins' pages (site settings, users) are a second module, loaded when first opened, so
// that a first visit downloads only what every user needs.
const admin = () => import('./admin.js');

export { main, me, h, api, download, go, num, errorBox, form, field, route, copyButton };

async function route() {
  clearInterval(timer);
  const path = location.pathname;
  shareToken = null;
  let m;
  main.replaceChildren(h('p', { class: 'loading', text: 'Loading…' }));
  try {
    if (path === '/login') return await loginPage();
    if ((m = path.match(/^\/(invite|reset)\/([0-9a-f]{64})$/))) return linkPage(m[1], m[2]);
    if ((m = path.match(/^\/share\/([0-9a-f]{48})$/))) {
      shareToken = m[1];
      me = null;
      embedded ||= embed();
      if (!embedded) header();
      return await sharePage();
    }
    me = await api('/api/auth/me').catch(() => null);
    if (!me) {
      location.href = '/login?next=' + encodeURIComponent(path + location.search);
      return;
    }
    header();
    // A server that requires a second factor shows nothing else until it is set up.
    if (me.two_factor?.required && !me.two_factor.enabled) return await accountPage();
    if (path === '/') return await sitesPage();
    if (path === '/account') return await accountPage();
    if (path === '/users') return await (await admin()).usersPage();
    if ((m = path.match(/^\/sites\/([^/]+)\/settings$/))) return await (await admin()).settingsPage(decodeURIComponent(m[1]));
    if ((m = path.match(/^\/sites\/([^/]+)$/))) return await dashboardPage(decodeURIComponent(m[1]));
    main.replaceChildren(h('h1', { text: 'Not found' }));
  } catch (e) {
    main.replaceChildren(errorBox(e));
  }
}

// ---------------------------------------------------------------- login, account

function loginPage() {
  topBar.replaceChildren();
  const next = new URLSearchParams(location.search).get('next') || '/';
  const safeNext = next.startsWith('/') && !next.startsWith('//') ? next : '/';
  // Shown once the server asks for the second factor.
  const code = field('Code from your authenticator app, or a recovery code', {
    name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', maxlength: 32,
  });
  code.hidden = true;
  main.replaceChildren(
    h('section', { class: 'card narrow' },
      h('h1', { text: 'Log in to Footfall' }),
      form(
        [
          field('E-mail', { name: 'email', type: 'email', autocomplete: 'username', required: true, autofocus: true }),
          field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
          code,
        ],
        'Log in',
        async (data) => {
          try {
            me = await api('/api/auth/login', {
              method: 'POST',
              body: { email: data.get('email'), password: data.get('password'), code: data.get('code') || null },
            });
          } catch (e) {
            if (!e.data?.two_factor) throw e;
            code.hidden = false;
            code.querySelector('input').focus();
            return e.message;
          }
          go(safeNext);
        },
      ),
      h('details', { class: 'forgot' }, h('summary', { text: 'Forgot your password?' }),
        form([field('E-mail', { name: 'email', type: 'email', required: true })], 'Send me a link',
          async (data) => (await api('/api/auth/forgot', { method: 'POST', body: { email: data.get('email') } })).text)),
    ),
  );
}

function accountPage() {
  main.replaceChildren(
    h('section', { class: 'card narrow' },
      h('h1', { text: 'Your account' }),
      h('p', { text: `${me.email} · ${me.role}` }),
      h('h2', { text: 'Change password' }),
      form(
        [
          field('Current password', { name: 'current', type: 'password', autocomplete: 'current-password', required: true }),
          field('New password (at least 10 characters)', { name: 'new', type: 'password', autocomplete: 'new-password', minlength: 10, required: true }),
        ],
        'Change password',
        async (data, f) => {
          await api('/api/auth/password', { method: 'POST', body: { current: data.get('current'), new: data.get('new') } });
          f.reset();
          return 'Password changed. Your other sessions are logged out.';
        },
      ),
    ),
    twoFactorCard(),
    sessionsCard(),
  );
}

// A link from an e-mail: an invitation, or a forgotten password's reset. Either sets a password.
function linkPage(kind, token) {
  topBar.replaceChildren();
  const invite = kind === 'invite';
  main.replaceChildren(
    h('section', { class: 'card narrow' },
      h('h1', { text: invite ? 'Welcome to Footfall' : 'Choose a new password' }),
      h('p', { class: 'muted', text: invite ? 'Choose your password to accept the invitation.' : 'The link works once.' }),
      form(
        [field('Password (at least 10 characters)', { name: 'password', type: 'password', autocomplete: 'new-password', minlength: 10, required: true })],
        invite ? 'Accept the invitation' : 'Set the password',
        async (data) => {
          const body = { token, password: data.get('password') };
          if (invite) {
            me = await api('/api/auth/accept-invite', { method: 'POST', body });
            go('/');
            return '';
          }
          await api('/api/auth/reset', { method: 'POST', body });
          main.replaceChildren(h('section', { class: 'card narrow' }, h('h1', { text: 'Password changed' }),
            h('p', {}, 'You were logged out everywhere. ', h('a', { href: '/login', text: 'Log in' }), ' with the new password.')));
          return '';
        },
      )));
}

// Two-factor login: set up with an authenticator app, recovery codes, turning it off.
function twoFactorCard() {
  const tf = me.two_factor || {};
  const box = h('div');
  const codes = (list) => h('div', {},
    h('p', { text: 'Your recovery codes, each good for one login without the app. Keep them somewhere safe; they are not shown again:' }),
    h('pre', { class: 'recovery', text: list.join('\n') }), copyButton(list.join('\n')));
  if (!tf.enabled) {
    const setup = h('div');
    box.append(
      h('p', { class: tf.required ? 'status error' : 'muted', text: tf.required
        ? 'This server requires two-factor login: set it up to go on.'
        : 'Two-factor login is off. With it on, logging in also asks for a code from an authenticator app.' }),
      h('button', { text: 'Set up two-factor login', onclick: async () => {
        const s = await api('/api/auth/two-factor/setup', { method: 'POST' });
        const qr = h('div', { class: 'qr', 'aria-label': 'QR code for your authenticator app' });
        qr.innerHTML = s.qr_svg || '';
        setup.replaceChildren(
          h('p', { text: 'Scan this with your authenticator app, or type the key into it:' }),
          qr,
          h('p', {}, h('code', { class: 'totp-secret', text: s.secret }), ' ', copyButton(s.secret)),
          form([field('Code from the app', { name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', required: true, maxlength: 10 })],
            'Turn on', async (data) => {
              const r = await api('/api/auth/two-factor/enable', { method: 'POST', body: { code: data.get('code') } });
              me.two_factor = { ...tf, enabled: true, recovery_codes_left: r.recovery_codes.length };
              setup.replaceChildren(h('p', { class: 'status', text: 'Two-factor login is on. Your other sessions are logged out.' }), codes(r.recovery_codes),
                h('a', { href: '/', text: 'Go on to your sites' }));
              return '';
            }));
      } }),
      setup);
  } else {
    const fresh = h('div');
    box.append(
      h('p', { text: `Two-factor login is on; ${tf.recovery_codes_left} recovery code(s) left.` }),
      form([field('Code from the app', { name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', required: true, maxlength: 10 })],
        'New recovery codes', async (data, f) => {
          const r = await api('/api/auth/two-factor/recovery-codes', { method: 'POST', body: { code: data.get('code') } });
          f.reset();
          fresh.replaceChildren(codes(r.recovery_codes));
          return 'The old recovery codes no longer work.';
        }),
      fresh,
      !tf.required && form([field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })],
        'Turn off two-factor login', async (data) => {
          await api('/api/auth/two-factor/disable', { method: 'POST', body: { password: data.get('password') } });
          me.two_factor = { ...tf, enabled: false };
          route();
          return '';
        }));
  }
  return h('section', { class: 'card narrow', 'aria-label': 'Two-factor login' }, h('h2', { text: 'Two-factor login' }), box);
}

// The user's login sessions, any of which they can end.
function sessionsCard() {
  const list = h('ul', { class: 'plain' });
  const draw = async () => {
    const { sessions } = await api('/api/auth/sessions');
    list.replaceChildren(...sessions.map((s) => h('li', { class: 'session' },
      h('code', { text: s.id }),
      ` since ${s.created_at ? new Date(s.created_at * 1000).toLocaleString() : 'before this version'}, until ${new Date(s.expires_at * 1000).toLocaleDateString()} `,
      s.current ? h('span', { class: 'muted', text: '(this browser)' })
        : h('button', { class: 'ghost small', text: 'End', 'aria-label': `End session ${s.id}`, onclick: async () => {
          await api(`/api/auth/sessions/${s.id}`, { method: 'DELETE' });
          draw();
        } }))));
  };
  draw().catch((e) => list.replaceChildren(errorBox(e)));
  return h('section', { class: 'card narrow', 'aria-label': 'Sessions' }, h('h2', { text: 'Where you are logged in' }), list);
}

// ---------------------------------------------------------------- sites

async function sitesPage() {
  const { sites } = await api('/api/sites');
  const list = h('ul', { class: 'sites' });
  for (const s of sites) {
    const figure = h('span', { class: 'muted', text: '…' });
    list.append(
      h('li', { class: 'card' },
        h('a', { class: 'site', href: `/sites/${encodeURIComponent(s.domain)}`, text: s.domain }),
        figure,
        me.role === 'admin' && h('a', { class: 'muted', href: `/sites/${encodeURIComponent(s.domain)}/settings`, text: 'Settings' }),
      ),
    );
    query({ site_id: s.domain, metrics: ['visitors'], date_range: '7d' })
      .then((r) => (figure.textContent = `${num(r.results[0]?.metrics[0] || 0)} visitors in 7 days`))
      .catch(() => (figure.textContent = ''));
  }
  main.replaceChildren(
    h('h1', { text: 'Sites' }),
    sites.length ? list : h('p', { text: 'No sites yet.' }),
    me.role === 'admin' &&
      h('section', { class: 'card narrow' },
        h('h2', { text: 'Add a site' }),
        form(
          [
            field('Domain', { name: 'domain', placeholder: 'example.com', required: true }),
            field('Time zone', { name: 'timezone', value: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC', required: true }),
          ],
          'Add site',
          async (data) => {
            const s = await api('/api/sites', { method: 'POST', body: { domain: data.get('domain'), timezone: data.get('timezone') } });
            go(`/sites/${encodeURIComponent(s.domain)}/settings`);
          },
        ),
      ),
  );
}

// ---------------------------------------------------------------- the dashboard

const PERIODS = [
  ['day', 'Today'], ['7d', 'Last 7 days'], ['28d', 'Last 28 days'], ['30d', 'Last 30 days'],
  ['91d', 'Last 91 days'], ['month', 'This month'], ['6mo', 'Last 6 months'],
  ['12mo', 'Last 12 months'], ['year', 'This year'], ['all', 'All time'], ['custom', 'Custom range'],
];

const TOP_STATS = [
  ['visitors', 'Unique visitors'], ['visits', 'Total visits'], ['pageviews', 'Total pageviews'],
  ['views_per_visit', 'Views per visit'], ['bounce_rate', 'Bounce rate'], ['visit_duration', 'Visit duration'],
];
// With a goal filter on, the top stats are the goal's conversions.
const GOAL_STATS = [
  ['visitors', 'Unique conversions'], ['events', 'Total conversions'], ['conversion_rate', 'Conversion rate'],
];
const statsFor = (filters) => (filters.some(([d]) => d === 'event:goal') ? GOAL_STATS : TOP_STATS);
// A rate shown with its unit.
const withUnit = (m, value) => (m === 'bounce_rate' || m === 'conversion_rate' ? `${value}%` : m === 'visit_duration' ? duration(value) : num(value));

const LABELS = {
  'event:page': 'Page', 'visit:entry_page': 'Entry page', 'visit:exit_page': 'Exit page',
  'visit:source': 'Source', 'visit:referrer': 'Referrer', 'visit:channel': 'Channel',
  'visit:utm_medium': 'UTM medium', 'visit:utm_source': 'UTM source', 'visit:utm_campaign': 'UTM campaign',
  'visit:utm_content': 'UTM content', 'visit:utm_term': 'UTM term',
  'visit:country': 'Country', 'visit:country_name': 'Country', 'visit:region_name': 'Region', 'visit:city_name': 'City',
  'visit:device': 'Device', 'visit:browser': 'Browser', 'visit:os': 'Operating system',
  'event:name': 'Event', 'event:goal': 'Goal',
};
// Countries are asked for by code (imported history has codes only) and named by the browser.
const COUNTRY_NAMES = (() => {
  try { return new Intl.DisplayNames(['en'], { type: 'region' }); } catch { return null; }
})();
const countryName = (code) => {
  try { return (COUNTRY_NAMES && COUNTRY_NAMES.of(code)) || code; } catch { return code; }
};
// An empty value as people name it: no source is a direct visit.
const shown = (dim, value) => {
  if (dim === 'visit:country' && value) return countryName(value);
  return value || (dim === 'visit:source' ? 'Direct / None' : '(none)');
};
const label = (dim) => LABELS[dim] || (dim.startsWith('event:props:') ? `Property ${dim.slice(12)}` : dim);

function viewState() {
  const q = new URLSearchParams(location.search);
  const period = PERIODS.some(([p]) => p === q.get('period')) ? q.get('period') : '30d';
  const filters = q.getAll('f').map((f) => {
    const i = f.indexOf('=');
    return i > 0 ? [f.slice(0, i), f.slice(i + 1)] : null;
  }).filter(Boolean);
  const from = q.get('from');
  const to = q.get('to');
  const custom = period === 'custom' && /^\d{4}-\d{2}-\d{2}$/.test(from) && /^\d{4}-\d{2}-\d{2}$/.test(to);
  const range = custom ? [from, to] : period === 'custom' ? '30d' : period;
  let interval = q.get('interval');
  if (!['hour', 'day', 'week', 'month'].includes(interval)) {
    const days = custom ? (Date.parse(to) - Date.parse(from)) / 864e5 : 0;
    interval = range === 'day' || (custom && days < 2) ? 'hour'
      : ['6mo', '12mo', 'year', 'all'].includes(range) || days > 92 ? 'month' : 'day';
  }
  const metric = statsFor(filters).some(([m]) => m === q.get('metric')) ? q.get('metric') : 'visitors';
  return {
    period, from, to, range, interval, compare: q.get('compare') === '1', filters, metric,
    exact: q.get('exact') === '1', imports: q.get('imports') !== '0',
  };
}

// The current URL with some parameters changed (null removes one); `f` takes a list.
function withState(changes) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    q.delete(k);
    if (Array.isArray(v)) for (const x of v) q.append(k, x);
    else if (v !== null && v !== undefined && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return location.pathname + (s ? `?${s}` : '');
}

const apiFilters = (filters) => filters.map(([dim, value]) => ['is', dim, [value]]);

// Called with `meta.sample_rate` of every answer counted from a sample of the visitors.
let onSampled = null;
// Whether questions add imported history, and what is called with each answer's `meta`
// about it.
let withImports = true;
let onImports = null;

function query(body) {
  const asked = { ...body, include: { imports: withImports, ...(body.include || {}) } };
  return api('/api/v2/query', { method: 'POST', body: asked }).then((r) => {
    if (onSampled && r.meta && r.meta.sample_rate < 1) onSampled(r.meta.sample_rate);
    if (onImports && r.meta && 'imports_included' in r.meta) onImports(r.meta);
    return r;
  });
}

function addFilter(dim, value) {
  const { filters } = viewState();
  const kept = filters.filter(([d]) => d !== dim).map(([d, v]) => `${d}=${v}`);
  go(withState({ f: [...kept, `${dim}=${value}`] }));
}

async function sharePage() {
  let sites;
  try {
    ({ sites } = await api('/api/sites'));
  } catch (e) {
    if (e.status === 401 && /password/.test(e.message)) {
      main.replaceChildren(
        h('section', { class: 'card narrow' },
          h('h1', { text: 'This dashboard is protected' }),
          form(
            [field('Password', { name: 'password', type: 'password', required: true, autofocus: true })],
            'Open',
            async (data) => {
              await api('/api/share/unlock', { method: 'POST', body: { token: shareToken, password: data.get('password') } });
              route();
            },
          ),
        ),
      );
      return;
    }
    throw e;
  }
  if (!sites.length) throw new Error('This shared link opens no site.');
  return dashboardPage(sites[0].domain);
}

async function dashboardPage(domain) {
  const v = viewState();
  const base = { site_id: domain, date_range: v.range, filters: apiFilters(v.filters), ...(v.exact ? { sampling: false } : {}) };
  // Large questions are answered from a sample of the visitors: the page says so, with the
  // smallest share any panel used, and offers the exact figures (slower).
  const sampleNote = h('p', { class: 'sample-note', role: 'status', hidden: !v.exact });
  if (v.exact) {
    sampleNote.replaceChildren('Exact figures: every visitor is counted. ',
      h('a', { href: withState({ exact: null }), text: 'Allow estimates (faster)' }));
  }
  // Imported history (Plausible, GA4) is added where it can answer: the page says so, names
  // the panels it leaves out, and can hide it.
  withImports = v.imports;
  const importNote = h('p', { class: 'sample-note import-note', role: 'status', hidden: v.imports });
  if (!v.imports) {
    importNote.replaceChildren('Imported data is hidden. ',
      h('a', { href: withState({ imports: null }), text: 'Show imported data' }));
  }
  let included = false;
  let leftOut = false;
  onImports = (meta) => {
    if (!importNote.isConnected || !v.imports) return;
    included = included || meta.imports_included;
    leftOut = leftOut || ['unsupported_query', 'unsupported_interval'].includes(meta.imports_skip_reason);
    if (!included && !leftOut) return;
    importNote.hidden = false;
    importNote.replaceChildren(
      included ? 'This range includes imported data. ' : '',
      leftOut ? 'Imported data is left out of questions it cannot answer (filters, hours, cities). ' : '',
      h('a', { href: withState({ imports: '0' }), text: 'Hide imported data' }));
  };
  let smallest = 1;
  onSampled = (rate) => {
    if (!sampleNote.isConnected || rate >= smallest) return;
    smallest = rate;
    sampleNote.hidden = false;
    sampleNote.replaceChildren(`Estimated from ${+(rate * 100).toFixed(1)}% of visitors: counts are scaled up from a sample. `,
      h('a', { href: withState({ exact: '1' }), text: 'Show exact figures' }));
  };
  const realtime = h('span', { class: 'live', 'aria-live': 'polite' });
  const refresh = () =>
    api(`/api/v2/realtime?site_id=${encodeURIComponent(domain)}`)
      .then((r) => (realtime.textContent = `● ${r.visitors} current visitor${r.visitors === 1 ? '' : 's'}`))
      .catch(() => {});
  refresh();
  timer = setInterval(refresh, 30000);

  const periodSelect = h('select', {
    'aria-label': 'Date range',
    onchange: (e) => {
      if (e.target.value !== 'custom') go(withState({ period: e.target.value, from: null, to: null, interval: null }));
      else customBox.hidden = false;
    },
  }, PERIODS.map(([p, text]) => h('option', { value: p, selected: p === v.period, text })));
  const today = new Date().toISOString().slice(0, 10);
  const customBox = h('form', {
    class: 'custom',
    hidden: v.period !== 'custom',
    onsubmit: (e) => {
      e.preventDefault();
      const d = new FormData(e.target);
      go(withState({ period: 'custom', from: d.get('from'), to: d.get('to'), interval: null }));
    },
  },
  h('label', {}, 'From ', h('input', { type: 'date', name: 'from', value: v.from || today, required: true })),
  h('label', {}, 'To ', h('input', { type: 'date', name: 'to', value: v.to || today, required: true })),
  h('button', { type: 'submit', text: 'Apply' }));
  const compare = h('label', { class: 'toggle' },
    h('input', { type: 'checkbox', checked: v.compare, onchange: (e) => go(withState({ compare: e.target.checked ? '1' : null })) }),
    ' Compare with previous period');
  const exportButton = h('button', {
    class: 'ghost',
    text: 'Export ZIP',
    onclick: async () => {
      const range = Array.isArray(v.range) ? v.range.join(',') : v.range;
      const q = new URLSearchParams({ site_id: domain, date_range: range, filters: JSON.stringify(base.filters) });
      download(`${domain}.zip`, await api(`/api/v2/export?${q}`));
    },
  });
  const chips = h('div', { class: 'chips', 'aria-label': 'Filters' },
    v.filters.map(([dim, value]) =>
      h('button', {
        class: 'chip',
        title: 'Remove this filter',
        'aria-label': `Remove filter: ${label(dim)} is ${shown(dim, value)}`,
        onclick: () => go(withState({ f: v.filters.filter(([d]) => d !== dim).map(([d, x]) => `${d}=${x}`) })),
      }, `${label(dim)} is ${shown(dim, value)} `, h('span', { 'aria-hidden': 'true', text: '✕' }))),
  );

  main.replaceChildren(
    h('div', { class: 'bar' },
      h('h1', { text: domain }),
      realtime,
      h('span', { class: 'grow' }),
      periodSelect,
      compare,
      exportButton,
      me && me.role === 'admin' && h('a', { class: 'button ghost', href: `/sites/${encodeURIComponent(domain)}/settings`, text: 'Settings' }),
    ),
    customBox,
    chips,
    sampleNote,
    importNote,
    topStats(base, v),
    chart(base, v),
    h('div', { class: 'panels' },
      panel(base, 'Pages', [['Top pages', 'event:page'], ['Entry pages', 'visit:entry_page'], ['Exit pages', 'visit:exit_page']]),
      panel(base, 'Sources', [['Sources', 'visit:source'], ['Referrers', 'visit:referrer'], ['Channels', 'visit:channel'],
        ['Medium', 'visit:utm_medium'], ['UTM source', 'visit:utm_source'], ['Campaign', 'visit:utm_campaign'],
        ['Content', 'visit:utm_content'], ['Term', 'visit:utm_term']]),
      panel(base, 'Locations', [['Countries', 'visit:country'], ['Regions', 'visit:region_name'], ['Cities', 'visit:city_name']]),
      panel(base, 'Devices', [['Devices', 'visit:device'], ['Browsers', 'visit:browser'], ['Operating systems', 'visit:os']]),
      eventsPanel(base, v, domain),
      goalsPanel(base, domain),
    ),
    funnelPanel(base, domain),
  );
}

// A funnel of the site's goals: pick 2 to 8 steps, their order and the span they are counted
// in; each step's visitors with the conversion from the first. The funnel shown is kept in the
// URL (`funnel` per step, `forder`, `fwithin`), so a link or a reload shows it again, over the
// range and filters chosen since.
function funnelPanel(base, domain) {
  const box = h('div');
  const load = async () => {
    const { goals } = await api(`/api/sites/${encodeURIComponent(domain)}/goals`);
    if (goals.length < 2) {
      box.replaceChildren(h('p', { class: 'muted', text: 'A funnel needs two goals or more: an admin adds them in the site settings.' }));
      return;
    }
    const names = goals.map((g) => g.display_name);
    const q = new URLSearchParams(location.search);
    const saved = q.getAll('funnel').filter((n) => names.includes(n)).slice(0, 8);
    const pick = (i, chosen) => h('select', { 'aria-label': `Step ${i + 1}` },
      names.map((n, j) => h('option', { value: n, text: n, selected: chosen ? n === chosen : j === Math.min(i, names.length - 1) })));
    const selects = saved.length >= 2 ? saved.map((n, i) => pick(i, n)) : [pick(0), pick(1)];
    const steps = h('span', { class: 'steps' }, selects);
    const order = h('select', { 'aria-label': 'Order' },
      h('option', { value: 'sequence', text: 'In sequence' }), h('option', { value: 'strict', text: 'Strict order', selected: q.get('forder') === 'strict' }));
    const within = h('select', { 'aria-label': 'Counted within' },
      h('option', { value: 'visit', text: 'One visit' }), h('option', { value: 'day', text: 'The visitor’s day', selected: q.get('fwithin') === 'day' }));
    const result = h('div', { class: 'rows' });
    const show = async () => {
      result.replaceChildren(h('p', { class: 'muted', text: 'Loading…' }));
      const r = await api('/api/v2/funnel', {
        method: 'POST',
        body: { site_id: base.site_id, date_range: base.date_range, filters: base.filters, steps: selects.map((x) => x.value), order: order.value, within: within.value },
      });
      const max = Math.max(1, r.steps[0].visitors);
      result.replaceChildren(
        h('div', { class: 'row head goals' }, h('span', { class: 'label', text: 'Step' }), h('span', { text: 'Visitors' }), h('span', { text: 'Dropoff' }), h('span', { text: 'Conv.' })),
        ...r.steps.map((x, i) => h('div', { class: 'row goals step' },
          h('span', { class: 'fill', 'data-w': Math.round((100 * x.visitors) / max) }),
          h('span', { class: 'label', text: `${i + 1}. ${x.label}` }),
          h('span', { class: 'value', text: num(x.visitors) }),
          h('span', { class: 'value', text: i ? num(x.dropoff) : '' }),
          h('span', { class: 'value', text: `${x.conversion_rate}%` }))),
      );
      for (const f of result.querySelectorAll('.fill')) f.style.width = `${f.dataset.w}%`;
      history.replaceState(null, '', withState({
        funnel: selects.map((x) => x.value), forder: order.value === 'strict' ? 'strict' : null, fwithin: within.value === 'day' ? 'day' : null,
      }));
    };
    const shown = () => show().catch((e) => result.replaceChildren(errorBox(e)));
    box.replaceChildren(
      h('div', { class: 'bar' }, steps,
        h('button', { class: 'ghost small', text: 'Add step', onclick: () => {
          if (selects.length < 8) { selects.push(pick(selects.length)); steps.replaceChildren(...selects); }
        } }),
        order, within,
        h('button', { text: 'Show funnel', onclick: shown })),
      result);
    if (saved.length >= 2) shown();
  };
  load().catch((e) => box.replaceChildren(errorBox(e)));
  return h('section', { class: 'card panel', 'aria-label': 'Funnel' }, h('div', { class: 'bar' }, h('h2', { text: 'Funnel' })), box);
}

// Goals: unique and total conversions, the conversion rate and the revenue of each; a click
// filters by it. Scroll-depth goals have no total (their engagement reports are not events), and
// the revenue column shows when a goal has a currency.
function goalsPanel(base, domain) {
  const body = h('div', { class: 'rows' });
  const load = async () => {
    const { goals } = await api(`/api/sites/${encodeURIComponent(domain)}/goals`);
    if (!goals.length) {
      body.replaceChildren(h('p', { class: 'muted', text: 'No goals yet: an admin adds them in the site settings.' }));
      return;
    }
    const money = goals.some((g) => g.currency);
    const scroll = new Set(goals.filter((g) => g.type === 'scroll').map((g) => g.display_name));
    const metrics = ['visitors', 'events', 'conversion_rate', ...(money ? ['total_revenue'] : [])];
    const r = await query({ ...base, metrics, dimensions: ['event:goal'], pagination: { limit: 100 } });
    const max = Math.max(1, ...r.results.map((x) => x.metrics[0]));
    const cls = `row goals${money ? ' money' : ''}`;
    body.replaceChildren(
      h('div', { class: `${cls} head` }, h('span', { class: 'label', text: 'Goal' }), h('span', { text: 'Uniques' }), h('span', { text: 'Total' }), h('span', { text: 'CR' }),
        ...(money ? [h('span', { text: 'Revenue' })] : [])),
      ...(r.results.length ? r.results.map((x) =>
        h('button', {
          class: cls,
          title: `Filter by goal: ${x.dimensions[0]}`,
          onclick: () => addFilter('event:goal', x.dimensions[0]),
        },
        h('span', { class: 'fill', 'data-w': Math.round((100 * x.metrics[0]) / max) }),
        h('span', { class: 'label', text: x.dimensions[0] }),
        h('span', { class: 'value', text: num(x.metrics[0]) }),
        h('span', { class: 'value', text: scroll.has(x.dimensions[0]) ? '—' : num(x.metrics[1]) }),
        h('span', { class: 'value', text: `${x.metrics[2]}%` }),
        ...(money ? [h('span', { class: 'value', title: x.metrics[3]?.long || '', text: x.metrics[3]?.short || '—' })] : [])))
        : [h('p', { class: 'muted', text: 'No conversions in this range.' })]),
    );
    for (const f of body.querySelectorAll('.fill')) f.style.width = `${f.dataset.w}%`;
  };
  load().catch((e) => body.replaceChildren(errorBox(e)));
  return h('section', { class: 'card panel', 'aria-label': 'Goals' },
    h('div', { class: 'bar' }, h('h2', { text: 'Goals' })), body);
}

function topStats(base, v) {
  const box = h('section', { class: 'stats', 'aria-label': 'Top stats' });
  const STATS = statsFor(v.filters);
  const body = { ...base, metrics: STATS.map(([m]) => m) };
  // The previous period may need raw events that retention has purged (filtered questions
  // need them): then the stats show without their change.
  query({ ...body, include: { comparisons: { mode: 'previous_period' } } })
    .catch((e) => (e.status === 422 ? query(body) : Promise.reject(e)))
    .then((r) => {
      const row = r.results[0] || { metrics: STATS.map(() => 0), comparison: null };
      box.replaceChildren(...STATS.map(([m, text], i) => {
        const value = row.metrics[i];
        const change = row.comparison ? row.comparison.change[i] : null;
        const points = m === 'bounce_rate' || m === 'conversion_rate';
        const better = m === 'bounce_rate' ? change < 0 : change > 0;
        return h('button', {
          class: `stat${m === v.metric ? ' selected' : ''}`,
          'aria-pressed': String(m === v.metric),
          'data-metric': m,
          onclick: () => go(withState({ metric: m === 'visitors' ? null : m })),
        },
        h('span', { class: 'name', text }),
        h('span', { class: 'value', text: withUnit(m, value) }),
        change !== null && change !== 0 &&
          h('span', { class: `change ${better ? 'up' : 'down'}`, text: `${change > 0 ? '↑' : '↓'} ${Math.abs(change)}${points ? ' pt' : '%'}` }));
      }));
    })
    .catch((e) => box.replaceChildren(errorBox(e)));
  return box;
}

function chart(base, v) {
  const box = h('section', { class: 'card chart' });
  const intervals = h('select', {
    'aria-label': 'Interval',
    onchange: (e) => go(withState({ interval: e.target.value })),
  }, ['hour', 'day', 'week', 'month'].map((i) => h('option', { value: i, selected: i === v.interval, text: `By ${i}` })));
  const metricName = statsFor(v.filters).find(([m]) => m === v.metric)[1];
  // Over time, a conversion rate is each bucket's own.
  const asked = v.metric === 'conversion_rate' ? 'group_conversion_rate' : v.metric;
  const draw = async () => {
    const body = { ...base, metrics: [asked], dimensions: [`time:${v.interval}`], include: { time_labels: true } };
    const r = await query(v.compare ? { ...body, include: { ...body.include, comparisons: { mode: 'previous_period' } } } : body)
      .catch((e) => (e.status === 422 ? query(body) : Promise.reject(e)));
    const labels = r.meta.time_labels || [];
    const byLabel = new Map(r.results.map((x) => [x.dimensions[0], x.metrics[0]]));
    const series = [labels.map((l) => byLabel.get(l) || 0)];
    const c = v.compare && r.query.comparison_date_range &&
      await query({ ...body, date_range: r.query.comparison_date_range, include: { time_labels: true } })
        .catch((e) => (e.status === 422 ? null : Promise.reject(e)));
    if (c) {
      const cl = c.meta.time_labels || [];
      const cBy = new Map(c.results.map((x) => [x.dimensions[0], x.metrics[0]]));
      series.push(labels.map((_, i) => cBy.get(cl[i]) || 0));
    }
    // The range's notes, each on the last interval that starts on or before its day.
    const [from, to] = [].concat(r.query.date_range).map((d) => String(d).slice(0, 10));
    const notesPath = `/api/sites/${encodeURIComponent(base.site_id)}/annotations`;
    const { annotations: notes } = await api(`${notesPath}?from=${from}&to=${to || from}`).catch(() => ({ annotations: [] }));
    const at = (d) => { const i = labels.findIndex((l) => l.startsWith(d)); return i >= 0 ? i : labels.map((l) => l.slice(0, 10) <= d).lastIndexOf(true); };
    const marks = notes.map((n) => ({ ...n, i: at(n.date) })).filter((n) => n.i >= 0);
    const isAdmin = me && me.role === 'admin';
    const noteForm = isAdmin && h('form', {
      class: 'custom',
      hidden: true,
      onsubmit: async (e) => {
        e.preventDefault();
        const d = new FormData(e.target);
        await api(notesPath, { method: 'POST', body: { date: d.get('date'), text: d.get('text'), personal: d.get('personal') === 'on' } })
          .then(draw, (err) => e.target.append(errorBox(err)));
      },
    },
    h('label', {}, 'Day ', h('input', { type: 'date', name: 'date', value: to || from, required: true })),
    h('label', {}, 'Note ', h('input', { name: 'text', maxlength: 500, required: true })),
    h('label', { class: 'toggle' }, h('input', { type: 'checkbox', name: 'personal' }), ' Only for me'),
    h('button', { type: 'submit', text: 'Add' }));
    box.replaceChildren(
      h('div', { class: 'bar' }, h('h2', { text: metricName }), h('span', { class: 'grow' }),
        isAdmin && h('button', { class: 'ghost', text: 'Add note', onclick: () => (noteForm.hidden = !noteForm.hidden) }), intervals),
      noteForm || '',
      plot(labels, series, v.metric, marks),
      h('ul', { class: 'notes', 'aria-label': 'Notes' }, marks.map((n) => h('li', {},
        h('b', { text: n.date }), ` ${n.text}${n.personal ? ' (only you)' : ''} `,
        isAdmin && h('button', { class: 'ghost', 'aria-label': `Delete note: ${n.text}`, text: '✕', onclick: () => api(`${notesPath}/${n.id}`, { method: 'DELETE' }).then(draw) })))),
    );
  };
  draw().catch((e) => box.replaceChildren(errorBox(e)));
  return box;
}

function plot(labels, series, metric, notes = []) {
  const W = 800, H = 220, L = 48, B = 24, T = 10;
  const max = Math.max(1, ...series.flat());
  const step = 10 ** Math.floor(Math.log10(max));
  let ceil = Math.ceil(max / step) * step;
  // An even small ceiling keeps the middle line on a whole number.
  if (ceil < 10 && ceil % 2) ceil += 1;
  const x = (i) => L + (labels.length < 2 ? (W - L) / 2 : (i * (W - L - 8)) / (labels.length - 1));
  const y = (val) => T + (H - T - B) * (1 - val / ceil);
  const fmt = (val) => (metric === 'bounce_rate' ? `${val}%` : metric === 'visit_duration' ? duration(Math.round(val)) : num(val));
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${series[0].reduce((a, b) => a + b, 0)} in total over ${labels.length} intervals` });
  for (const frac of [0, 0.5, 1]) {
    g.append(
      svg('line', { x1: L, x2: W, y1: y(ceil * frac), y2: y(ceil * frac), class: 'grid' }),
      svg('text', { x: L - 6, y: y(ceil * frac) + 4, 'text-anchor': 'end', class: 'axis' }, fmt(ceil * frac)),
    );
  }
  for (const i of [...new Set([0, Math.floor((labels.length - 1) / 2), labels.length - 1])]) {
    if (labels[i] !== undefined) {
      g.append(svg('text', { x: x(i), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === labels.length - 1 ? 'end' : 'middle', class: 'axis' }, labels[i].replace('T', ' ').slice(0, 16)));
    }
  }
  for (const n of notes) {
    g.append(svg('line', { x1: x(n.i), x2: x(n.i), y1: T, y2: H - B, class: 'note' }),
      svg('text', { x: x(n.i), y: T + 8, 'text-anchor': 'middle', class: 'note' }, '▾', svg('title', {}, `${n.date}: ${n.text}`)));
  }
  series.forEach((values, s) => {
    g.append(svg('polyline', { class: s ? 'line previous' : 'line', points: values.map((val, i) => `${x(i)},${y(val)}`).join(' ') }));
    if (!s) {
      values.forEach((val, i) =>
        g.append(svg('circle', { cx: x(i), cy: y(val), r: 3, class: 'dot' },
          svg('title', {}, `${labels[i]}: ${fmt(val)}${series[1] ? ` (before: ${fmt(series[1][i])})` : ''}`))));
    }
  });
  return g;
}

function toCsv(header, rows) {
  const cell = (c) => {
    let s = String(c ?? '');
    if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [header, ...rows].map((r) => r.map(cell).join(',')).join('\r\n') + '\r\n';
}

// A panel of tabs, each the top values of one dimension; a click on a row filters by it.
function panel(base, title, tabs, opts = {}) {
  let current = 0;
  const body = h('div', { class: 'rows' });
  const tabBar = h('div', { class: 'tabs', role: 'tablist' });
  const metrics = opts.metrics || ['visitors'];
  const load = async () => {
    const [, dim] = tabs[current];
    body.replaceChildren(h('p', { class: 'muted', text: 'Loading…' }));
    const r = await query({ ...base, metrics, dimensions: [dim], filters: [...base.filters, ...(opts.filters || [])], pagination: { limit: 100 } });
    const rows = r.results.filter((x) => !(opts.skip || []).includes(x.dimensions[0])).slice(0, 10);
    const max = Math.max(1, ...rows.map((x) => x.metrics[0]));
    body.replaceChildren(
      h('div', { class: 'row head' }, h('span', { text: label(dim) }), h('span', { text: opts.metricLabel || 'Visitors' })),
      ...(rows.length ? rows.map((x) =>
        h('button', {
          class: 'row',
          title: `Filter by ${label(dim)}: ${shown(dim, x.dimensions[0])}`,
          onclick: () => (opts.onrow ? opts.onrow(x.dimensions[0]) : addFilter(dim, x.dimensions[0])),
        },
        h('span', { class: 'fill', 'data-w': Math.round((100 * x.metrics[0]) / max) }),
        h('span', { class: 'label', text: shown(dim, x.dimensions[0]) }),
        h('span', { class: 'value', text: num(x.metrics[0]) })))
        : [h('p', { class: 'muted', text: 'No data for this range.' })]),
    );
    for (const f of body.querySelectorAll('.fill')) f.style.width = `${f.dataset.w}%`;
  };
  const select = (i) => {
    current = i;
    [...tabBar.children].forEach((b, j) => b.setAttribute('aria-selected', String(i === j)));
    load().catch((e) => body.replaceChildren(errorBox(e)));
  };
  tabs.forEach(([text], i) => tabBar.append(h('button', { role: 'tab', text, onclick: () => select(i) })));
  const csv = h('button', {
    class: 'ghost small',
    text: 'CSV',
    title: `Download ${title.toLowerCase()} as CSV`,
    onclick: async () => {
      const [name, dim] = tabs[current];
      const all = [...metrics, ...(metrics.includes('visits') ? [] : ['visits']), 'pageviews'];
      // A download is a record: exact, never scaled up from a sample.
      const r = await query({ ...base, metrics: all, dimensions: [dim], filters: [...base.filters, ...(opts.filters || [])], pagination: { limit: 10000 }, sampling: false });
      const rows = r.results.map((x) => [...x.dimensions, ...x.metrics]);
      const file = name.toLowerCase().replace(/\W+/g, '_');
      download(`${base.site_id}-${file}.csv`, new Blob([toCsv([label(dim), ...all], rows)], { type: 'text/csv' }));
    },
  });
  select(0);
  return h('section', { class: 'card panel', 'aria-label': title },
    h('div', { class: 'bar' }, h('h2', { text: title }), h('span', { class: 'grow' }), csv),
    tabBar, body, opts.extra);
}

// Custom events, and the properties of one event.
function eventsPanel(base, v, domain) {
  const props = h('div', { class: 'props' });
  const showProps = async (name) => {
    const range = Array.isArray(v.range) ? v.range.join(',') : v.range;
    const q = new URLSearchParams({ site_id: domain, name, date_range: range });
    const { props: keys } = await api(`/api/v2/props?${q}`);
    props.replaceChildren(
      h('h3', { text: `Properties of “${name}”` }),
      keys.length ? h('div', { class: 'panels' }, keys.slice(0, 6).map((k) =>
        panel(base, k.key, [[k.key, `event:props:${k.key}`]], {
          metrics: ['visitors', 'events'],
          filters: [['is', 'event:name', [name]]],
        }))) : h('p', { class: 'muted', text: 'This event has no properties in this range.' }),
    );
    props.scrollIntoView({ block: 'nearest' });
  };
  return panel(base, 'Custom events', [['Events', 'event:name']], {
    metrics: ['visitors', 'events'],
    skip: ['pageview', 'engagement'],
    onrow: (name) => showProps(name).catch((e) => props.replaceChildren(errorBox(e))),
    extra: h('div', {},
      h('p', { class: 'muted small', text: 'Click an event for its properties.' }),
      props),
  });
}

function copyButton(text) {
  return h('button', {
    class: 'ghost small',
    text: 'Copy',
    onclick: async (e) => {
      await navigator.clipboard.writeText(typeof text === 'function' ? text() : text).catch(() => {});
      e.target.textContent = 'Copied';
    },
  });
}

route();
