// Footfall's dashboard: the admins' pages (a site's settings, the users), loaded by app.js
// when one is first opened. The same rules hold: text from the server is only set as text.

import { main, me, h, api, download, go, num, errorBox, form, field, route, copyButton } from './app.js';

// ---------------------------------------------------------------- settings

export async function settingsPage(domain) {
  const s = await api(`/api/sites/${encodeURIComponent(domain)}/settings`);
  const path = `/api/sites/${encodeURIComponent(domain)}`;
  const secret = (text) => h('p', { class: 'secret' }, h('code', { text }), ' ', copyButton(text));
  const keysBox = h('div');
  const sharesBox = h('div');
  const drawKeys = (keys) =>
    keysBox.replaceChildren(
      h('ul', { class: 'plain' }, keys.map((k) =>
        h('li', {}, h('code', { text: k.id }), ` created ${new Date(k.created_at * 1000).toLocaleDateString()} `,
          k.revoked ? h('span', { class: 'muted', text: 'revoked' })
            : h('button', { class: 'ghost small', text: 'Revoke', onclick: async () => {
              await api(`${path}/keys/${k.id}`, { method: 'DELETE' });
              route();
            } })))),
    );
  const drawShares = (shares) =>
    sharesBox.replaceChildren(
      h('ul', { class: 'plain' }, shares.map((l) =>
        h('li', {}, h('code', { text: l.id }), ` ${l.label || ''}${l.password ? ' (password)' : ''}${l.embed_origins?.length ? ` (embedded by ${l.embed_origins.join(', ')})` : ''} `,
          h('button', { class: 'ghost small', text: 'Revoke', onclick: async () => {
            await api(`${path}/shares/${l.id}`, { method: 'DELETE' });
            route();
          } })))),
    );
  drawKeys(s.keys);
  drawShares(s.shares);
  const importsBox = h('div');
  const drawImports = (imports) =>
    importsBox.replaceChildren(imports.length === 0
      ? h('p', { class: 'muted', text: 'No imports yet.' })
      : h('ul', { class: 'plain' }, imports.map((i) =>
        h('li', {}, `${i.source === 'plausible' ? 'Plausible' : i.source}: ${i.origin}, ${i.first_day} to ${i.last_day}, `
          + `${num(i.days)} days, ${num(i.rows)} rows${i.complete ? '' : ' (interrupted: delete it and import again)'} `,
        h('button', { class: 'ghost small', text: 'Delete', 'aria-label': `Delete import ${i.origin}`, onclick: async () => {
          await api(`${path}/imports/${i.id}`, { method: 'DELETE' });
          drawImports((await api(`${path}/settings`)).imports);
        } })))));
  drawImports(s.imports);
  const importStatus = h('p', { role: 'status' });
  const upload = h('input', { type: 'file', accept: '.zip,application/zip', 'aria-label': 'Plausible export (ZIP)' });
  const newKey = h('div');
  const newShare = h('div');
  main.replaceChildren(
    h('div', { class: 'bar' }, h('h1', {}, 'Settings: ', h('a', { href: `/sites/${encodeURIComponent(domain)}`, text: domain }))),
    h('section', { class: 'card' },
      h('h2', { text: 'Tracking snippet' }),
      h('p', { text: 'Paste this into the <head> of every page of the site:' }),
      secret(s.snippet)),
    h('section', { class: 'card' },
      h('h2', { text: 'Site' }),
      form(
        [
          field('Domain', { name: 'domain', value: s.site.domain, required: true }),
          field('Time zone', { name: 'timezone', value: s.site.timezone, required: true }),
        ],
        'Save',
        async (data) => {
          const site = await api(path, { method: 'PUT', body: { domain: data.get('domain'), timezone: data.get('timezone') } });
          if (site.domain !== domain) go(`/sites/${encodeURIComponent(site.domain)}/settings`);
          return 'Saved.';
        },
      ),
      h('p', { class: 'muted', text: `Retention: raw events ${s.rules.raw_days} days, daily aggregates ${s.rules.aggregate_days} days `
        + `(the server keeps at most ${s.raw_retention_days} and ${s.aggregate_retention_days}; see Retention and exclusions below).` })),
    h('section', { class: 'card' },
      h('h2', { text: 'Stats API keys' }),
      keysBox,
      h('button', { text: 'New API key', onclick: async () => {
        const k = await api(`${path}/keys`, { method: 'POST' });
        newKey.replaceChildren(h('p', { text: 'Copy the key now; it is not shown again:' }), secret(k.key));
        drawKeys([...s.keys, { id: k.id, created_at: Date.now() / 1000, revoked: false }]);
      } }),
      newKey),
    h('section', { class: 'card' },
      h('h2', { text: 'Imports and exports' }),
      h('p', { class: 'muted', text: 'Bring your history from Plausible: upload the ZIP from its Imports & Exports settings. '
        + 'Days this site has data of its own for are left out. Access logs and larger files: footfall import (see the README).' }),
      importsBox,
      h('p', {}, upload, ' ', h('button', { text: 'Import', onclick: async () => {
        const file = upload.files[0];
        if (!file) return;
        importStatus.textContent = 'Importing…';
        try {
          const r = await api(`${path}/imports/plausible`, {
            method: 'POST',
            raw: file,
            headers: { 'content-type': 'application/zip', 'x-file-name': file.name.replace(/[^\x20-\x7e]/g, '_') },
          });
          importStatus.textContent = r.text;
          drawImports((await api(`${path}/settings`)).imports);
        } catch (e) {
          importStatus.replaceChildren(errorBox(e));
        }
      } })),
      importStatus,
      h('button', { class: 'ghost', text: 'Export as Plausible CSV', onclick: async () => {
        const stamp = new Date().toISOString().slice(0, 10).replaceAll('-', '');
        download(`${domain.replaceAll('.', '_')}_${stamp}.zip`, await api(`${path}/export/plausible`));
      } })),
    h('section', { class: 'card' },
      h('h2', { text: 'Shared links' }),
      h('p', { class: 'muted', text: 'A shared link opens a read-only dashboard of this site to anyone who has it.' }),
      sharesBox,
      form(
        [
          field('Label', { name: 'label', maxlength: 100 }),
          field('Password (optional)', { name: 'password', type: 'password', autocomplete: 'new-password', minlength: 10 }),
          field('Pages that may embed it (origins, optional)', { name: 'embed', placeholder: 'https://blog.example.com' }),
        ],
        'New shared link',
        async (data, f) => {
          const origins = String(data.get('embed') || '').split(/[\s,]+/).filter(Boolean);
          const l = await api(`${path}/shares`, { method: 'POST', body: { label: data.get('label'), password: data.get('password') || null, embed_origins: origins } });
          f.reset();
          newShare.replaceChildren(h('p', { text: 'Copy the link now; it is not shown again:' }), secret(l.url),
            origins.length > 0 && secret(`<iframe src="${l.url}?embed=true&theme=system" style="width:100%;height:1600px;border:0" loading="lazy"></iframe>`));
          s.shares.push({ id: l.id, label: data.get('label'), password: !!data.get('password') });
          drawShares(s.shares);
        },
      ),
      newShare),
    goalsSettings(path, s.goals),
    noticeSettings(path),
    subjectSettings(path),
    rulesSettings(path, s),
    mailSettings(path),
    dangerSettings(path, domain),
  );
}

