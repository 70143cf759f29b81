// The review screen: keys for the decision (A approve, R reject: then type the reason and press Enter), J/K to go
// through the clips, N for the next waiting assignment; on a batch, "select all" picks the waiting assignments.
const $ = (id) => document.getElementById(id);

function isTyping(t) {
  if (!t || !t.tagName) return false;
  if (t.isContentEditable || t.tagName === "TEXTAREA" || t.tagName === "SELECT") return true;
  return t.tagName === "INPUT" && !["checkbox", "radio", "button", "submit", "reset"].includes(t.type);
}

const clips = [...document.querySelectorAll(".review-clip")];
let current = -1;

function goClip(delta) {
  if (!clips.length) return;
  current = Math.max(0, Math.min(clips.length - 1, current + delta));
  clips.forEach((li, i) => li.classList.toggle("current", i === current));
  clips[current].scrollIntoView({ block: "start" });
  clips[current].focus({ preventScroll: true });
}

function choose(id) {
  const radio = $(id);
  if (!radio) return;
  radio.checked = true;
  $("reason").focus();
}

document.addEventListener("keydown", (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey || isTyping(e.target)) return;
  const key = e.key.toLowerCase();
  const actions = {
    a: () => choose("decide-approve"),
    r: () => choose("decide-reject"),
    j: () => goClip(1),
    k: () => goClip(-1),
    n: () => { const link = $("next-assignment"); if (link) link.click(); },
  };
  if (actions[key] && (key !== "a" && key !== "r" ? true : $("decision-form"))) {
    e.preventDefault();
    actions[key]();
  }
});

// a clip's video plays one at a time
for (const video of document.querySelectorAll(".review-clip video")) {
  video.addEventListener("play", () => {
    for (const other of document.querySelectorAll(".review-clip video")) if (other !== video) other.pause();
  });
}

const all = $("select-all");
if (all) {
  all.addEventListener("change", () => {
    for (const box of document.querySelectorAll('input[name="assignment"][data-waiting="true"]')) box.checked = all.checked;
  });
}
