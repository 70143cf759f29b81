// The HIT page: one clip at a time, autosave with a retry queue, review, submit, marketplace hand-off.
import { ApiError, HitApi, SaveQueue, storageGet, storageSet, withRetry } from "./api.js";
import { attachCombobox } from "./search.js";

const PLAYED_FRACTION = 0.9;   // a clip counts as played once real playback (not scrubbing) covered 90 % of it
const BINS = 40;               // playback coverage is tracked in 40 slices of the clip
const HAVE_CURRENT_DATA = 2;   // HTMLMediaElement.readyState once a picture can be shown

const $ = (id) => document.getElementById(id);
const root = $("hit-app");
const api = new HitApi(root.dataset.api, root.dataset.batch);
const el = {
  progress: $("progress"), progressBar: $("progress-bar"), status: $("save-status"), message: $("message"),
  preview: $("preview-banner"), video: $("video"), videoError: $("video-error"), playState: $("play-state"),
  meta: $("meta-form"), rows: $("label-rows"), search: $("class-search"), results: $("search-results"),
  nav: $("hit-nav"), prev: $("btn-prev"), next: $("btn-next"), review: $("btn-review"), submit: $("btn-submit"),
  hint: $("nav-hint"), play: $("btn-play"), replay: $("btn-replay"),
  comment: $("comment"), commentBox: $("comment-box"), noProposals: $("no-proposals"),
};
const views = ["loading", "error", "instructions", "clip", "review", "done"];
const mediaTimeoutMs = 1000 * (Number(root.dataset.mediaTimeout) || 20);
let mediaTimer = null;
let mediaProblem = null;       // what is wrong with the loaded clip's media (shown over the player), or null

const state = {
  session: null, clips: [], meta: [], classes: [], preview: false, position: 0, view: "loading",
  answers: {},     // video_id -> payload (contract shape)
  added: {},       // video_id -> [class names added through the search]
  playback: {},    // video_id -> {bins: Set, played, watch}
  queue: null, submitting: false, startedAt: Date.now(),
  blocked: false,  // the "Before moving on…" banner is up: it follows the clip's problems and goes when they do
  row: 0,          // the highlighted class row (keys A / V tick it, arrows move it)
};
let commentTimer = null;

// ---------------------------------------------------------------- helpers
function show(view) {
  state.view = view;
  root.dataset.state = view;
  for (const v of views) $(`view-${v}`).hidden = v !== view;
  el.nav.hidden = !(view === "clip" || view === "review");
  if (view !== "clip" && !el.video.paused) el.video.pause();
  renderNav();
}

function flash(text, kind = "warn") {
  state.blocked = false;
  el.message.textContent = text;
  el.message.dataset.kind = kind;
  el.message.hidden = !text;
}

function storageKey(what) { return `avcrowd.hit.${what}.${state.session.assignment || root.dataset.batch}`; }

function blankAnswer(clip) {
  return {
    background_music: null, voice_over: null, static_image: null, played: false, watch_seconds: 0,
    labels: clip.proposals.map((name) => ({ name, audible: false, visible: false })), comment: "",
    media_failed: false,
  };
}

function currentClip() { return state.clips[state.position]; }

function answerOf(clip) {
  if (!state.answers[clip.video_id]) state.answers[clip.video_id] = blankAnswer(clip);
  return state.answers[clip.video_id];
}

function labelOf(answer, name) {
  let label = answer.labels.find((l) => l.name === name);
  if (!label) {
    label = { name, audible: false, visible: false };
    answer.labels.push(label);
  }
  return label;
}

function problemsOf(clip) {
  const answer = answerOf(clip);
  if (answer.media_failed) return [];   // reported as not loading or playing: nothing more is asked
  const problems = [];
  if (!answer.played) problems.push("play the clip");
  for (const m of state.meta) {
    if (answer[m.key] === null || answer[m.key] === undefined) problems.push(`answer "${m.key.replace(/_/g, " ")}"`);
  }
  return problems;
}

