"use strict";
// The review page of sklearn_birdaudio.review.export_review. Data comes from the JSON block
// and is only ever written with textContent (never innerHTML): labels and file names are
// arbitrary text. Verdicts are kept in localStorage until saved, so a closed tab loses
// nothing; "Save review.csv" writes review.csv with the verdicts filled in.
(function () {
  const data = JSON.parse(document.getElementById("review-data").textContent);
  const VERDICTS = { y: "yes", n: "no", u: "unsure" };
  const storageKey = "sklearn-birdaudio-review:" + data.token;
  const cards = [];
  let current = 0;

  function loadStored() {
    try {
      return JSON.parse(window.localStorage.getItem(storageKey) || "{}");
    } catch (error) {
      return {};
    }
  }

  function store() {
    const verdicts = {};
    for (const row of data.rows) {
      if (row.verdict) verdicts[row.review_id] = row.verdict;
    }
    try {
      window.localStorage.setItem(storageKey, JSON.stringify(verdicts));
    } catch (error) {
      // Storage may be off (private windows, some file:// settings): saving still works.
    }
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function seconds(value) {
    return Number(value).toFixed(2) + " s";
  }

  function buildCard(row, index) {
    const card = element("section", "card");
    card.id = "card-" + index;
    card.dataset.reviewId = row.review_id;
    const title = element("div", "title");
    title.appendChild(element("span", "label", row.label));
    title.appendChild(element("span", "score", "score " + Number(row.confidence).toFixed(3)));
    card.appendChild(title);
    if (row.spectrogram) {
      const image = element("img");
      image.alt = "log-mel spectrogram of the clip, the detection window shaded";
      image.src = row.spectrogram;
      card.appendChild(image);
    }
    const audio = element("audio");
    audio.controls = true;
    audio.preload = "metadata";
    audio.src = row.clip;
    card.appendChild(audio);
    card.appendChild(
      element(
        "div",
        "where",
        row.file + "  " + seconds(row.start_s) + " to " + seconds(row.end_s) +
          "  (in the clip: " + seconds(row.clip_start_s) + " to " + seconds(row.clip_end_s) +
          ")  #" + row.review_id + "  " + (index + 1) + "/" + data.rows.length
      )
    );
    const controls = element("div", "controls");
    for (const verdict of ["yes", "no", "unsure"]) {
      const button = element("button", "", verdict);
      button.type = "button";
      button.addEventListener("click", function (event) {
        event.stopPropagation();
        select(index, false);
        mark(verdict, false);
      });
      controls.appendChild(button);
    }
    const badge = element("span", "verdict none");
    controls.appendChild(badge);
    card.appendChild(controls);
    card.addEventListener("click", function () {
      select(index, false);
    });
    return { card: card, audio: audio, badge: badge, row: row };
  }

  function showVerdict(index) {
    const entry = cards[index];
    const verdict = entry.row.verdict;
    entry.badge.className = "verdict " + (verdict || "none");
    entry.badge.textContent = verdict || "not reviewed";
  }

  function showProgress() {
    const done = data.rows.filter(function (row) {
      return row.verdict;
    }).length;
    document.getElementById("progress").textContent =
      done + " of " + data.rows.length + " reviewed";
  }

  function select(index, scroll) {
    if (!cards.length) return;
    index = Math.max(0, Math.min(cards.length - 1, index));
    cards[current].card.classList.remove("current");
    current = index;
    cards[current].card.classList.add("current");
    if (scroll) cards[current].card.scrollIntoView({ block: "center" });
  }

  function mark(verdict, advance) {
    if (!cards.length) return;
    cards[current].row.verdict = verdict;
    showVerdict(current);
    showProgress();
    store();
    if (advance) select(current + 1, true);
  }

  function csvText() {
    // Every cell but the verdict is written exactly as review.csv holds it (escaped and
    // quoted by the exporter); verdicts are plain words that need no quoting.
    const lines = [data.header];
    for (const row of data.rows) lines.push(row.cells.concat([row.verdict]).join(","));
    return lines.join("\n") + "\n";
  }

  function save() {
    const blob = new Blob([csvText()], { type: "text/csv;charset=utf-8" });
    const url = URL.createObjectURL(blob);
    const link = element("a");
    link.href = url;
    link.download = "review.csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    window.setTimeout(function () {
      URL.revokeObjectURL(url);
    }, 10000);
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === "j" || key === "ArrowDown" || key === "ArrowRight") {
      select(current + 1, true);
    } else if (key === "k" || key === "ArrowUp" || key === "ArrowLeft") {
      select(current - 1, true);
    } else if (key in VERDICTS) {
      mark(VERDICTS[key], true);
    } else if (key === "x" || key === "Backspace" || key === "Delete") {
      mark("", false);
    } else if (key === " " || key === "p") {
      const audio = cards.length ? cards[current].audio : null;
      if (audio) {
        if (audio.paused) audio.play().catch(function () {});
        else audio.pause();
      }
    } else {
      return;
    }
    event.preventDefault();
  }

  const stored = loadStored();
  const container = document.getElementById("cards");
  data.rows.forEach(function (row, index) {
    if (["yes", "no", "unsure"].includes(stored[row.review_id])) {
      row.verdict = stored[row.review_id];
    }
    const entry = buildCard(row, index);
    cards.push(entry);
    container.appendChild(entry.card);
    showVerdict(index);
  });
  showProgress();
  select(0, false);
  document.addEventListener("keydown", onKey);
  document.getElementById("save").addEventListener("click", save);
})();