// The site's own retention (shorter than the server's) and the requests it does not record.
function rulesSettings(path, s) {
  const r = s.rules.settings;
  const lines = (v) => (v || []).join('\n');
  const split = (v) => String(v || '').split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
  const area = (label, name, value, placeholder) => h('label', {}, h('span', { text: label }),
    h('textarea', { name, rows: 3, placeholder, text: value }));
  const days = (label, name, value, max) => field(label, { name, type: 'number', min: 1, max, value: value ?? '', placeholder: `${max} (the server's)` });
  return h('section', { class: 'card' },
    h('h2', { text: 'Retention and exclusions' }),
    h('p', { class: 'muted', text: 'Keep data for less time than the server does; leave out requests (before any hash) by address or '
      + 'network, country, page (* for any characters) or host name.' }),
    form(
      [
        days('Keep raw events (days)', 'raw', r.raw_retention_days, s.raw_retention_days),
        days('Keep daily totals (days)', 'aggregate', r.aggregate_retention_days, s.aggregate_retention_days),
        area('Exclude addresses and networks', 'ips', lines(r.exclude_ips), '203.0.113.7\n10.0.0.0/8'),
        area('Exclude countries (two-letter codes)', 'countries', lines(r.exclude_countries), 'DK US'),
        area('Exclude pages', 'pages', lines(r.exclude_pages), '/admin/*'),
        area('Record only these host names (empty: all)', 'hosts', lines(r.allowed_hostnames), 'example.com\n*.example.com'),
      ],
      'Save retention and exclusions',
      async (data) => {
        const n = (v) => (v === '' || v === null ? null : Number(v));
        const saved = await api(`${path}/rules`, {
          method: 'PUT',
          body: {
            raw_retention_days: n(data.get('raw')),
            aggregate_retention_days: n(data.get('aggregate')),
            exclude_ips: split(data.get('ips')),
            exclude_countries: split(data.get('countries')),
            exclude_pages: split(data.get('pages')),
            allowed_hostnames: split(data.get('hosts')),
          },
        });
        return `Saved: raw events kept ${saved.raw_days} days, daily totals ${saved.aggregate_days} days; `
          + `${saved.settings.exclude_ips.length} address(es), ${saved.settings.exclude_countries.length} country(ies), `
          + `${saved.settings.exclude_pages.length} page(s) excluded.`;
      },
    ));
}