// ---------------------------------------------------------------- saving
function save(clip) {
  if (state.preview || !state.queue) return;
  const answer = answerOf(clip);
  answer.watch_seconds = Math.round(playbackOf(clip).watch * 10) / 10;
  state.queue.put(`answer:${clip.video_id}`, "answer", { video_id: clip.video_id, payload: structuredClone(answer) });
}

function savePosition() {
  if (state.preview || !state.queue) return;
  state.queue.put("position", "position", { position: state.position });
}

function sendItem(item) {
  if (item.kind === "answer") return api.saveAnswer(item.data.video_id, item.data.payload);
  return api.savePosition(item.data.position);
}

function renderSaveStatus(queue) {
  const n = queue.size;
  let text;
  if (queue.state === "offline") text = `Offline, will retry (${n} unsaved change${n === 1 ? "" : "s"})`;
  else if (queue.state === "saving" || n) text = "Saving…";
  else if (queue.state === "error") text = "Not saved";
  else text = "All changes saved";
  el.status.textContent = text;
  el.status.dataset.state = n && queue.state !== "offline" ? "saving" : queue.state;
  if (queue.state === "error" && queue.error) {
    flash(`A change could not be saved: ${queue.error.message}`, "error");
  }
}

// ---------------------------------------------------------------- playback
function playbackOf(clip) {
  if (!state.playback[clip.video_id]) {
    const answer = answerOf(clip);
    state.playback[clip.video_id] = { bins: new Set(), played: !!answer.played, watch: answer.watch_seconds || 0,
                                      last: null };
  }
  return state.playback[clip.video_id];
}

function renderPlayState(clip) {
  const pb = playbackOf(clip);
  const d = el.video.duration;
  const failed = !!answerOf(clip).media_failed && !pb.played;
  el.playState.dataset.played = String(pb.played);
  el.playState.dataset.failed = String(failed);
  if (failed) el.playState.textContent = "Reported as not playing (skipped)";
  else if (pb.played) el.playState.textContent = `Played ✓ (watched ${pb.watch.toFixed(1)} s)`;
  else if (pb.bins.size && d) el.playState.textContent = `Playing… ${Math.round(100 * pb.bins.size / BINS)} % seen`;
  else el.playState.textContent = "Not played yet";
  el.play.textContent = el.video.paused ? "Play" : "Pause";
}

function markPlayed(clip) {
  const pb = playbackOf(clip);
  if (pb.played) return;
  pb.played = true;
  answerOf(clip).played = true;
  save(clip);
  renderNav();
}

function trackTime() {
  const clip = currentClip();
  if (!clip || el.video.dataset.videoId !== clip.video_id) return;
  const pb = playbackOf(clip);
  const t = el.video.currentTime;
  const d = el.video.duration;
  if (pb.last !== null && !el.video.seeking && d) {
    const delta = t - pb.last;
    if (delta > 0 && delta < 5) {   // real playback (jumps reset `last` through the seeking event)
      pb.watch += delta;
      const a = Math.floor((pb.last / d) * BINS);
      const b = Math.min(BINS - 1, Math.floor((t / d) * BINS - 1e-9));
      for (let i = a; i <= b; i += 1) pb.bins.add(i);
      if (pb.bins.size >= PLAYED_FRACTION * BINS) markPlayed(clip);
    }
  }
  pb.last = t;
  renderPlayState(clip);
}

// A clip whose media does not load: the worker reports it and moves on (the clip needs no answers; the
// report reaches the admins). If it plays after all (Try again), the report is taken back.
function reportMediaFailed() {
  const clip = currentClip();
  if (!clip || state.preview || state.view !== "clip") return;
  answerOf(clip).media_failed = true;
  save(clip);
  renderPlayState(clip);
  renderNav();
  flash("Thank you: the clip is reported as not playing. You can move on to the next one.", "info");
}

