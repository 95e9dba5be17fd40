/*
 * Partner Hub's GraphiQL sign-in, first script of the page (before React and GraphiQL load):
 * the token of the URL fragment (/graphql#token=...; `make run` prints such a URL) leaves the
 * address bar at once, so it is not bookmarked, shared or kept in the history.
 *
 * Browsers never send a fragment to the server: it is in no request line and no log. The
 * token is kept in the tab's sessionStorage rather than localStorage: a bearer token is a
 * credential. sessionStorage lives as long as the tab (a reload keeps it) and is seen by no
 * other tab; it is gone when the tab closes, where localStorage would keep the token on disk
 * with no end, for every later page of this origin. Opening the printed URL again signs in.
 */
(function () {
  "use strict";

  var STORAGE_KEY = "partner-hub.graphiql.token";

  function readStored() {
    try {
      return window.sessionStorage.getItem(STORAGE_KEY);
    } catch (e) {
      return null; // storage disabled: the token lives as long as the page
    }
  }

  var memory = readStored();

  function currentToken() {
    return memory;
  }

  function keep(token) {
    memory = token || null;
    try {
      if (memory) window.sessionStorage.setItem(STORAGE_KEY, memory);
      else window.sessionStorage.removeItem(STORAGE_KEY);
    } catch (e) {
      /* kept in memory only */
    }
  }

  // The fragment's token, taken out of the address bar before anything else runs.
  (function takeFragmentToken() {
    var fragment = window.location.hash.replace(/^#/, "");
    if (!fragment) return;
    var params = new URLSearchParams(fragment);
    var token = params.get("token");
    if (token === null) return;
    params.delete("token");
    var rest = params.toString();
    window.history.replaceState(
      window.history.state,
      "",
      window.location.pathname + window.location.search + (rest ? "#" + rest : "")
    );
    if (token.trim()) keep(token.trim());
  })();

  window.PartnerHubToken = { current: currentToken, keep: keep };
})();