// Reports and alerts by e-mail, and what became of the messages sent.
function mailSettings(path) {
  const box = h('div');
  const outbox = h('div');
  const split = (v) => String(v || '').split(/[\s,;]+/).map((x) => x.trim()).filter(Boolean);
  const check = (name, on, text) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name, checked: on }), ` ${text}`);
  const area = (label, name, list) => h('label', {}, h('span', { text: label }),
    h('textarea', { name, rows: 2, placeholder: 'ann@example.com', text: list.join('\n') }));
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : '');
  const drawOutbox = (m) => outbox.replaceChildren(m.outbox.length === 0
    ? h('p', { class: 'muted', text: 'Nothing sent yet.' })
    : h('table', {},
      h('thead', {}, h('tr', {}, ['Message', 'To', 'State', ''].map((t) => h('th', { text: t })))),
      h('tbody', {}, m.outbox.map((d) => h('tr', {},
        h('td', { text: `${d.kind} ${d.period.split(' ')[0]}` }),
        h('td', { text: d.to }),
        h('td', { text: d.status === 'sent' ? `sent ${when(d.sent_at)}`
          : d.status === 'failed' ? `given up after ${d.attempts} attempts: ${d.last_error}`
            : d.attempts ? `attempt ${d.attempts} failed (${d.last_error}); next ${when(d.next_at)}` : 'waiting' }),
        h('td', {}, ['pending', 'failed'].includes(d.status) && d.attempts > 0 && h('button', { class: 'ghost small', text: 'Retry now', onclick: async () => {
          drawOutbox(await api(`${path}/mail/retry/${encodeURIComponent(d.id)}`, { method: 'POST' }));
        } })))))));
  const draw = (m) => {
    const s = m.settings;
    box.replaceChildren(
      m.unavailable && h('p', { class: 'status error', text: `Nothing can be sent yet: ${m.unavailable}.` }),
      form(
        [
          check('weekly', s.weekly, 'Weekly report (Mondays from 08:00, site time)'),
          check('monthly', s.monthly, 'Monthly report (the 1st from 08:00)'),
          area('Report recipients (any addresses)', 'recipients', s.recipients),
          field('Spike alert: current visitors at or above', { name: 'spike', type: 'number', min: 1, value: s.spike_threshold ?? '' }),
          field('Drop alert: visitors in 12 hours below', { name: 'drop', type: 'number', min: 1, value: s.drop_threshold ?? '' }),
          area('Alert recipients', 'alerts', s.alert_recipients),
        ],
        'Save reports and alerts',
        async (data) => {
          const n = (v) => (v ? Number(v) : null);
          const saved = await api(`${path}/mail`, {
            method: 'PUT',
            body: {
              weekly: data.get('weekly') === 'on',
              monthly: data.get('monthly') === 'on',
              recipients: split(data.get('recipients')),
              spike_threshold: n(data.get('spike')),
              drop_threshold: n(data.get('drop')),
              alert_recipients: split(data.get('alerts')),
            },
          });
          drawOutbox(saved);
          return `Saved: reports to ${saved.settings.recipients.length}, alerts to ${saved.settings.alert_recipients.length} address(es).`;
        },
      ),
      h('p', {}, ['weekly', 'monthly'].map((kind) => h('button', { class: 'ghost', text: `Send last ${kind === 'weekly' ? "week's" : "month's"} report now`, onclick: async () => {
        try {
          drawOutbox(await api(`${path}/mail/send`, { method: 'POST', body: { kind } }));
        } catch (e) {
          outbox.replaceChildren(errorBox(e));
        }
      } }))),
    );
    drawOutbox(m);
  };
  api(`${path}/mail`).then(draw).catch((e) => box.replaceChildren(errorBox(e)));
  return h('section', { class: 'card' },
    h('h2', { text: 'Reports and alerts by e-mail' }),
    h('p', { class: 'muted', text: 'Each message has a one-click unsubscribe link. A failed send is tried again, '
      + 'after 1, 5 and 15 minutes, then 1, 3, 6 and 12 hours.' }),
    box,
    h('h3', { text: 'Sent and waiting' }),
    outbox);
}