function mediaPlays() {
  const clip = currentClip();
  mediaProblem = null;
  el.videoError.hidden = true;
  if (!clip || state.preview || !answerOf(clip).media_failed) return;
  answerOf(clip).media_failed = false;
  save(clip);
  renderPlayState(clip);
  renderNav();
}

function togglePlay() {
  if (state.view !== "clip") return;
  if (el.video.paused || el.video.ended) el.video.play().catch(() => {});
  else el.video.pause();
}

// ---------------------------------------------------------------- rendering a clip
function renderMeta(clip) {
  const answer = answerOf(clip);
  el.meta.replaceChildren();
  el.meta.disabled = state.preview;
  for (const m of state.meta) {
    const fs = document.createElement("fieldset");
    fs.className = "meta-q";
    fs.dataset.key = m.key;
    const legend = document.createElement("legend");
    legend.textContent = m.question;
    fs.append(legend);
    for (const [value, text] of [[true, "Yes"], [false, "No"]]) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "radio";
      input.name = `meta-${m.key}`;
      input.value = value ? "yes" : "no";
      input.checked = answer[m.key] === value;
      input.disabled = state.preview;
      input.addEventListener("change", () => {
        answer[m.key] = value;
        save(clip);
        renderNav();
      });
      label.append(input, " ", text);
      fs.append(label);
    }
    el.meta.append(fs);
  }
}

function renderRows(clip) {
  const answer = answerOf(clip);
  const added = state.added[clip.video_id] || [];
  const names = [...clip.proposals, ...added.filter((n) => !clip.proposals.includes(n))];
  el.rows.replaceChildren();
  el.noProposals.hidden = names.length > 0;
  state.row = Math.max(0, Math.min(names.length - 1, state.row));
  names.forEach((name, index) => {
    const label = labelOf(answer, name);
    const li = document.createElement("li");
    li.className = "label-row";
    li.dataset.name = name;
    if (!clip.proposals.includes(name)) li.classList.add("added");
    const span = document.createElement("span");
    span.className = "label-name";
    span.textContent = name;
    li.append(span);
    for (const field of ["audible", "visible"]) {
      const box = document.createElement("label");
      box.className = `tick tick-${field}`;
      const input = document.createElement("input");
      input.type = "checkbox";
      input.setAttribute("aria-label", `${name} ${field}`);
      input.checked = !!label[field];
      input.disabled = state.preview;
      input.addEventListener("change", () => {
        label[field] = input.checked;
        li.classList.toggle("ticked", label.audible || label.visible);
        save(clip);
      });
      const text = document.createElement("span");
      text.className = "tick-text";
      text.textContent = field === "audible" ? "Audible" : "Visible";
      box.append(input, text);
      li.append(box);
    }
    li.classList.toggle("ticked", label.audible || label.visible);
    li.classList.toggle("current", index === state.row);
    li.addEventListener("focusin", () => setRow(index, false));
    li.addEventListener("pointerdown", () => setRow(index, false));
    el.rows.append(li);
  });
}

function rowElements() { return [...el.rows.querySelectorAll("li.label-row")]; }

function setRow(index, focus = true) {
  const rows = rowElements();
  if (!rows.length) return;
  state.row = Math.max(0, Math.min(rows.length - 1, index));
  rows.forEach((li, i) => {
    li.classList.toggle("current", i === state.row);
    if (i === state.row) li.setAttribute("aria-current", "true");
    else li.removeAttribute("aria-current");
  });
  const li = rows[state.row];
  li.scrollIntoView({ block: "nearest" });
  if (focus) {
    const active = document.activeElement;
    const field = active && active.closest && active.closest(".tick-visible") ? "visible" : "audible";
    li.querySelector(`.tick-${field} input`).focus({ preventScroll: true });
  }
}

function toggleRow(field) {
  const li = rowElements()[state.row];
  if (!li || state.preview) return;
  const input = li.querySelector(`.tick-${field} input`);
  input.checked = !input.checked;
  input.dispatchEvent(new Event("change", { bubbles: true }));
}

