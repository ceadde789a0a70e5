// Footfall's tracker: the readable source of `GET /js/script.js`.
//
// `collector/build.rs` minifies this file when the collector is built and the binary serves the
// result; the build fails if it grows past 1,024 bytes gzipped. It sets no cookie, writes no
// storage and talks to no one but the Footfall server that served it (or `data-api`).
// tracker/README.md lists the attributes it reads and the events it sends.
{
  const doc = document;
  const loc = location;
  const nav = navigator;
  // The script tag's `data-*` attributes; a flag is on when its attribute is present.
  const data = doc.currentScript.dataset;
  // Every listener sits on the window in the capture phase, so a page's own handlers that stop
  // propagation cannot hide a click or a submit from it.
  const on = (type, listener) => addEventListener(type, listener, true);

  const endpoint = data.api || new URL('/api/event', doc.currentScript.src);
  const hashMode = 'hash' in data;

  // The page being viewed, and what the next engagement event reports about it.
  let pageKey;
  let pageUrl;
  let pageProps;
  let engagedMs;
  let visibleSince;
  let deepest;
  let reportedDepth;

  // `footfall(name, {props, revenue, interactive, url, callback})`. The options go to the server
  // under the Events API's long names (the callback is not JSON, so it stays behind); the
  // engagement event adds `e` and `sd`. When the request ends the callback gets the response
  // (with its `status`) or `{error}`; it gets nothing when the event is not sent, or is sent as
  // a beacon whose outcome is unknown.
  const footfall = (name, options = {}) => {
    // Without `data-domain` the server takes the page's host.
    let payload = { n: name, url: loc.href, d: data.domain, r: doc.referrer, h: hashMode, ...options };
    let ignored;
    try {
      // Not sent for: a local page (or a `file:` one, which has no host), a robot (unless
      // `__footfall` says this is a test), a visitor asking not to be tracked on a site that
      // honours that, or the owner's own browser. Storage that cannot be read (a sandboxed
      // frame) throws, and the event is counted.
      ignored =
        /^(localhost|127\.|\[::1\]|$)/.test(loc.hostname) ||
        (nav.webdriver && !window.__footfall) ||
        ('respectDnt' in data && (nav.doNotTrack == 1 || nav.globalPrivacyControl)) ||
        localStorage.footfall_ignore == 'true';
    } catch {}
    if (ignored) return options.callback?.();
    if (name == 'pageview') {
      pageUrl = payload.url;
      pageProps = payload.props;
    }
    payload = JSON.stringify(payload);
    if (window.fetch) {
      // A string body goes as `text/plain`, which needs no CORS preflight; `keepalive` lets the
      // request finish after the page is gone.
      fetch(endpoint, { method: 'POST', keepalive: true, body: payload }).then(options.callback, (error) =>
        options.callback?.({ error }),
      );
    } else {
      nav.sendBeacon(endpoint, payload);
      options.callback?.();
    }
  };

  // The deepest point of the page seen so far, as a percentage of its height at the time (the
  // server caps it at 100).
  const scrolled = () => {
    deepest = Math.max(deepest, (((scrollY + innerHeight) * 100) / doc.documentElement.scrollHeight) | 0);
  };

  // Reports the engaged (visible) time since the last report and the deepest scroll when either
  // has grown enough to be worth a request.
  const engagement = () => {
    const now = Date.now();
    if (visibleSince) {
      engagedMs += now - visibleSince;
      visibleSince = now;
    }
    if (pageUrl && (engagedMs >= 3000 || deepest > reportedDepth)) {
      footfall('engagement', { url: pageUrl, props: pageProps, e: engagedMs, sd: deepest });
      engagedMs = 0;
      reportedDepth = deepest;
    }
  };

  // Counts a pageview when the page (its path, and its fragment in hash mode) changed.
  const page = () => {
    const key = loc.pathname + (hashMode ? loc.hash : '');
    if (key != pageKey) {
      if (pageKey) engagement();
      pageKey = key;
      engagedMs = reportedDepth = deepest = 0;
      scrolled();
      visibleSince = Date.now();
      footfall('pageview');
    }
  };

  // Outbound links (to another host) and file downloads, each when its attribute is set. A
  // download is reported without its query string, which may carry a token.
  const click = (event) => {
    const link = event.target.closest?.('a');
    if (link && event.button < 2) {
      if ('outboundLinks' in data && link.host && link.host != loc.host) {
        footfall('Outbound Link: Click', { props: { url: link.href } });
      } else if (
        'fileDownloads' in data &&
        /\.(pdf|docx?|xlsx?|pptx?|csv|txt|zip|gz|rar|7z|dmg|exe|mp[34])$/i.test(link.pathname)
      ) {
        footfall('File Download', { props: { url: link.origin + link.pathname } });
      }
    }
  };

  // Calls the snippet queued before this script loaded run now, in order; Plausible's snippet
  // queues them on `plausible`, which answers to the same calls.
  const queue = window.footfall?.q || window.plausible?.q || [];
  window.footfall = window.plausible = footfall;
  queue.forEach((args) => footfall(...args));

  for (const method of ['pushState', 'replaceState']) {
    const original = history[method];
    history[method] = (...args) => {
      original.apply(history, args);
      page();
    };
  }
  // Back, forward, and any change of fragment (in hash mode that is a new page).
  on('popstate', page);
  // A page put in the back/forward cache and shown again is a new view of it.
  on('pagehide', () => (pageKey = 0));
  on('scroll', scrolled);
  on('visibilitychange', () => {
    // Leaving the page hides it first, so this also reports engagement on the way out.
    if (doc.hidden) {
      engagement();
      visibleSince = 0;
    } else {
      visibleSince = Date.now();
      page();
    }
  });
  on('click', click);
  on('auxclick', click);
  // A form's submit event fires only once the browser's own validation has passed.
  on('submit', () => 'formSubmissions' in data && footfall('Form: Submission'));
  // A page opened in a background tab or prerendered counts once it is first shown.
  if (!doc.hidden) page();
}