// Purging some of the site's events, resetting its statistics, deleting it.
function dangerSettings(path, domain) {
  const out = h('p', { class: 'muted', role: 'status' });
  const confirmField = () => field(`Type ${domain} to confirm`, { name: 'confirm', required: true, autocomplete: 'off' });
  return h('section', { class: 'card danger' },
    h('h2', { text: 'Delete data' }),
    h('p', { class: 'muted', text: 'Purge the events of some pages (* for any characters), of some days, or both. None of this can be undone.' }),
    form(
      [
        field('Pages', { name: 'path', placeholder: '/account/*' }),
        field('From (site’s day)', { name: 'from', type: 'date' }),
        field('To (site’s day)', { name: 'to', type: 'date' }),
      ],
      'Purge',
      async (data) => {
        const v = (k) => data.get(k) || null;
        const r = await api(`${path}/purge`, { method: 'POST', body: { path: v('path'), from: v('from'), to: v('to') } });
        out.textContent = r.text;
        return 'Purged.';
      },
    ),
    h('h3', { text: 'Reset statistics' }),
    h('p', { class: 'muted', text: 'Deletes all events, totals and imports; goals, keys, links and settings stay.' }),
    form([confirmField()], 'Reset statistics', async (data, f) => {
      const r = await api(`${path}/reset`, { method: 'POST', body: { confirm: data.get('confirm') } });
      f.reset();
      out.textContent = r.text;
      return 'Reset.';
    }),
    h('h3', { text: 'Delete site' }),
    h('p', { class: 'muted', text: 'Deletes the site and everything of it.' }),
    form([confirmField()], 'Delete site', async (data) => {
      await api(path, { method: 'DELETE', body: { confirm: data.get('confirm') } });
      go('/');
      return '';
    }),
    out);
}