function renderComment(clip) {
  const answer = answerOf(clip);
  el.comment.value = answer.comment || "";
  el.comment.disabled = state.preview;
  el.commentBox.open = !!answer.comment;
}

function onComment() {
  const clip = currentClip();
  if (!clip || state.preview) return;
  answerOf(clip).comment = el.comment.value;
  clearTimeout(commentTimer);
  commentTimer = setTimeout(() => save(clip), 500);
}

function showMediaProblem(text) {
  mediaProblem = text;
  $("video-error-text").textContent = text;
  el.videoError.hidden = false;
}

function loadVideo(clip) {
  el.videoError.hidden = true;
  if (el.video.dataset.videoId === clip.video_id) {   // back on the same clip: its problem, if any, again
    if (mediaProblem) showMediaProblem(mediaProblem);
    return;
  }
  el.video.dataset.videoId = clip.video_id;
  mediaProblem = null;
  // a clip that neither loads nor fails (a stalled connection) gets the same way out as a broken one
  clearTimeout(mediaTimer);
  mediaTimer = setTimeout(() => {
    if (el.video.dataset.videoId === clip.video_id && el.video.readyState < HAVE_CURRENT_DATA && !el.video.error) {
      showMediaProblem("The clip is taking too long to load.");
    }
  }, mediaTimeoutMs);
  playbackOf(clip).last = null;
  el.video.src = clip.media_url;
  el.video.load();
  if (state.view === "clip") el.video.play().catch(() => { /* autoplay refused: the worker presses Play */ });
}

function renderClip() {
  const clip = currentClip();
  el.search.disabled = state.preview;
  renderMeta(clip);
  renderRows(clip);
  renderComment(clip);
  loadVideo(clip);
  renderPlayState(clip);
  renderNav();
}

function renderNav() {
  const n = state.clips.length;
  const total = (state.session && state.session.batch_size) || n;
  if (state.view === "review") el.progress.textContent = `Review (${total} clips)`;
  else el.progress.textContent = `Clip ${state.position + 1} of ${total}`;
  el.progressBar.max = total;
  el.progressBar.value = state.view === "review" ? total : state.position + 1;
  const clip = currentClip();
  const inReview = state.view === "review";
  el.prev.disabled = inReview ? false : state.position === 0;
  el.next.hidden = inReview;
  el.submit.hidden = !inReview;
  el.review.hidden = inReview || state.preview;
  if (!clip) return;
  if (state.preview) {
    el.next.disabled = true;
    el.hint.textContent = "Preview: accept the HIT to start.";
    return;
  }
  if (!inReview) {
    const problems = problemsOf(clip);
    el.next.setAttribute("aria-disabled", String(problems.length > 0));
    el.next.textContent = state.position === n - 1 ? "Review →" : "Next →";
    el.hint.textContent = problems.length ? `To continue: ${problems.join(", ")}.` : "";
    if (state.blocked) {   // the banner shown by a refused "Next" follows what is still missing
      if (problems.length) el.message.textContent = `Before moving on: ${problems.join(", ")}.`;
      else flash("");
    }
  } else {
    el.hint.textContent = "";
    const ok = state.clips.every((c) => !problemsOf(c).length);
    el.submit.disabled = !ok || state.submitting;
  }
}

// ---------------------------------------------------------------- navigation
function leaveClip() {
  const clip = currentClip();
  if (!clip || state.view !== "clip") return;
  const pb = playbackOf(clip);
  if (Math.abs((answerOf(clip).watch_seconds || 0) - pb.watch) >= 0.1) save(clip);
}

function goTo(position) {
  leaveClip();
  if (commentTimer) { clearTimeout(commentTimer); commentTimer = null; save(currentClip()); }
  state.row = 0;
  state.position = Math.max(0, Math.min(state.clips.length - 1, position));
  flash("");
  show("clip");
  renderClip();
  savePosition();
}

