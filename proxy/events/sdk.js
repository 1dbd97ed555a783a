/*! slotwise SDK: collects behavioural events for the slotwise proxy. No dependencies.
 *
 *   <script src="/_sw/sdk.js" data-consent="personal" data-auto-page="true"></script>
 *   slotwise.consent("personal" | "contextual");   // from your consent banner
 *   slotwise.identify("user-42");                  // a logged-in user's id (personal only):
 *                                                  // links the anonymous id to it (an alias)
 *   slotwise.page({page_type: "home"});
 *   slotwise.productView("sku-1", {price: 19.9, currency: "EUR", category: "shoes"});
 *   slotwise.addToCart("sku-1", {quantity: 2, price: 19.9});
 *   slotwise.purchase("order-9", [{product_id: "sku-1", quantity: 2, price: 19.9}], 39.8, "EUR");
 *   slotwise.track("search", {query: "red shoes"});
 *
 * Clicks on personalised slots are tracked by themselves: the proxy marks rewritten elements
 * with data-sw-slot / data-sw-variant / data-sw-decision (and data-sw-campaign).
 * Events are batched (up to 50, or every 2 s) and sent with fetch(keepalive); when the page is
 * hidden or unloaded the rest goes with navigator.sendBeacon. Without personal consent, or
 * with Global Privacy Control on, no identifier leaves the browser and nothing is stored in it.
 * The anonymous id is the proxy's id cookie (sw_uid, data-user-cookie): the SDK reads the one
 * the proxy issued, or sets it, so that events and ad decisions share one id.
 */