// The privacy notice, written by the server from its configuration, to copy into the site.
function noticeSettings(path) {
  const text = h('textarea', { name: 'notice', rows: 14, readonly: true, 'aria-label': 'Privacy notice' });
  const pick = (name, label, options) => h('label', {}, h('span', { text: label }),
    h('select', { name }, options.map(([v, t]) => h('option', { value: v, text: t }))));
  return h('section', { class: 'card' },
    h('h2', { text: 'Privacy notice' }),
    h('p', { class: 'muted', text: 'What Footfall records for this site, how long it keeps it and the visitors’ rights, written from this '
      + 'server’s settings (retention, location, storage). Paste it into the site’s privacy policy; it changes when the settings do.' }),
    form(
      [
        pick('lang', 'Language', [['en', 'English'], ['da', 'Danish']]),
        pick('format', 'Format', [['md', 'Markdown'], ['html', 'HTML']]),
        field('Who is responsible (name, address, contact)', { name: 'controller', maxlength: 500 }),
      ],
      'Write notice',
      async (data) => {
        const q = new URLSearchParams({ lang: data.get('lang'), format: data.get('format'), controller: data.get('controller') });
        text.value = (await api(`${path}/privacy-notice?${q}`)).notice;
        return 'Written from the current settings.';
      },
    ),
    text, copyButton(() => text.value));
}

// A visitor's request to see or erase their events: found by the address and user-agent they
// used, while that day's salt exists.
function subjectSettings(path) {
  const out = h('pre', { class: 'subject' });
  return h('section', { class: 'card' },
    h('h2', { text: 'Visitor requests' }),
    h('p', { class: 'muted', text: 'A visitor who asks what this site holds about them, or asks for it to be deleted: their events can be '
      + 'found for 48 hours from the start of the day of the visit, by the IP address and the exact user-agent they used (a browser '
      + 'shows its own as navigator.userAgent). After that nothing links any event to them, and the answer says so.' }),
    form(
      [
        field('IP address', { name: 'ip', required: true, maxlength: 64 }),
        field('User-agent', { name: 'ua', required: true, maxlength: 1024 }),
        h('label', {}, h('span', { text: 'Action' }),
          h('select', { name: 'action' }, h('option', { value: 'find', text: 'Show their events' }), h('option', { value: 'erase', text: 'Erase their events' }))),
      ],
      'Answer the request',
      async (data) => {
        const erase = data.get('action') === 'erase';
        if (erase && !confirm('Erase this visitor’s events? This cannot be undone.')) return '';
        const r = await api(`${path}/subject`, { method: 'POST', body: { ip: data.get('ip'), ua: data.get('ua'), erase } });
        out.textContent = r.text;
        return erase ? `Erased ${r.events} event(s).` : `Found ${r.events} event(s).`;
      },
    ),
    out);
}

