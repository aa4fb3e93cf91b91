// The WebAuthn ceremonies (passkeys and security keys): the one thing the
// platform needs script for. Binary members travel as base64url.
(function () {
  "use strict";
  function b64urlToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }
  function bufToB64url(buf) {
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function decodeOptions(pk) {
    pk.challenge = b64urlToBuf(pk.challenge);
    if (pk.user) { pk.user.id = b64urlToBuf(pk.user.id); }
    ["allowCredentials", "excludeCredentials"].forEach(function (k) {
      (pk[k] || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    });
    return pk;
  }
  function encodeCredential(c) {
    var r = c.response, out = { id: c.id, rawId: bufToB64url(c.rawId), type: c.type, response: {
      clientDataJSON: bufToB64url(r.clientDataJSON) } };
    if (r.attestationObject) { out.response.attestationObject = bufToB64url(r.attestationObject); }
    if (r.authenticatorData) { out.response.authenticatorData = bufToB64url(r.authenticatorData); }
    if (r.signature) { out.response.signature = bufToB64url(r.signature); }
    if (r.userHandle) { out.response.userHandle = bufToB64url(r.userHandle); }
    return out;
  }
  function post(url, body) {
    return fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          if (!r.ok) { throw new Error(j.detail || j.error || "refused"); }
          return j;
        });
      });
  }
  function status(text) {
    var s = document.getElementById("passkey-status");
    if (s) { s.textContent = text; }
  }
  var signin = document.getElementById("passkey-signin");
  if (signin) {
    var ask = { csrf: signin.dataset.csrf, mfa_token: signin.dataset.mfaToken };
    document.getElementById("passkey-signin-button").addEventListener("click", function () {
      status("Waiting for your passkey…");
      post("/login/mfa/webauthn/options", ask).then(function (o) {
        return navigator.credentials.get({ publicKey: decodeOptions(o.publicKey) });
      }).then(function (cred) {
        return post("/login/mfa/webauthn", { csrf: ask.csrf, mfa_token: ask.mfa_token, credential: encodeCredential(cred) });
      }).then(function (j) { window.location.assign(j.redirect || "/app"); })
        .catch(function (e) { status("That did not work: " + e.message); });
    });
  }
  var reg = document.getElementById("passkey-register");
  if (reg) {
    reg.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var csrf = reg.dataset.csrf, name = document.getElementById("passkey-name").value;
      status("Follow your browser's prompt…");
      post("/app/security/passkeys/options", { csrf: csrf }).then(function (o) {
        return navigator.credentials.create({ publicKey: decodeOptions(o.publicKey) });
      }).then(function (cred) {
        return post("/app/security/passkeys", { csrf: csrf, name: name, credential: encodeCredential(cred) });
      }).then(function (j) { window.location.assign(j.redirect || "/app/security"); })
        .catch(function (e) { status("That did not work: " + e.message); });
    });
  }
})();