function next() {
  if (state.preview) return;
  if (state.view === "review") return;
  const clip = currentClip();
  const problems = problemsOf(clip);
  if (problems.length) {
    flash(`Before moving on: ${problems.join(", ")}.`);
    state.blocked = true;
    return;
  }
  if (state.position >= state.clips.length - 1) openReview();
  else goTo(state.position + 1);
}

function prev() {
  if (state.view === "review") goTo(state.clips.length - 1);
  else if (state.position > 0) goTo(state.position - 1);
}

function describeTicks(answer, field) {
  const names = answer.labels.filter((l) => l[field]).map((l) => l.name);
  return names.length ? names.join(", ") : "—";
}

function openReview() {
  leaveClip();
  if (commentTimer) { clearTimeout(commentTimer); commentTimer = null; save(currentClip()); }
  flash("");
  show("review");
  const body = $("review-rows");
  body.replaceChildren();
  let bad = 0;
  state.clips.forEach((clip, i) => {
    const answer = answerOf(clip);
    const problems = problemsOf(clip);
    if (problems.length) bad += 1;
    const tr = document.createElement("tr");
    tr.dataset.videoId = clip.video_id;
    if (problems.length) tr.className = "has-problems";
    const meta = answer.media_failed ? "reported as not playing" : state.meta.map((m) => {
      const v = answer[m.key];
      return `${m.key.replace(/_/g, " ")}: ${v === true ? "yes" : v === false ? "no" : "?"}`;
    }).join("; ");
    const cells = [`${i + 1}`, meta, describeTicks(answer, "audible"), describeTicks(answer, "visible"),
                   problems.length ? problems.join("; ") : "none"];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const td = document.createElement("td");
    const edit = document.createElement("button");
    edit.type = "button";
    edit.textContent = `Edit clip ${i + 1}`;
    edit.addEventListener("click", () => goTo(i));
    td.append(edit);
    tr.append(td);
    body.append(tr);
  });
  $("review-summary").textContent = bad
    ? `${bad} clip${bad === 1 ? " has" : "s have"} problems: fix them before submitting.`
    : "Everything is answered. Check your answers, then submit.";
  renderNav();
}

// ---------------------------------------------------------------- submit and hand-off
async function submit() {
  if (state.submitting || state.preview) return;
  state.submitting = true;
  renderNav();
  try {
    if (state.queue.size) {
      flash("Saving your last answers before submitting…", "info");
      await state.queue.flushed();
    }
    const started = storageGet(storageKey("started")) || state.startedAt;
    const result = await api.submit((Date.now() - started) / 1000);
    flash("");
    handOff(result.handoff, result.status);
  } catch (err) {
    if (err instanceof ApiError && err.body.details && err.body.details.incomplete) {
      const lines = err.body.details.incomplete.map((row) => {
        const i = state.clips.findIndex((c) => c.video_id === row.video_id);
        return `clip ${i + 1}: missing ${row.missing.join(", ")}`;
      });
      flash(`The server says some answers are incomplete: ${lines.join("; ")}.`, "error");
    } else {
      flash(`Submitting failed: ${err.message}. Please try again.`, "error");
    }
  } finally {
    state.submitting = false;
    renderNav();
  }
}

