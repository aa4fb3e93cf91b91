// Typeahead for the contact and company pickers of the CRM forms: a
// progressive enhancement. Without it, a picker's Find button posts the form
// back with the matches as radio buttons. With it, typing in the search box
// asks POST /app/pick/{contacts|companies} (with the session's CSRF token;
// the query is in the body, never in a URL) and offers the matches as an
// ARIA combobox: arrows to move, Enter to choose, Escape to close. Choosing
// sets the field's hidden value; nothing is saved until the form is.
(function () {
  "use strict";
  var pickers = document.querySelectorAll(".picker[data-pick]");
  for (var i = 0; i < pickers.length; i++) { enhance(pickers[i]); }

  function enhance(box) {
    var name = box.getAttribute("data-field");
    var noun = box.getAttribute("data-noun") || "record";
    var required = box.getAttribute("data-required") === "true";
    var form = box.closest("form");
    var input = document.getElementById("f-" + name);
    var button = box.querySelector("button[name=find]");
    var picked = document.getElementById("c-" + name);
    var note = document.getElementById("n-" + name);
    var csrf = form ? form.querySelector("input[name=csrf]") : null;
    if (!form || !input || !button || !picked || !csrf) { return; }

    // The value the form sends: the hidden field, or the search step's radios.
    var hidden = form.querySelector("input[type=hidden][name='" + name + "']");
    function ensureHidden() {
      if (hidden) { return hidden; }
      var checked = form.querySelector("input[type=radio][name='" + name + "']:checked");
      var results = box.querySelector(".picker-results");
      if (results) { results.parentNode.removeChild(results); }
      hidden = document.createElement("input");
      hidden.type = "hidden";
      hidden.name = name;
      hidden.value = checked ? checked.value : "";
      box.insertBefore(hidden, picked.nextSibling);
      return hidden;
    }

    var list = document.createElement("ul");
    list.id = "l-" + name;
    list.className = "picker-list";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "Matching " + noun + "s");
    list.hidden = true;
    input.parentNode.appendChild(list);
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", list.id);
    // The Find button searches here instead of posting the form, so that
    // Enter in any other field submits the form as usual.
    button.type = "button";

    var items = [];
    var active = -1;
    var asked = 0;
    var timer = null;

    function close() {
      list.hidden = true;
      list.textContent = "";
      items = [];
      active = -1;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    }

    function mark(n) {
      var options = list.querySelectorAll("[role=option]");
      for (var k = 0; k < options.length; k++) {
        options[k].setAttribute("aria-selected", k === n ? "true" : "false");
      }
      active = n;
      if (n >= 0 && options[n]) {
        input.setAttribute("aria-activedescendant", options[n].id);
        options[n].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }

    function say(text) {
      if (note) { note.textContent = text; }
    }

    function show(answer) {
      list.textContent = "";
      items = answer.items || [];
      for (var k = 0; k < items.length; k++) {
        var li = document.createElement("li");
        li.id = "o-" + name + "-" + k;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        li.setAttribute("data-index", String(k));
        li.appendChild(document.createTextNode(items[k].name));
        if (items[k].detail) {
          var d = document.createElement("span");
          d.className = "muted";
          d.textContent = " " + items[k].detail;
          li.appendChild(d);
        }
        list.appendChild(li);
      }
      if (!items.length) {
        var empty = document.createElement("li");
        empty.className = "note";
        empty.setAttribute("role", "option");
        empty.setAttribute("aria-disabled", "true");
        empty.id = "o-" + name + "-none";
        empty.textContent = answer.note || ("No " + noun + " matches.");
        list.appendChild(empty);
      }
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      active = -1;
      say(items.length
        ? items.length + (answer.more ? "+" : "") + " " + (items.length === 1 && !answer.more ? noun : noun + "s") + " found. Use the arrow keys to choose."
        : (answer.note || ""));
    }

    function search() {
      var q = input.value.trim();
      if (!q) { close(); return; }
      var mine = ++asked;
      var body = new URLSearchParams();
      body.set("csrf", csrf.value);
      body.set("q", q);
      fetch(box.getAttribute("data-pick"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json" },
        body: body.toString()
      }).then(function (r) {
        return r.json().catch(function () { return { items: [], note: "The search failed (" + r.status + ")." }; });
      }).then(function (answer) {
        if (mine === asked) { show(answer); }
      }).catch(function () {
        if (mine === asked) { show({ items: [], note: "The search failed; check the connection and try again." }); }
      });
    }

    function clearButton() {
      if (required) { return; }
      var b = document.createElement("button");
      b.type = "button";
      b.className = "quiet small";
      b.textContent = "Clear";
      b.addEventListener("click", function () {
        ensureHidden().value = "";
        picked.textContent = "No " + noun + " chosen.";
        input.focus();
      });
      picked.appendChild(document.createTextNode(" "));
      picked.appendChild(b);
    }

    function choose(n) {
      var item = items[n];
      if (!item) { return; }
      ensureHidden().value = item.id;
      picked.textContent = "Chosen: ";
      var strong = document.createElement("strong");
      strong.textContent = item.name;
      picked.appendChild(strong);
      clearButton();
      input.value = "";
      close();
      say("");
      input.focus();
    }

    if (hidden && hidden.value) { clearButton(); }

    input.addEventListener("input", function () {
      if (timer) { clearTimeout(timer); }
      if (input.value.trim().length < 2) { close(); return; }
      timer = setTimeout(search, 250);
    });
    input.addEventListener("keydown", function (e) {
      if (e.key === "ArrowDown" && items.length) {
        e.preventDefault();
        mark(active + 1 < items.length ? active + 1 : 0);
      } else if (e.key === "ArrowUp" && items.length) {
        e.preventDefault();
        mark(active > 0 ? active - 1 : items.length - 1);
      } else if (e.key === "Enter") {
        // Enter in the search box searches or chooses; it never sends the form.
        e.preventDefault();
        if (!list.hidden && active >= 0) { choose(active); } else { search(); }
      } else if (e.key === "Escape" && !list.hidden) {
        e.preventDefault();
        close();
      }
    });
    list.addEventListener("mousedown", function (e) {
      // Keep the focus in the box while choosing with the mouse.
      e.preventDefault();
    });
    list.addEventListener("click", function (e) {
      var li = e.target.closest ? e.target.closest("[data-index]") : null;
      if (li) { choose(Number(li.getAttribute("data-index"))); }
    });
    input.addEventListener("blur", function () {
      setTimeout(close, 150);
    });
    button.addEventListener("click", function () {
      search();
      input.focus();
    });
  }
})();
