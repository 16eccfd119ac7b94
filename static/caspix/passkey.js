/* Passkeys: the browser's half of the WebAuthn ceremonies behind a [data-passkey] block.
 *
 * "register" adds a passkey to the signed-in user; "authenticate" verifies one (second factor,
 * step-up, or a sign-in without a password). The server's options arrive as JSON with binary
 * fields in base64url; they are decoded here, handed to navigator.credentials, and the answer is
 * encoded back the same way. Nothing here decides anything: the server checks every answer.
 */
(function () {
  "use strict";

  var block = document.querySelector("[data-passkey]");
  if (!block) {
    return;
  }
  var mode = block.dataset.passkey;
  var button = block.querySelector("[data-passkey-button]");
  var status = block.querySelector("[data-passkey-status]");

  function toBytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    var binary = window.atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) {
      return null;
    }
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i += 1) {
      binary += String.fromCharCode(bytes[i]);
    }
    return window.btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBytes(item.id), transports: item.transports };
    });
  }

  // The credential as JSON, the binary fields in base64url; ``fields`` are the ceremony's own.
  function answer(credential, fields) {
    fields.clientDataJSON = toText(credential.response.clientDataJSON);
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: fields
    };
  }

  function csrfToken() {
    return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
  }

  function post(url, body) {
    return window.fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () {
        return {};  // not JSON (a proxy's error page, say): the generic message below
      }).then(function (data) {
        if (!response.ok) {
          throw new Error(data.detail || "The passkey was not accepted. Try again, or use another factor.");
        }
        return data;
      });
    });
  }

  function withNext(url) {
    var next = block.dataset.next;
    return next ? url + (url.indexOf("?") < 0 ? "?" : "&") + "next=" + encodeURIComponent(next) : url;
  }

  function say(text) {
    status.textContent = text;
    status.hidden = !text;
  }

  function register() {
    var nameField = block.querySelector("[data-passkey-name]");
    var name = nameField ? nameField.value.trim() : "";
    return post(block.dataset.begin).then(function (options) {
      options.challenge = toBytes(options.challenge);
      options.user.id = toBytes(options.user.id);
      options.excludeCredentials = descriptors(options.excludeCredentials);
      return navigator.credentials.create({ publicKey: options });
    }).then(function (credential) {
      var response = credential.response;
      return post(block.dataset.complete + "?name=" + encodeURIComponent(name), answer(credential, {
        attestationObject: toText(response.attestationObject),
        transports: response.getTransports ? response.getTransports() : []
      }));
    }).then(function (result) {
      if (result.recovery_codes && result.recovery_codes.length) {
        showCodes(result.recovery_codes);
      } else {
        window.location.assign(result.redirect_url);
      }
    });
  }

  function showCodes(codes) {
    var section = document.getElementById("passkey-recovery");
    var list = document.getElementById("recovery-codes");
    codes.forEach(function (code) {
      var item = document.createElement("li");
      item.textContent = code;
      list.appendChild(item);
    });
    document.querySelectorAll("[data-passkey-hide-on-codes]").forEach(function (element) {
      element.hidden = true;
    });
    block.hidden = true;
    section.hidden = false;
    section.querySelector("[data-passkey-continue]").focus();
  }

  function authenticate() {
    return post(block.dataset.begin).then(function (options) {
      options.challenge = toBytes(options.challenge);
      options.allowCredentials = descriptors(options.allowCredentials);
      return navigator.credentials.get({ publicKey: options });
    }).then(function (credential) {
      var response = credential.response;
      return post(withNext(block.dataset.complete), answer(credential, {
        authenticatorData: toText(response.authenticatorData),
        signature: toText(response.signature),
        userHandle: toText(response.userHandle)
      }));
    }).then(function (result) {
      window.location.assign(result.redirect_url);
    });
  }

  button.addEventListener("click", function () {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say("This browser does not support passkeys.");
      return;
    }
    say("");
    button.disabled = true;
    (mode === "register" ? register() : authenticate()).catch(function (error) {
      var cancelled = error && (error.name === "NotAllowedError" || error.name === "AbortError");
      say(cancelled ? "The passkey prompt was cancelled or timed out." : error.message);
    }).then(function () {
      button.disabled = false;
    });
  });
})();