function handOff(handoff, status, auto = true) {
  show("done");
  storageSet(storageKey("queue"), null);
  const text = $("done-text");
  const actions = $("done-actions");
  actions.replaceChildren();
  $("done-title").textContent = "Thank you!";
  text.textContent = "Your answers have been submitted.";
  if (!handoff) return;
  if (handoff.kind === "mturk") {
    text.textContent = "Your answers are stored. Sending the HIT to Amazon Mechanical Turk…";
    const form = document.createElement("form");
    form.method = "POST";
    form.action = handoff.action;
    form.id = "mturk-form";
    for (const [name, value] of Object.entries(handoff.fields || {})) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.append(input);
    }
    const button = document.createElement("button");
    button.type = "submit";
    button.textContent = "Send to Mechanical Turk";
    form.append(button);
    actions.append(form);
    if (auto) form.submit();
  } else if (handoff.kind === "prolific") {
    text.textContent = "Your answers are stored. Taking you back to Prolific…";
    const link = document.createElement("a");
    link.href = handoff.url;
    link.textContent = "Back to Prolific";
    actions.append(link);
    if (auto) window.location.assign(handoff.url);
  } else if (handoff.kind === "inhouse") {
    const link = document.createElement("a");
    link.href = handoff.next_url;
    link.id = "next-batch";
    link.className = "btn-primary";
    link.textContent = handoff.next_url === "/" ? "Back to the start page" : "Next batch →";
    actions.append(link);
  }
  if (status === "rejected") text.textContent += " (This assignment did not pass the quality check.)";
}

// ---------------------------------------------------------------- keyboard
function isTyping(t) {
  if (!t || !t.tagName) return false;
  if (t.isContentEditable || t.tagName === "TEXTAREA" || t.tagName === "SELECT") return true;
  return t.tagName === "INPUT" && !["checkbox", "radio", "button", "submit", "reset"].includes(t.type);
}

function onKey(e) {
  if (e.altKey || e.ctrlKey || e.metaKey || e.defaultPrevented) return;
  const t = e.target;
  if (isTyping(t)) return;
  const isButton = t.tagName === "BUTTON" || t.tagName === "A" || t.tagName === "SUMMARY";
  const isRadio = t.tagName === "INPUT" && t.type === "radio";
  const isBox = t.tagName === "INPUT" && t.type === "checkbox";
  if (e.key === "?") { e.preventDefault(); openInstructions(); return; }
  if (state.view === "instructions") {
    if (e.key === "Enter" && !isButton) { e.preventDefault(); startFromInstructions(); }
    return;
  }
  if (state.view !== "clip" && state.view !== "review") return;
  switch (e.key) {
    case " ":
    case "Spacebar":
      if (isButton || isRadio || isBox || state.view !== "clip") return;  // native activation wins
      e.preventDefault();
      togglePlay();
      break;
    case "ArrowRight":
      if (isRadio) return;
      e.preventDefault();
      next();
      break;
    case "ArrowLeft":
      if (isRadio) return;
      e.preventDefault();
      prev();
      break;
    case "Enter":
      if (isButton) return;
      e.preventDefault();
      next();
      break;
    case "/":
      if (state.view === "clip" && !state.preview) { e.preventDefault(); el.search.focus(); }
      break;
    case "ArrowDown":
    case "ArrowUp":
      if (isRadio || state.view !== "clip") return;
      e.preventDefault();
      setRow(state.row + (e.key === "ArrowDown" ? 1 : -1));
      break;
    case "a":
    case "A":
    case "v":
    case "V":
      if (state.view !== "clip") return;
      e.preventDefault();
      toggleRow(e.key.toLowerCase() === "a" ? "audible" : "visible");
      break;
    default:
  }
}

// ---------------------------------------------------------------- instructions
function openInstructions() {
  if (!state.session || state.view === "done" || state.view === "error") return;
  state.returnTo = state.view === "review" ? "review" : "clip";
  show("instructions");
  $("btn-start").textContent = state.seenInstructions ? "Back to the task" : "Start";
  $("btn-start").focus();
}

function startFromInstructions() {
  state.seenInstructions = true;
  storageSet(`avcrowd.hit.instructions.${root.dataset.batch}`, true);
  if (state.returnTo === "review") openReview();
  else {
    show("clip");
    renderClip();
    el.video.play().catch(() => {});
  }
}

