// Class search: matching (pure) and an accessible combobox (type-ahead, arrow keys, Enter, Escape).

export function normalise(text) {
  return text.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
    .replace(/[^a-z0-9]+/g, " ").trim();
}

// An index over the class names; `search(query)` ranks: exact, prefix, a word starting with the query,
// every query word starting a word of the name (any order), substring, every query word a substring.
export function makeIndex(names) {
  const rows = names.map((name, i) => {
    const norm = normalise(name);
    return { name, i, norm, words: norm.split(" ") };
  });
  return function search(query, { exclude = new Set(), limit = 12 } = {}) {
    const q = normalise(query);
    if (!q) return [];
    const qWords = q.split(" ");
    const hits = [];
    for (const row of rows) {
      if (exclude.has(row.name)) continue;
      let score;
      if (row.norm === q) score = 0;
      else if (row.norm.startsWith(q)) score = 1;
      else if (row.words.some((w) => w.startsWith(q))) score = 2;
      else if (qWords.every((qw) => row.words.some((w) => w.startsWith(qw)))) score = 3;
      else if (row.norm.includes(q)) score = 4;
      else if (qWords.every((qw) => row.norm.includes(qw))) score = 5;
      else continue;
      hits.push([score, row]);
    }
    hits.sort((a, b) => a[0] - b[0] || a[1].norm.length - b[1].norm.length || a[1].i - b[1].i);
    return hits.slice(0, limit).map((h) => h[1].name);
  };
}

// Wire a text input + listbox as a combobox. onPick(name) is called when a class is chosen.
export function attachCombobox({ input, list, names, exclude = () => new Set(), onPick }) {
  const search = makeIndex(names);
  let results = [];
  let active = -1;
  const idBase = list.id || "search-results";

  function close() {
    list.hidden = true;
    list.replaceChildren();
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    results = [];
    active = -1;
  }

  function setActive(i) {
    active = i;
    [...list.children].forEach((li, j) => li.setAttribute("aria-selected", String(j === i)));
    if (i >= 0 && list.children[i]) {
      input.setAttribute("aria-activedescendant", list.children[i].id);
      list.children[i].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function render() {
    results = search(input.value, { exclude: exclude() });
    list.replaceChildren();
    if (!input.value.trim()) return close();
    if (!results.length) {
      const li = document.createElement("li");
      li.className = "search-empty";
      li.textContent = "No class matches";
      li.setAttribute("aria-disabled", "true");
      list.append(li);
    }
    results.forEach((name, j) => {
      const li = document.createElement("li");
      li.id = `${idBase}-opt-${j}`;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.textContent = name;
      li.addEventListener("mousedown", (e) => { e.preventDefault(); pick(j); });
      list.append(li);
    });
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    setActive(results.length ? 0 : -1);
  }

  function pick(j) {
    const name = results[j];
    if (name === undefined) return;
    input.value = "";
    close();
    onPick(name);
  }

  input.addEventListener("input", render);
  input.addEventListener("blur", () => setTimeout(close, 100));
  input.addEventListener("keydown", (e) => {
    e.stopPropagation();  // page shortcuts are off while typing
    if (e.key === "ArrowDown") {
      e.preventDefault();
      if (list.hidden) render();
      else if (results.length) setActive((active + 1) % results.length);
    } else if (e.key === "ArrowUp") {
      e.preventDefault();
      if (results.length) setActive((active - 1 + results.length) % results.length);
    } else if (e.key === "Enter") {
      e.preventDefault();
      if (active >= 0) pick(active);
    } else if (e.key === "Escape") {
      e.preventDefault();
      if (!list.hidden) close();
      else { input.value = ""; input.blur(); }
    }
  });
  return { close, search };
}
