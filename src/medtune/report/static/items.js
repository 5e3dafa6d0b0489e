/* medtune report: the item browser. Vanilla JS, no network, no innerHTML with data:
   every piece of model or dataset text is set through textContent, so it never runs. */
(function () {
  "use strict";
  var source = document.getElementById("item-data");
  var list = document.getElementById("item-rows");
  if (!source || !list) { return; }
  var data = JSON.parse(source.textContent);
  var PAGE = 50;
  var OUTCOME = { correct: "correct", incorrect: "incorrect", unparseable: "unparseable", open: "open-ended" };
  var FLIP = { gained: "wrong → right", lost: "right → wrong" };
  var state = { matches: [], page: 0, selected: -1 };
  var $ = function (id) { return document.getElementById(id); };
  var f = { ev: $("f-eval"), bench: $("f-bench"), outcome: $("f-outcome"), flip: $("f-flip"), text: $("f-text") };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function badge(kind, text) { return el("span", "badge b-" + kind, text); }

  function addOptions(select, values) {
    values.forEach(function (v) { var o = el("option", null, v[1]); o.value = v[0]; select.appendChild(o); });
  }

  addOptions(f.ev, data.evals.map(function (e, i) { return [String(i), e.label]; }));
  var benches = [];
  data.evals.forEach(function (e) { if (benches.indexOf(e.benchmark) < 0) { benches.push(e.benchmark); } });
  addOptions(f.bench, benches.map(function (b) { return [b, b]; }));

  function matches(item, want) {
    if (want.ev !== "" && item.e !== want.ev) { return false; }
    if (want.bench && data.evals[item.e].benchmark !== want.bench) { return false; }
    if (want.outcome && item.o !== want.outcome) { return false; }
    if (want.flip === "any" && !item.flip) { return false; }
    if (want.flip && want.flip !== "any" && item.flip !== want.flip) { return false; }
    if (want.text) {
      var hay = (item.id + "\n" + data.questions[item.q].text).toLowerCase();
      if (hay.indexOf(want.text) < 0) { return false; }
    }
    return true;
  }

  function applyFilters() {
    var want = { ev: f.ev.value === "" ? "" : Number(f.ev.value), bench: f.bench.value, outcome: f.outcome.value,
                 flip: f.flip.value, text: f.text.value.trim().toLowerCase() };
    state.matches = [];
    for (var i = 0; i < data.items.length; i++) {
      if (matches(data.items[i], want)) { state.matches.push(i); }
    }
    state.page = 0;
    renderList();
  }

  function renderList() {
    var pages = Math.max(1, Math.ceil(state.matches.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * PAGE;
    var rows = document.createDocumentFragment();
    state.matches.slice(start, start + PAGE).forEach(function (index) {
      var item = data.items[index];
      var tr = el("tr");
      tr.dataset.row = String(index);
      if (index === state.selected) { tr.className = "selected"; }
      tr.appendChild(el("td", null, data.evals[item.e].label));
      tr.appendChild(el("td", "id", item.id)).title = item.id;
      tr.appendChild(el("td")).appendChild(badge(item.o, OUTCOME[item.o] || item.o));
      tr.appendChild(el("td", null, item.g));
      tr.appendChild(el("td", null, item.p === null || item.p === undefined ? "—" : item.p));
      var flip = tr.appendChild(el("td"));
      if (item.flip) { flip.appendChild(badge(item.flip, FLIP[item.flip])); }
      tr.addEventListener("click", function () { showItem(index); });
      rows.appendChild(tr);
    });
    list.replaceChildren(rows);
    $("items-count").textContent = state.matches.length
      ? (start + 1) + "–" + Math.min(start + PAGE, state.matches.length) + " of " + state.matches.length + " items"
      : "no items match";
    $("p-prev").disabled = state.page === 0;
    $("p-next").disabled = state.page >= pages - 1;
  }

  function optionList(item, question) {
    var ul = el("ul", "options");
    Object.keys(question.options).forEach(function (letter) {
      var li = el("li");
      if (letter === item.g) { li.classList.add("gold"); }
      if (letter === item.p) { li.classList.add("pred"); }
      li.appendChild(el("strong", null, letter));
      li.appendChild(el("span", null, question.options[letter]));
      var tags = [];
      if (letter === item.g) { tags.push("gold"); }
      if (letter === item.p) { tags.push("model"); }
      var right = el("span", "tag");
      if (item.pr && item.pr[letter] !== undefined) {
        var bar = el("span", "prob");
        bar.style.width = Math.round(item.pr[letter] * 80) + "px";
        right.appendChild(bar);
        tags.unshift("p=" + Number(item.pr[letter]).toFixed(3));
      }
      right.appendChild(document.createTextNode(tags.join(" · ")));
      li.appendChild(right);
      ul.appendChild(li);
    });
    return ul;
  }

  function outputBlock(item) {
    var pre = el("div", "output");
    var text = item.out, fin = item.fin === undefined ? text.length : item.fin;
    var hl = item.hl || [fin, fin];
    pre.appendChild(document.createTextNode(text.slice(0, fin)));
    var finalPart = pre.appendChild(el("span", "final"));
    finalPart.appendChild(document.createTextNode(text.slice(fin, hl[0])));
    if (item.hl) { finalPart.appendChild(el("mark", null, text.slice(hl[0], hl[1]))); }
    finalPart.appendChild(document.createTextNode(text.slice(hl[1])));
    if (!text.length) { pre.textContent = "(empty output)"; }
    return pre;
  }

  function showItem(index) {
    var item = data.items[index], question = data.questions[item.q], ev = data.evals[item.e];
    state.selected = index;
    var box = $("item-detail");
    box.replaceChildren();
    var head = el("div");
    head.appendChild(el("strong", null, item.id + " "));
    head.appendChild(badge(item.o, OUTCOME[item.o] || item.o));
    if (item.flip) { head.appendChild(document.createTextNode(" ")); head.appendChild(badge(item.flip, FLIP[item.flip])); }
    box.appendChild(head);
    box.appendChild(el("div", "muted", ev.label + " · " + ev.benchmark + " · " + ev.protocol + (item.subj ? " · " + item.subj : "")));
    box.appendChild(el("h4", null, "Question"));
    box.appendChild(el("div", "question", question.text));
    if (Object.keys(question.options).length) {
      box.appendChild(el("h4", null, "Options" + (item.pr ? " and model probabilities" : "")));
      box.appendChild(optionList(item, question));
    }
    var summary = "gold " + (item.g === null ? "—" : item.g) + ", model " + (item.p === null || item.p === undefined ? "no answer (unparseable)" : item.p);
    if (item.m) { summary += " (extracted by " + item.m + ")"; }
    if (item.rouge !== undefined) { summary += ", ROUGE-L F1 " + item.rouge; }
    if (item.votes) { summary += ", votes " + JSON.stringify(item.votes); }
    box.appendChild(el("p", null, summary));
    if (item.out !== undefined) {
      box.appendChild(el("h4", null, item.votes ? "Model output (full, first sample; the answer is the majority vote)" : "Model output (full)"));
      box.appendChild(outputBlock(item));
      var legend = el("div", "legend");
      legend.appendChild(el("span", "final", "final-answer part (what the extractor reads)"));
      legend.appendChild(document.createTextNode(" "));
      legend.appendChild(el("mark", null, "extracted answer"));
      box.appendChild(legend);
    }
    if (item.pair !== undefined) {
      var other = data.items[item.pair];
      var p = el("p");
      p.appendChild(document.createTextNode("Same item in " + data.evals[other.e].label + ": "));
      p.appendChild(badge(other.o, OUTCOME[other.o] || other.o));
      p.appendChild(document.createTextNode(" "));
      var link = el("a", "item-link", "open it");
      link.href = "#items";
      link.addEventListener("click", function (e) { e.preventDefault(); showItem(item.pair); });
      p.appendChild(link);
      box.appendChild(p);
    }
    Array.prototype.forEach.call(list.querySelectorAll("tr"), function (tr) {
      tr.classList.toggle("selected", Number(tr.dataset.row) === index);
    });
  }

  var typing = null;
  [f.ev, f.bench, f.outcome, f.flip].forEach(function (s) { s.addEventListener("change", applyFilters); });
  f.text.addEventListener("input", function () { clearTimeout(typing); typing = setTimeout(applyFilters, 150); });
  $("p-prev").addEventListener("click", function () { state.page -= 1; renderList(); });
  $("p-next").addEventListener("click", function () { state.page += 1; renderList(); });
  Array.prototype.forEach.call(document.querySelectorAll("[data-open-row]"), function (a) {
    a.addEventListener("click", function () { showItem(Number(a.dataset.openRow)); });
  });
  applyFilters();
  document.body.dataset.itemsReady = "1";
})();
