/*
 * Partner Hub's GraphiQL: signs in without editing headers. partner-hub-token.js took the token
 * from the URL fragment; this script sends `Authorization: Bearer <token>` on every request
 * GraphiQL makes, the schema's introspection included. The bar above GraphiQL says who the
 * token belongs to, takes a pasted token, and signs out.
 */
(function () {
  "use strict";

  var endpoint = window.location.pathname;
  var h = React.createElement;
  var currentToken = window.PartnerHubToken.current;
  var keep = window.PartnerHubToken.keep;

  // Every request GraphiQL makes goes through here. A header set in GraphiQL's Headers tab
  // wins over the signed-in token.
  function fetchWithToken(url, init) {
    var options = Object.assign({}, init || {});
    var headers = new Headers(options.headers || {});
    var token = currentToken();
    if (token && !headers.has("Authorization")) {
      headers.set("Authorization", "Bearer " + token);
    }
    options.headers = headers;
    options.credentials = "omit";
    return window.fetch(url, options);
  }

  var fetcher = GraphiQL.createFetcher({ url: endpoint, fetch: fetchWithToken });
  var explorer = GraphiQLPluginExplorer.explorerPlugin();

  function whoIs(token) {
    return window
      .fetch(endpoint, {
        method: "POST",
        credentials: "omit",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          Authorization: "Bearer " + token,
        },
        body: JSON.stringify({ query: "query SignedInAs { viewer { email role } }" }),
      })
      .then(function (response) {
        return response.json();
      })
      .then(function (body) {
        var viewer = body && body.data && body.data.viewer;
        if (viewer) return { ok: true, text: "Signed in as " + viewer.email + " (" + viewer.role + ")" };
        var error = body && body.errors && body.errors[0];
        return { ok: false, text: "Token refused: " + (error ? error.message : "no viewer") };
      })
      .catch(function (error) {
        return { ok: false, text: "Could not check the token: " + error.message };
      });
  }

  function TokenBar(props) {
    var draftState = React.useState("");
    var draft = draftState[0];
    var setDraft = draftState[1];
    var statusState = React.useState(null);
    var status = statusState[0];
    var setStatus = statusState[1];

    React.useEffect(
      function () {
        var live = true;
        setStatus(null);
        if (props.token) {
          whoIs(props.token).then(function (result) {
            if (live) setStatus(result);
          });
        }
        return function () {
          live = false;
        };
      },
      [props.token]
    );

    var text = !props.token
      ? "Not signed in: paste a bearer token (`make run` prints a sign-in URL)"
      : status
        ? status.text
        : "Checking the token...";
    return h(
      "form",
      {
        className: "ph-token-bar",
        onSubmit: function (event) {
          event.preventDefault();
          if (draft.trim()) {
            props.onChange(draft.trim());
            setDraft("");
          }
        },
      },
      h(
        "span",
        {
          id: "ph-token-status",
          className: "ph-token-status" + (status && !status.ok ? " ph-refused" : ""),
          role: "status",
        },
        text
      ),
      h("input", {
        id: "ph-token-input",
        type: "password",
        autoComplete: "off",
        spellCheck: false,
        placeholder: "Paste a bearer token",
        "aria-label": "Bearer token",
        value: draft,
        onChange: function (event) {
          setDraft(event.target.value);
        },
      }),
      h("button", { id: "ph-token-use", type: "submit" }, "Use token"),
      props.token
        ? h(
            "button",
            {
              id: "ph-sign-out",
              type: "button",
              onClick: function () {
                props.onChange(null);
              },
            },
            "Sign out"
          )
        : null
    );
  }

  var DEFAULT_QUERY =
    "# Ctrl-Enter runs it. The explorer (left) lists every field.\n" +
    "{\n  viewer {\n    email\n    role\n  }\n}\n";

  function App() {
    var tokenState = React.useState(currentToken());
    var token = tokenState[0];
    var setToken = tokenState[1];
    var generationState = React.useState(0);
    var generation = generationState[0];
    var setGeneration = generationState[1];
    function change(next) {
      keep(next);
      setToken(currentToken());
      setGeneration(generation + 1);
    }
    return h(
      React.Fragment,
      null,
      h(TokenBar, { token: token, onChange: change }),
      h(
        "div",
        { className: "ph-graphiql" },
        // A new token mounts GraphiQL anew: the schema is introspected again with it.
        h(GraphiQL, {
          key: "graphiql-" + generation,
          fetcher: fetcher,
          plugins: [explorer],
          visiblePlugin: explorer,
          defaultQuery: DEFAULT_QUERY,
          defaultEditorToolsVisibility: true,
          inputValueDeprecation: true,
          isHeadersEditorEnabled: true,
          shouldPersistHeaders: false,
        })
      )
    );
  }

  var container = document.getElementById("graphiql");
  container.textContent = "";
  ReactDOM.createRoot(container).render(h(App));
})();