// The site's goals: listed with Delete, and a form that adds one.
function goalsSettings(path, initial) {
  const list = h('div');
  const draw = (goals) =>
    list.replaceChildren(goals.length === 0
      ? h('p', { class: 'muted', text: 'No goals yet.' })
      : h('ul', { class: 'plain' }, goals.map((g) =>
        h('li', {}, h('strong', { text: g.display_name }),
          ` ${g.type === 'pageview' ? `pageview of ${g.path}` : g.type === 'scroll' ? `scroll past ${g.scroll_threshold}% of ${g.path}` : `event ${g.name}`}`
          + `${Object.entries(g.props || {}).map(([k, x]) => ` ${k}=${x}`).join('')}${g.currency ? ` (revenue in ${g.currency})` : ''} `,
        h('button', { class: 'ghost small', text: 'Delete', 'aria-label': `Delete goal ${g.display_name}`, onclick: async () => {
          await api(`${path}/goals/${g.id}`, { method: 'DELETE' });
          draw((await api(`${path}/goals`)).goals);
        } })))));
  draw(initial || []);
  const kind = h('select', { name: 'type', 'aria-label': 'Goal type' },
    h('option', { value: 'pageview', text: 'Pageview' }), h('option', { value: 'scroll', text: 'Scroll depth' }),
    h('option', { value: 'event', text: 'Custom event' }));
  return h('section', { class: 'card' },
    h('h2', { text: 'Goals' }),
    h('p', { class: 'muted', text: 'A goal counts a conversion: a pageview of a path (* stands for any characters, e.g. /blog/*), '
      + 'a scroll past a percentage of such a page, or a custom event (e.g. Signup, Outbound Link: Click, File Download, '
      + 'Form: Submission; give a currency to sum the revenue it carries).' }),
    list,
    form(
      [
        h('label', {}, h('span', { text: 'Type' }), kind),
        field('Path or event name', { name: 'target', required: true, maxlength: 500 }),
        field('Scroll depth, % (scroll goals)', { name: 'scroll_threshold', type: 'number', min: 1, max: 100 }),
        field('Currency (event goals, optional)', { name: 'currency', maxlength: 3, placeholder: 'EUR' }),
        field('Display name (optional)', { name: 'display_name', maxlength: 120 }),
      ],
      'Add goal',
      async (data, f) => {
        const type = data.get('type');
        const goal = type === 'event' ? { type, name: data.get('target') } : { type, path: data.get('target') };
        if (type === 'scroll') goal.scroll_threshold = Number(data.get('scroll_threshold'));
        if (type === 'event' && data.get('currency')) goal.currency = data.get('currency');
        if (data.get('display_name')) goal.display_name = data.get('display_name');
        const g = await api(`${path}/goals`, { method: 'POST', body: goal });
        f.reset();
        draw((await api(`${path}/goals`)).goals);
        return `Added goal “${g.display_name}”.`;
      },
    ));
}

// A button that copies `text` (or what a function of no arguments gives when clicked).

// ---------------------------------------------------------------- users

// The server-wide requirement of two-factor login.
function serverSettingsCard() {
  const box = h('div');
  api('/api/server/settings').then((s) => box.replaceChildren(form(
    [h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'require', checked: s.require_two_factor }), ' Require two-factor login of every user')],
    'Save', async (data) => {
      await api('/api/server/settings', { method: 'PUT', body: { require_two_factor: data.get('require') === 'on' } });
      return data.get('require') === 'on'
        ? 'Required: users without it set it up at their next visit.'
        : 'Not required.';
    }))).catch((e) => box.replaceChildren(errorBox(e)));
  const mail = h('div');
  api('/api/server/settings').then((s) => mail.replaceChildren(s.mail.configured
    ? h('div', {}, h('p', { class: 'muted', text: `E-mail goes through ${s.mail.server}.` }),
      form([field('Send a test message to', { name: 'to', type: 'email', required: true })], 'Send test message',
        async (data) => (await api('/api/server/mail-test', { method: 'POST', body: { to: data.get('to') } })).answer.replace(/^/, 'The server answered: ')))
    : h('p', { class: 'muted', text: 'No SMTP server is configured (smtp_url, smtp_from).' }))).catch(() => {});
  return h('section', { class: 'card narrow', 'aria-label': 'Two-factor login for everyone' }, h('h2', { text: 'Two-factor login' }), box,
    h('h2', { text: 'E-mail' }), mail);
}