(function (window, document) {
  "use strict";
  if (window.slotwise && window.slotwise.version) return;

  var script = document.currentScript;
  function attr(name, fallback) {
    var value = script && script.getAttribute(name);
    return value === null || value === undefined || value === "" ? fallback : value;
  }

  var ENDPOINT = attr("data-endpoint", "/_sw/events");
  var MAX_BATCH = Math.min(parseInt(attr("data-max-batch", "50"), 10) || 50, 500);
  var FLUSH_MS = parseInt(attr("data-flush-ms", "2000"), 10) || 2000;
  var MAX_QUEUE = 1000;
  var ANON_KEY = "sw_aid";
  var ID_COOKIE = attr("data-user-cookie", "sw_uid");
  var ID_MAX_AGE = 34128000; // as the proxy's default tracking.user_cookie_max_age
  var CONSENT_COOKIE = "sw_consent";
  var GPC = navigator.globalPrivacyControl === true;

  var queue = [];
  var timer = null;
  var backoff = 0;
  var inFlight = false;
  var userId = null;
  var consentLevel = readConsent(attr("data-consent", null));

  function readConsent(stated) {
    if (GPC) return "contextual";
    if (stated === "personal" || stated === "contextual") return stated;
    var match = document.cookie.match(/(?:^|;\s*)sw_consent=([^;]*)/);
    if (match && (match[1] === "personal" || match[1] === "contextual")) return match[1];
    return null; // unknown: the server applies its default (contextual unless configured)
  }

  function personal() {
    return consentLevel === "personal";
  }

  function storage() {
    try {
      return window.localStorage;
    } catch (e) {
      return null;
    }
  }

  function uuid() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = "";
    for (var i = 0; i < 16; i++) hex += (bytes[i] + 0x100).toString(16).slice(1);
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" +
      hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function readIdCookie() {
    var parts = document.cookie.split(";");
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i].replace(/^\s+/, "");
      if (part.indexOf(ID_COOKIE + "=") === 0) return part.slice(ID_COOKIE.length + 1) || null;
    }
    return null;
  }

  function writeIdCookie(value, maxAge) {
    var secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = ID_COOKIE + "=" + value + "; path=/; max-age=" + maxAge +
      "; SameSite=Lax" + secure;
  }

  // The proxy's id cookie when it issued one (decisions are keyed by it), else the id kept
  // here, else a new one; kept in both places, so the proxy and the SDK use the same id.
  function anonymousId() {
    if (!personal()) return null;
    var store = storage();
    var id = readIdCookie() || (store && store.getItem(ANON_KEY)) || uuid();
    if (store && store.getItem(ANON_KEY) !== id) store.setItem(ANON_KEY, id);
    if (readIdCookie() !== id) writeIdCookie(id, ID_MAX_AGE);
    return id;
  }

  function clean(object) {
    var out = {};
    for (var key in object) {
      if (Object.prototype.hasOwnProperty.call(object, key) && object[key] !== undefined &&
          object[key] !== null) {
        out[key] = object[key];
      }
    }
    return out;
  }

  function track(type, properties, options) {
    options = options || {};
    var event = {type: String(type), id: uuid(), time: Date.now() / 1000};
    var props = clean(properties || {});
    for (var any in props) {
      event.properties = props;
      break;
    }
    if (options.decisionId) event.decision_id = String(options.decisionId);
    if (personal()) {
      if (userId) event.user_id = userId;
      var anon = anonymousId();
      if (anon) event.anonymous_id = anon;
    }
    if (queue.length >= MAX_QUEUE) queue.shift(); // oldest first: the page is misbehaving
    queue.push(event);
    if (queue.length >= MAX_BATCH) flush();
    else schedule(FLUSH_MS);
    return event.id;
  }

  function schedule(delay) {
    if (timer === null) timer = window.setTimeout(function () {
      timer = null;
      flush();
    }, delay);
  }

  function body(batch) {
    var payload = {events: batch};
    if (consentLevel) payload.consent = consentLevel;
    return JSON.stringify(payload);
  }

  function flush() {
    if (inFlight || queue.length === 0) return;
    var batch = queue.splice(0, MAX_BATCH);
    inFlight = true;
    window.fetch(ENDPOINT, {
      method: "POST",
      body: body(batch),
      headers: {"Content-Type": "application/json"},
      keepalive: true,
      credentials: "same-origin"
    }).then(function (response) {
      inFlight = false;
      if (response.ok) {
        backoff = 0;
        if (queue.length) schedule(0);
      } else if (response.status === 503 || response.status === 429) {
        retry(batch, response.headers.get("Retry-After"));
      } else {
        // 4xx: the events are wrong, resending will not help; say why once
        response.text().then(function (text) {
          if (window.console) window.console.warn("slotwise: events rejected", text);
        });
        if (queue.length) schedule(0);
      }
    }, function () {
      inFlight = false;
      retry(batch, null);
    });
  }

  function retry(batch, retryAfter) {
    queue = batch.concat(queue).slice(0, MAX_QUEUE);
    var seconds = parseInt(retryAfter || "", 10);
    backoff = seconds > 0 ? seconds * 1000 : Math.min(Math.max(backoff * 2, 1000), 30000);
    schedule(backoff);
  }

  function flushWithBeacon() {
    if (timer !== null) {
      window.clearTimeout(timer);
      timer = null;
    }
    while (queue.length) {
      var batch = queue.splice(0, MAX_BATCH);
      var blob = new Blob([body(batch)], {type: "text/plain"}); // no CORS preflight
      if (!navigator.sendBeacon || !navigator.sendBeacon(ENDPOINT, blob)) {
        queue = batch.concat(queue);
        flush();
        return;
      }
    }
  }

  function consent(level) {
    if (level !== "personal" && level !== "contextual") {
      throw new Error('slotwise.consent: level must be "personal" or "contextual"');
    }
    consentLevel = GPC ? "contextual" : level;
    document.cookie = CONSENT_COOKIE + "=" + consentLevel + "; path=/; max-age=31536000; SameSite=Lax";
    if (!personal()) {
      var store = storage();
      if (store) store.removeItem(ANON_KEY);
      if (readIdCookie()) writeIdCookie("", 0);
      userId = null;
      for (var i = 0; i < queue.length; i++) {
        delete queue[i].user_id;
        delete queue[i].anonymous_id;
      }
    }
    return consentLevel;
  }

  document.addEventListener("click", function (ev) {
    var el = ev.target && ev.target.closest ? ev.target.closest("[data-sw-slot]") : null;
    if (!el) return;
    track("click", {
      slot: el.getAttribute("data-sw-slot"),
      variant: el.getAttribute("data-sw-variant"),
      campaign: el.getAttribute("data-sw-campaign")
    }, {decisionId: el.getAttribute("data-sw-decision")});
  }, true);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") flushWithBeacon();
  });
  window.addEventListener("pagehide", flushWithBeacon);

  var api = {
    version: "1",
    track: track,
    flush: flush,
    consent: consent,
    // The next event carries both ids: the server links them (history follows the user).
    identify: function (id) {
      userId = personal() && id ? String(id) : null;
      if (userId) anonymousId();
      return userId;
    },
    page: function (props) {
      return track("page_view", Object.assign({
        url: location.href, path: location.pathname, referrer: document.referrer || null,
        title: document.title || null
      }, props || {}));
    },
    productView: function (productId, props) {
      return track("product_view", Object.assign({product_id: productId}, props || {}));
    },
    addToCart: function (productId, props) {
      return track("add_to_cart", Object.assign({product_id: productId}, props || {}));
    },
    removeFromCart: function (productId, props) {
      return track("remove_from_cart", Object.assign({product_id: productId}, props || {}));
    },
    purchase: function (orderId, items, value, currency, props) {
      return track("purchase", Object.assign(
        {order_id: orderId, items: items, value: value, currency: currency}, props || {}));
    },
    click: function (slot, variant, decisionId, props) {
      return track("click", Object.assign({slot: slot, variant: variant}, props || {}),
        {decisionId: decisionId});
    },
    pending: function () {
      return queue.length;
    }
  };

  var preload = window.slotwise; // calls queued before the SDK loaded: [["page"], ...]
  window.slotwise = api;
  if (Array.isArray(preload)) {
    for (var i = 0; i < preload.length; i++) {
      var call = preload[i];
      if (call && api[call[0]]) api[call[0]].apply(null, call.slice(1));
    }
  }
  if (attr("data-auto-page", "false") === "true") api.page();
})(window, document);
