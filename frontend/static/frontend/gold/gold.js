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

document.getElementById("class-rows").addEventListener("change", (e) => {
  const li = e.target.closest("li");
  if (li) li.classList.toggle("ticked", isTicked(li));
  count.textContent = `${rows.filter(isTicked).length} ticked`;
  if (onlyTicked.checked) apply();
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