// Keys for Plausible's Sites API: a scope each, the key shown once.
function sitesKeysCard() {
  const box = h('section', { class: 'card narrow', 'aria-label': 'Sites API keys' });
  const draw = () => api('/api/server/keys').then(({ keys }) => box.replaceChildren(
    h('h2', { text: 'Sites API keys' }),
    h('p', { class: 'muted', text: 'For provisioning scripts that speak Plausible\'s Sites API (/api/v1/sites).' }),
    h('ul', {}, keys.map((k) => h('li', {}, `${k.id} · ${k.scope}${k.label ? ` · ${k.label}` : ''} `,
      h('button', { class: 'ghost small', text: 'Revoke', onclick: () => api(`/api/server/keys/${k.id}`, { method: 'DELETE' }).then(draw) })))),
    form([
      field('Label', { name: 'label', maxlength: 100 }),
      h('label', {}, h('span', { text: 'Scope' }), h('select', { name: 'scope' },
        ['sites:read', 'sites:provision'].map((v) => h('option', { value: v, text: v })))),
    ], 'Make a key', async (data) => {
      const k = await api('/api/server/keys', { method: 'POST', body: { scope: data.get('scope'), label: data.get('label') } });
      await draw();
      box.append(h('p', { class: 'status', text: 'Shown once; copy it now: ' }, h('code', { class: 'secret', text: k.key }), copyButton(k.key)));
    }))).catch((e) => box.replaceChildren(errorBox(e)));
  draw();
  return box;
}

export async function usersPage() {
  const [{ users }, { sites }] = await Promise.all([api('/api/users'), api('/api/sites')]);
  const siteBoxes = (chosen = []) =>
    h('fieldset', {}, h('legend', { text: 'Sites a viewer may read' }),
      sites.map((s) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'sites', value: s.domain, checked: chosen.includes(s.domain) }), ` ${s.domain}`)));
  const roleSelect = (role = 'viewer') =>
    h('label', {}, h('span', { text: 'Role' }),
      h('select', { name: 'role' }, ['viewer', 'admin'].map((r) => h('option', { value: r, selected: r === role, text: r }))));
  main.replaceChildren(
    h('h1', { text: 'Users' }),
    h('section', { class: 'card' },
      h('table', {},
        h('thead', {}, h('tr', {}, ['E-mail', 'Role', 'Sites', ''].map((t) => h('th', { text: t })))),
        h('tbody', {}, users.map((u) =>
          h('tr', {},
            h('td', { text: u.email }),
            h('td', { text: u.role }),
            h('td', { text: u.role === 'admin' ? 'all' : u.sites.join(', ') }),
            h('td', {},
              u.email !== me.email && h('button', { class: 'ghost small', text: 'Delete', onclick: async () => {
                if (confirm(`Delete ${u.email}?`)) {
                  await api(`/api/users/${encodeURIComponent(u.email)}`, { method: 'DELETE' });
                  route();
                }
              } }),
              u.email !== me.email && h('details', {},
                h('summary', { text: 'Edit' }),
                form([roleSelect(u.role), siteBoxes(u.sites)], 'Save', async (data) => {
                  await api(`/api/users/${encodeURIComponent(u.email)}`, { method: 'PUT', body: { role: data.get('role'), sites: data.getAll('sites') } });
                  route();
                })))))))),
    serverSettingsCard(),
    sitesKeysCard(),
    h('section', { class: 'card narrow', 'aria-label': 'Invite by e-mail' },
      h('h2', { text: 'Invite by e-mail' }),
      h('p', { class: 'muted', text: 'The person gets a link, valid once for an hour, to choose their password.' }),
      form([field('E-mail', { name: 'email', type: 'email', required: true }), roleSelect(), siteBoxes()], 'Send invitation',
        async (data, f) => {
          const r = await api('/api/users/invite', { method: 'POST', body: { email: data.get('email'), role: data.get('role'), sites: data.getAll('sites') } });
          f.reset();
          return `Invitation sent to ${r.sent_to}.`;
        })),
    h('section', { class: 'card narrow' },
      h('h2', { text: 'Add a user' }),
      form(
        [
          field('E-mail', { name: 'email', type: 'email', required: true }),
          field('Password (at least 10 characters)', { name: 'password', type: 'password', autocomplete: 'new-password', minlength: 10, required: true }),
          roleSelect(),
          siteBoxes(),
        ],
        'Add user',
        async (data) => {
          await api('/api/users', {
            method: 'POST',
            body: { email: data.get('email'), password: data.get('password'), role: data.get('role'), sites: data.getAll('sites') },
          });
          route();
        },
      )),
  );
}

