// Expert page: filter the full class list (substring and word match, as on the HIT page), count ticks.
import { makeIndex } from "../hit/search.js";

const rows = [...document.querySelectorAll("#class-rows li")];
const filter = document.getElementById("class-filter");
const onlyTicked = document.getElementById("only-ticked");
const count = document.getElementById("tick-count");
const noMatch = document.getElementById("no-match");
const search = makeIndex(rows.map((li) => li.dataset.name));

function isTicked(li) { return [...li.querySelectorAll("input")].some((i) => i.checked); }

function apply() {
  const q = filter.value.trim();
  const hits = q ? new Set(search(q, { limit: Infinity })) : null;
  let shown = 0;
  for (const li of rows) {
    const visible = (!hits || hits.has(li.dataset.name)) && (!onlyTicked.checked || isTicked(li));
    li.hidden = !visible;
    shown += visible;
  }
  noMatch.hidden = shown > 0;
}

function recount() {
  for (const li of rows) li.classList.toggle("ticked", isTicked(li));
  count.textContent = `${rows.filter(isTicked).length} ticked`;
  if (onlyTicked.checked) apply();
}

// The questions about the original dataset label tick that class's row, as the merge counts it: present and
// audible -> Audible ticked, present and visible -> Visible ticked, not present -> neither.
const originals = rows.filter((li) => li.dataset.original === "true");
const form = document.getElementById("gold-form");
function answer(key) {
  const checked = form.querySelector(`input[name="${key}"]:checked`);
  return checked ? checked.value === "yes" : null;
}
function syncOriginals() {
  const present = answer("original_present");
  if (present === null) return;
  for (const li of originals) {
    for (const field of ["audible", "visible"]) {
      const box = li.querySelector(`input[name="${field}"]`);
      box.checked = present && answer(`original_${field}`) === true;
    }
  }
  recount();
}
for (const input of form.querySelectorAll('input[name^="original_"]')) input.addEventListener("change", syncOriginals);

// ...and ticking the original class's row by hand answers those questions the same way
function setAnswer(key, value) {
  const radio = form.querySelector(`input[name="${key}"][value="${value ? "yes" : "no"}"]`);
  if (radio) radio.checked = true;
}
document.getElementById("class-rows").addEventListener("change", (e) => {
  const li = e.target.closest("li");
  if (li && li.dataset.original === "true" && originals.length === 1 && form.querySelector('input[name="original_present"]')) {
    const audible = li.querySelector('input[name="audible"]').checked;
    const visible = li.querySelector('input[name="visible"]').checked;
    setAnswer("original_present", audible || visible);
    setAnswer("original_audible", audible);
    setAnswer("original_visible", visible);
  }
  recount();
});
filter.addEventListener("input", apply);
filter.addEventListener("keydown", (e) => {
  if (e.key === "Enter") {  // Enter jumps to the first match instead of submitting the form
    e.preventDefault();
    const first = rows.find((li) => !li.hidden);
    if (first) first.querySelector("input").focus();
  }
});
onlyTicked.addEventListener("change", apply);
