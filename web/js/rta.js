/* rta first-party analytics: <script defer src="https://rta.example.com/js/rta.js"></script>
 *
 * Sends a $pageview on load and on every single-page-app navigation (history.pushState,
 * replaceState to a new path, popstate), $outbound_click for links to other hosts, and
 * custom events: window.rta('signup', {plan: 'pro'}). Calls made before this script loads
 * are queued by the snippet `window.rta = window.rta || function () {
 * (window.rta.q = window.rta.q || []).push(arguments) }`.
 *
 * No cookies, no localStorage, no id of any kind in the browser: the server names the
 * visitor with a daily salted hash (docs/web.md). Options, as attributes of the tag:
 *   data-api     the ingest URL (default: this script's origin + /api/event)
 *   data-domain  the site's name, when several hosts make one site (default: the page's host)
 */
(function () {
  "use strict";
  var w = window, d = document, loc = w.location, nav = w.navigator;
  var script = d.currentScript || d.querySelector('script[src*="/js/rta.js"]');
  if (!script || (w.rta && w.rta.loaded)) return;
  var api = script.getAttribute("data-api") || new URL(script.src).origin + "/api/event";
  var domain = script.getAttribute("data-domain");
  var lastPath = null;

  function send(name, props) {
    var p = {
      $current_url: loc.href, $pathname: loc.pathname, $host: loc.host,
      $referrer: d.referrer, title: d.title,
      $screen_width: w.screen && w.screen.width, $screen_height: w.screen && w.screen.height
    };
    if (props && typeof props === "object") {
      for (var k in props) if (Object.prototype.hasOwnProperty.call(props, k)) p[k] = props[k];
    }
    var body = { event: String(name), properties: p };
    if (domain) body.domain = domain;
    var data = JSON.stringify(body);
    try {
      if (nav.sendBeacon && nav.sendBeacon(api, data)) return;
    } catch (e) { /* fall through to fetch */ }
    if (w.fetch) {
      w.fetch(api, { method: "POST", body: data, keepalive: true, credentials: "omit",
                     headers: { "Content-Type": "text/plain" } })["catch"](function () {});
    }
  }

  function pageview() {
    if (d.visibilityState === "prerender" || loc.pathname === lastPath) return;
    lastPath = loc.pathname;
    send("$pageview");
  }

  function wrap(method) {
    var original = w.history[method];
    if (!original) return;
    w.history[method] = function () {
      var result = original.apply(this, arguments);
      pageview();
      return result;
    };
  }

  function click(event) {
    if (event.type === "auxclick" && event.button !== 1) return;
    var a = event.target;
    while (a && !(a.tagName === "A" && a.href)) a = a.parentElement;
    if (!a) return;
    try {
      var url = new URL(a.href, loc.href);
      if ((url.protocol === "http:" || url.protocol === "https:") && url.host !== loc.host) {
        send("$outbound_click", { $outbound_url: url.href });
      }
    } catch (e) { /* not a URL */ }
  }

  var queue = (w.rta && w.rta.q) || [];
  w.rta = function (name, props) { if (name) send(name, props); };
  w.rta.loaded = true;
  wrap("pushState");
  wrap("replaceState");
  w.addEventListener("popstate", pageview);
  d.addEventListener("click", click, true);
  d.addEventListener("auxclick", click, true);
  if (d.visibilityState === "prerender") {
    d.addEventListener("visibilitychange", function once() {
      if (d.visibilityState !== "prerender") {
        d.removeEventListener("visibilitychange", once);
        pageview();
      }
    });
  } else {
    pageview();
  }
  for (var i = 0; i < queue.length; i++) w.rta.apply(null, queue[i]);
})();