// ---------------------------------------------------------------- start-up
function restore(session) {
  state.session = session;
  state.preview = !!session.preview;
  state.clips = session.clips || [];
  state.meta = session.meta || [];
  state.classes = session.classes || [];
  api.token = session.token;
  api.assignment = session.assignment;
  for (const clip of state.clips) {
    const saved = session.answers && session.answers[clip.video_id];
    const answer = blankAnswer(clip);
    if (saved) Object.assign(answer, saved, { labels: [...(saved.labels || [])] });
    // every proposal gets a row, in the proposal order; then the classes the worker added
    const byName = new Map(answer.labels.map((l) => [l.name, l]));
    answer.labels = clip.proposals.map((name) => byName.get(name) || { name, audible: false, visible: false });
    const added = [...byName.keys()].filter((n) => !clip.proposals.includes(n));
    answer.labels.push(...added.map((n) => byName.get(n)));
    state.added[clip.video_id] = added;
    state.answers[clip.video_id] = answer;
  }
  state.position = Math.max(0, Math.min(state.clips.length - 1, session.position || 0));
}

function applyUnsent(queue) {
  // Changes saved in this browser but not yet sent are newer than the server's copy.
  for (const item of queue.pending()) {
    if (item.kind === "answer") {
      const clip = state.clips.find((c) => c.video_id === item.data.video_id);
      if (!clip) continue;
      const answer = item.data.payload;
      state.answers[clip.video_id] = answer;
      state.added[clip.video_id] = answer.labels.map((l) => l.name).filter((n) => !clip.proposals.includes(n));
    } else if (item.kind === "position") {
      state.position = Math.max(0, Math.min(state.clips.length - 1, item.data.position));
    }
  }
}

async function init() {
  let session;
  try {
    session = await withRetry(() => api.session(window.location.search), {
      onRetry: (err, delay) => {
        $("loading-text").textContent = `The server did not answer (${err.message}); trying again in ${Math.ceil(delay / 1000)} s…`;
      },
    });
  } catch (err) {
    $("error-text").textContent = err.status === 404 ? "This task does not exist (any more)."
      : err.status === 0 ? "The server cannot be reached. Check your connection and reload the page."
        : err.message;
    show("error");
    return;
  }
  restore(session);
  document.querySelectorAll(".n-clips").forEach((n) => { n.textContent = String(session.batch_size); });
  document.querySelectorAll(".n-classes").forEach((n) => { n.textContent = String(state.classes.length); });
  el.preview.hidden = !state.preview;
  const params = new URLSearchParams(window.location.search);
  if (state.preview && !params.has("assignmentId") && !params.has("PROLIFIC_PID")) {
    // no marketplace parameters and not logged in: an in-house annotator who has to log in first
    const next = encodeURIComponent(window.location.pathname + window.location.search);
    el.preview.replaceChildren("Preview: nothing is saved. ");
    const login = document.createElement("a");
    login.href = `/accounts/login/?next=${next}`;
    login.textContent = "Log in to start";
    el.preview.append(login, " (in-house annotators), or accept the HIT on your marketplace.");
  }
  if (!state.preview && session.status && session.status !== "in_progress") {
    show("done");
    $("done-title").textContent = "Already submitted";
    $("done-text").textContent = "This assignment has already been submitted. Thank you!";
    if (session.handoff) handOff(session.handoff, session.status, false);   // a button, not an automatic post
    $("done-title").textContent = "Already submitted";
    $("done-text").textContent = "This assignment has already been submitted. Thank you!";
    return;
  }
  if (!state.preview) {
    if (!storageGet(`avcrowd.hit.started.${session.assignment}`)) {
      storageSet(`avcrowd.hit.started.${session.assignment}`, Date.now());
    }
    state.queue = new SaveQueue({ storageKey: storageKey("queue"), send: sendItem, onChange: renderSaveStatus });
    applyUnsent(state.queue);
    renderSaveStatus(state.queue);
    if (state.queue.size) state.queue.kick();
  } else {
    el.status.textContent = "Preview: nothing is saved";
  }
  attachCombobox({
    input: el.search, list: el.results, names: state.classes,
    exclude: () => new Set(answerOf(currentClip()).labels.map((l) => l.name)),
    onPick: (name) => {
      const clip = currentClip();
      const answer = answerOf(clip);
      labelOf(answer, name);
      state.added[clip.video_id] = [...(state.added[clip.video_id] || []), name];
      save(clip);
      renderRows(clip);
      const row = el.rows.querySelector(`li[data-name="${CSS.escape(name)}"]`);
      if (row) { row.classList.add("just-added"); row.scrollIntoView({ block: "nearest" }); }
      el.search.focus();
    },
  });
  const answered = Object.values(session.answers || {}).length > 0;
  state.seenInstructions = !!storageGet(`avcrowd.hit.instructions.${root.dataset.batch}`) || answered;
  if (state.seenInstructions && !state.preview) {
    show("clip");
    renderClip();
  } else {
    state.returnTo = "clip";
    show("instructions");
    $("btn-start").textContent = state.preview ? "See the first clip" : "Start";
  }
}

