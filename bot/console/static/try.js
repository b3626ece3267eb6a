// The try-it chat page: send a tap or a line, poll the inbox the worker fills. No framework.
(function () {
  "use strict";
  var root = document.getElementById("try");
  if (!root) { return; }
  var log = document.getElementById("log");
  var replies = document.getElementById("replies");
  var typing = document.getElementById("typing");
  var error = document.getElementById("error");
  var form = document.getElementById("say");
  var input = document.getElementById("text");
  var resetButton = document.getElementById("reset");
  var csrf = root.dataset.csrf;
  var last = 0;          // the number of the newest message shown
  var latest = null;     // the newest message shown (its buttons are the quick replies)
  var fastUntil = 0;     // poll quickly until then (just after a send)
  var timer = null;
  var sending = false;
  var readFrom = null;   // the result card shown since the last send: the chat stays at its top

  function eventId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function button(b, cls) {
    var node = el("button", cls, b.label);
    node.type = "button";
    node.dataset.data = b.data;
    if (/^[ABCD]: /.test(b.label)) { node.dataset.choice = b.label.charAt(0); }
    node.addEventListener("click", function () { send({ data: b.data, echo: b.echo }); });
    return node;
  }

  function card(c, buttons) {
    var box = el("div", "card tier-" + c.tier);
    var head = el("div", "card-head");
    head.appendChild(el("div", "heading", c.heading));
    head.appendChild(el("div", "label", c.label));
    head.appendChild(el("div", "count", c.count));
    if (c.closeness) { head.appendChild(el("div", "count", c.closeness)); }
    box.appendChild(head);
    var body = el("div", "card-body");
    // The news first, so that a phone shows it without scrolling: the comparison (on a retake), the one
    // point to fix, the plan; then the summary and theme; the answers last, folded.
    (c.comparison || []).forEach(function (line, i) {
      body.appendChild(el("p", i === 0 ? "point-heading compare-heading" : "point-text compare", line));
    });
    var point = el("section", "point");
    point.appendChild(el("p", "point-heading", c.point_heading));
    if (c.point_title) { point.appendChild(el("p", "point-title", c.point_title)); }
    point.appendChild(el("p", "point-text", c.point_text));
    if (c.point_peer) { point.appendChild(el("p", "peer", c.point_peer)); }
    body.appendChild(point);
    if (c.plan && c.plan.length) {
      var plan = el("section", "plan");
      plan.appendChild(el("p", "point-heading", c.plan_heading));
      var steps = el("ol", "plan-steps");
      c.plan.forEach(function (p) {
        var step = el("li", "");
        step.appendChild(el("span", "plan-when", p.when));
        step.appendChild(el("span", "plan-title", p.title));
        step.appendChild(el("span", "plan-step", p.step));
        if (p.peer) { step.appendChild(el("span", "plan-peer peer", p.peer)); }
        steps.appendChild(step);
      });
      plan.appendChild(steps);
      body.appendChild(plan);
    }
    if (c.framing) { body.appendChild(el("p", "framing", c.framing)); }
    body.appendChild(el("p", "summary", c.summary));
    body.appendChild(el("p", "point-heading", c.theme_heading));
    body.appendChild(el("p", "point-text", c.theme));
    var answers = el("details", "answers");
    answers.appendChild(el("summary", "point-heading", c.answers_heading));
    var rows = el("ul", "rows");
    c.rows.forEach(function (r) {
      var row = el("li", "");
      row.appendChild(el("span", "grade grade-" + r.letter, r.letter));
      row.appendChild(document.createTextNode(" Q" + r.q + " " + r.topic));
      rows.appendChild(row);
    });
    answers.appendChild(rows);
    body.appendChild(answers);
    (buttons || []).forEach(function (b) { body.appendChild(button(b, "reply")); });
    box.appendChild(body);
    return box;
  }

  // Text with its web addresses as links (a booking page); everything else stays plain text.
  function bubble(text) {
    var node = el("div", "bubble");
    text.split(/(https?:\/\/[^\s]+)/).forEach(function (part, i) {
      if (i % 2 === 1) {
        var a = el("a", "", part);
        a.href = part;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        node.appendChild(a);
      } else if (part) {
        node.appendChild(document.createTextNode(part));
      }
    });
    return node;
  }

  function show(msg) {
    var item = el("li", "msg " + (msg.from === "user" ? "msg-user" : "msg-bot"));
    item.dataset.n = msg.n;
    item.dataset.kind = msg.kind;
    item.appendChild(msg.card ? card(msg.card, msg.buttons) : bubble(msg.text));
    log.appendChild(item);
    return item;
  }

  // Like LINE's quick replies: the buttons of the newest message, while it is the bot's.
  function showReplies() {
    replies.replaceChildren();
    if (!latest || latest.from !== "bot" || latest.card || sending) { return; }
    latest.buttons.forEach(function (b) {
      replies.appendChild(button(b, /^[ABCD]: /.test(b.label) ? "reply reply-choice" : "reply"));
    });
  }

  function schedule() {
    window.clearTimeout(timer);
    if (document.hidden) { return; }
    timer = window.setTimeout(poll, Date.now() < fastUntil ? 250 : 1500);
  }

  function poll() {
    window.clearTimeout(timer);
    return fetch(root.dataset.messagesUrl + "?after=" + last, { credentials: "same-origin", cache: "no-store" })
      .then(function (res) {
        if (res.redirected) { loggedOut(); return null; }
        return res.ok ? res.json() : null;
      })
      .then(function (body) {
        if (!body) { return; }
        var added = false;
        body.messages.forEach(function (m) {
          if (m.n > last) {
            var item = show(m);
            if (m.card && m.from === "bot") { readFrom = item; }
            last = m.n; latest = m; added = true;
          }
        });
        typing.hidden = !body.pending;
        if (added) {
          showReplies();
          // A result is read from its top (the point to fix comes first), also when the reminder question
          // comes after it; anything else: the newest line.
          if (readFrom) { toTop(readFrom); } else { log.scrollTop = log.scrollHeight; }
        }
      })
      .catch(function () { /* the next poll tries again */ })
      .then(schedule);
  }

  // The log scrolled so that ``item``'s top (a result card's headline) is at the top of what shows.
  function toTop(item) {
    log.scrollTop += item.getBoundingClientRect().top - log.getBoundingClientRect().top - 8;
  }

  function post(url, payload, tries) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(payload)
    }).then(function (res) {
      if (res.redirected) { loggedOut(); throw new Error("logged out"); }
      if (res.ok) { return res; }
      if (res.status === 503 && tries > 1) { return wait(600).then(function () { return post(url, payload, tries - 1); }); }
      throw new Error(String(res.status));
    }, function (e) {
      if (tries > 1) { return wait(600).then(function () { return post(url, payload, tries - 1); }); }
      throw e;
    });
  }

  // The session ended (a redirect to the login page): reload, and the console asks for the login.
  function loggedOut() { window.location.reload(); }

  function wait(ms) { return new Promise(function (resolve) { window.setTimeout(resolve, ms); }); }

  // The same event id on every try: a repeated POST is applied (and shown) once.
  function send(payload) {
    if (sending) { return; }
    sending = true;
    readFrom = null;
    payload.event = eventId();
    error.hidden = true;
    showReplies();
    typing.hidden = false;
    post(root.dataset.sendUrl, payload, 3)
      .then(function () {
        sending = false;
        fastUntil = Date.now() + 8000;
      }, function () {
        sending = false;
        error.hidden = false;
        typing.hidden = true;
        showReplies();
      })
      .then(poll);
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    input.value = "";
    send({ text: text });
  });

  // The rich menu's areas, as on LINE: a tap sends the area's word as the user's message.
  Array.prototype.forEach.call(document.querySelectorAll("#menu .try-menu-item"), function (item) {
    item.addEventListener("click", function () { send({ text: item.dataset.text }); });
  });

  // A new test throws this one away: asked first.
  var confirmBox = document.getElementById("reset-confirm");
  resetButton.addEventListener("click", function () { confirmBox.showModal(); });
  confirmBox.addEventListener("close", function () {
    if (confirmBox.returnValue !== "yes") { return; }
    post(root.dataset.resetUrl, {}, 2)
      .then(function () { window.location.reload(); })
      .catch(function () { error.hidden = false; });
  });

  document.addEventListener("visibilitychange", function () { if (!document.hidden) { poll(); } });
  fastUntil = Date.now() + 5000;  // the greeting is on its way
  poll();
}());