// ---------------------------------------------------------------- wiring
el.meta.addEventListener("submit", (e) => e.preventDefault());   // Enter in the meta questions submits nothing
el.video.addEventListener("timeupdate", trackTime);
el.video.addEventListener("play", () => { const c = currentClip(); if (c) playbackOf(c).last = el.video.currentTime; renderPlayState(c); });
el.video.addEventListener("seeking", () => { const c = currentClip(); if (c) playbackOf(c).last = null; });
el.video.addEventListener("seeked", () => { const c = currentClip(); if (c) playbackOf(c).last = el.video.currentTime; });
el.video.addEventListener("pause", () => { const c = currentClip(); if (c) { renderPlayState(c); leaveClip(); } });
el.video.addEventListener("ended", () => {
  const c = currentClip();
  if (!c) return;
  trackTime();     // counts the last slice; scrubbing to the end does not make a clip "played"
  renderPlayState(c);
  leaveClip();
});
el.video.addEventListener("error", () => {
  const err = el.video.error;
  if (!el.video.getAttribute("src") || !err) return;
  console.warn(`clip media error ${err.code}: ${err.message}`);
  showMediaProblem("The clip could not be loaded.");
});
for (const type of ["loadeddata", "playing"]) el.video.addEventListener(type, mediaPlays);
$("btn-video-report").addEventListener("click", reportMediaFailed);
$("btn-video-retry").addEventListener("click", () => {
  delete el.video.dataset.videoId;
  loadVideo(currentClip());
});
el.play.addEventListener("click", togglePlay);
el.replay.addEventListener("click", () => {
  el.video.currentTime = 0;
  const c = currentClip();
  if (c) playbackOf(c).last = 0;
  el.video.play().catch(() => {});
});
el.meta.addEventListener("submit", (e) => e.preventDefault());
el.comment.addEventListener("input", onComment);
el.comment.addEventListener("blur", () => {
  if (commentTimer) { clearTimeout(commentTimer); commentTimer = null; save(currentClip()); }
});
el.prev.addEventListener("click", prev);
el.next.addEventListener("click", next);
el.review.addEventListener("click", openReview);
el.submit.addEventListener("click", submit);
$("btn-instructions").addEventListener("click", openInstructions);
$("btn-start").addEventListener("click", startFromInstructions);
window.addEventListener("keydown", onKey, true);
// After a mouse click, give the keyboard focus back to the page so Space/arrows keep their HIT meaning.
let lastPointer = 0;
root.addEventListener("pointerdown", () => { lastPointer = Date.now(); }, true);
root.addEventListener("change", (e) => {
  const t = e.target;
  if (Date.now() - lastPointer < 1500 && t.tagName === "INPUT" && (t.type === "checkbox" || t.type === "radio")) {
    t.blur();
  }
});
window.addEventListener("pagehide", leaveClip);

init();
