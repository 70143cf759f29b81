"""The self-contained crowd-form page (HTMLQuestion mode, and the template for MTurk's requester web UI), and
pure parsers for what comes back: QuestionFormAnswers XML and crowd-form `taskAnswers`: one object with one key
per clip -> {"<class> audible": bool, "<class> visible": bool, background_music, voice_over, static_image}, plus
free-text `classSearch-<i>` keys. Our page keys each clip by its clip id (media URLs are signed and change); the
VGGSounder layout keyed them by clip URL, which the parser still accepts."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import urlparse

from catalog.core.vocabulary import META_LABELS

CROWD_ELEMENTS_JS = "https://assets.crowd.aws/crowd-html-elements.js"
CLASS_SEARCH_RE = re.compile(r"^classSearch-(\d+)$")


class AnswerParseError(ValueError):
    pass


def clip_id_from_url(url: str) -> str:
    """The clip id of a media URL: its file stem (https://host/clips/--U7joUcTCo_000000.mp4 -> --U7joUcTCo_000000)."""
    path = urlparse(url).path if "://" in url else url
    stem = PurePosixPath(path).stem
    if not stem:
        raise AnswerParseError(f"cannot derive a clip id from URL {url!r} (no file name)")
    return stem


def parse_question_form_answers(xml_text: str) -> dict[str, str]:
    """QuestionFormAnswers XML (ListAssignmentsForHIT `Answer`) -> {QuestionIdentifier: FreeText}."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise AnswerParseError(f"answer XML is not well-formed: {exc}") from exc
    out: dict[str, str] = {}
    for answer in root.iter():
        if _local(answer.tag) != "Answer":
            continue
        ident, text = None, ""
        for child in answer:
            name = _local(child.tag)
            if name == "QuestionIdentifier":
                ident = (child.text or "").strip()
            elif name in ("FreeText", "SelectionIdentifier"):
                text = child.text or ""
        if ident:
            out[ident] = text
    return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _as_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, dict):  # crowd-checkbox style {"on": true}
        return any(_as_bool(v) for v in value.values())
    if isinstance(value, str):
        return value.strip().lower() in ("true", "on", "1", "yes")
    return bool(value)


@dataclass
class ParsedAnswers:
    payloads: dict[str, dict] = field(default_factory=dict)  # clip key -> answer_save payload
    unknown_classes: Counter = field(default_factory=Counter)
    comments: dict[str, str] = field(default_factory=dict)  # clip key -> classSearch text


def parse_task_answers(task_answers, clips: list, known_classes: set[str]) -> ParsedAnswers:
    """crowd-form taskAnswers (JSON text or already decoded) -> one answer payload per clip.

    clips: per clip in page order, its key or a tuple of the keys it may have (clip id first, then the media URL
    an older page used); payloads and comments are keyed by the first. Classes not in `known_classes` are
    counted in `unknown_classes` and skipped. A clip missing from the answer gets an empty payload (meta False,
    no labels). Raises AnswerParseError when the structure is wrong.
    """
    if isinstance(task_answers, str):
        try:
            task_answers = json.loads(task_answers)
        except json.JSONDecodeError as exc:
            raise AnswerParseError(f"taskAnswers is not valid JSON: {exc.msg} at character {exc.pos}") from exc
    if isinstance(task_answers, list):
        if len(task_answers) != 1 or not isinstance(task_answers[0], dict):
            raise AnswerParseError("taskAnswers must be a JSON list holding one object")
        obj = task_answers[0]
    elif isinstance(task_answers, dict):
        obj = task_answers
    else:
        raise AnswerParseError(f"taskAnswers must be a JSON list holding one object, got {type(task_answers).__name__}")
    keys = [(c,) if isinstance(c, str) else tuple(k for k in c if k) for c in clips]
    out = ParsedAnswers()
    for key, value in obj.items():
        m = CLASS_SEARCH_RE.match(key)
        if m:
            i = int(m.group(1))
            text = value if isinstance(value, str) else json.dumps(value)
            if text.strip() and 0 <= i < len(keys):
                out.comments[keys[i][0]] = text.strip()
    for aliases in keys:
        primary = aliases[0]
        raw = next((obj[k] for k in aliases if k in obj), {})
        if isinstance(raw, str):
            try:
                raw = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as exc:
                raise AnswerParseError(f"answer for {primary} is not valid JSON: {exc.msg}") from exc
        if not isinstance(raw, dict):
            raise AnswerParseError(f"answer for {primary} must be an object, got {type(raw).__name__}")
        flags: dict[str, dict[str, bool]] = {}
        for k, v in raw.items():
            if k in META_LABELS:
                continue
            name, sep, kind = k.rpartition(" ")
            if not sep or kind not in ("audible", "visible"):
                continue
            if name not in known_classes:
                out.unknown_classes[name] += 1
                continue
            flags.setdefault(name, {"audible": False, "visible": False})[kind] = _as_bool(v)
        labels = [
            {"name": n, "audible": f["audible"], "visible": f["visible"]}
            for n, f in flags.items()
            if f["audible"] or f["visible"]
        ]
        payload = {key: _as_bool(raw.get(key, False)) for key in META_LABELS}
        payload.update({"played": True, "watch_seconds": 0.0, "labels": labels})
        if primary in out.comments:
            payload["comment"] = out.comments[primary]
        out.payloads[primary] = payload
    return out


# --- the page ------------------------------------------------------------------------------------

PAGE = r"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Label sounds and sights</title>
<script src="%(crowd_js)s"></script>
<style>
body{font:15px system-ui,sans-serif;margin:0 1rem}.clip{border-top:2px solid #ccc;padding:.8rem 0}
video{width:480px;max-width:100%%}.row{display:flex;gap:1rem;align-items:center}
table{border-collapse:collapse}td,th{padding:.15rem .5rem;border-bottom:1px solid #eee;text-align:left}
</style></head><body>
<crowd-form>
<h2>Label what you hear and see</h2>
<p>For each video: play it with sound, answer the three questions, then tick <b>Audible</b> and/or <b>Visible</b>
for every class you can hear or see. Use the search box to add a class that is not listed.</p>
<div id="clips"></div>
</crowd-form>
<script>
const CLIP_IDS = %(clip_ids)s;
const VIDEO_URLS = %(video_urls)s;
const PROPOSALS = %(proposal_lists)s;
const CLASSES = %(classes)s;
const META = [["background_music","Is there background music?"],["voice_over","Is there a voice over?"],
              ["static_image","Is it a static image (or slideshow)?"]];
const state = {};
function save(i){document.getElementById("ans-"+i).value = JSON.stringify(state[i]);}
// answers are keyed by clip id: the media URLs are signed for the HIT's lifetime and never read back
function row(i, cls, tbody){
  const tr = document.createElement("tr"); tr.innerHTML = "<td></td><td></td><td></td>";
  tr.children[0].textContent = cls;
  ["audible","visible"].forEach((k,j)=>{const c=document.createElement("input");c.type="checkbox";
    c.setAttribute("aria-label", cls+" "+k);c.onchange=()=>{state[i][cls+" "+k]=c.checked;save(i);};
    state[i][cls+" "+k]=false;tr.children[j+1].appendChild(c);});
  tbody.appendChild(tr);
}
VIDEO_URLS.forEach((url,i)=>{
  state[i] = {};
  const d = document.createElement("div"); d.className="clip";
  d.innerHTML = "<h3>Video "+(i+1)+" of "+VIDEO_URLS.length+"</h3><video controls preload='metadata'></video>"+
    "<div class='meta'></div><table><thead><tr><th>Class</th><th>Audible</th><th>Visible</th></tr></thead>"+
    "<tbody></tbody></table><div class='row'><input list='classlist' placeholder='search all classes' "+
    "aria-label='search classes for video "+(i+1)+"'><button type='button'>Add</button></div>"+
    "<input type='hidden' id='ans-"+i+"'><input type='hidden' name='classSearch-"+i+"'>";
  d.querySelector("video").src = url;
  d.querySelector("#ans-"+i).name = CLIP_IDS[i];
  META.forEach(([k,q])=>{const l=document.createElement("label");const c=document.createElement("input");
    c.type="checkbox";c.onchange=()=>{state[i][k]=c.checked;save(i);};state[i][k]=false;
    l.appendChild(c);l.appendChild(document.createTextNode(" "+q+" "));d.querySelector(".meta").appendChild(l);});
  const tbody = d.querySelector("tbody");
  PROPOSALS[i].forEach(c=>row(i,c,tbody));
  const inp = d.querySelector(".row input");
  d.querySelector(".row button").onclick=()=>{const v=inp.value.trim();
    if(CLASSES.indexOf(v)>=0 && !((v+" audible") in state[i])){row(i,v,tbody);save(i);}
    else if(v){const s=d.querySelector("[name='classSearch-"+i+"']");s.value=(s.value?s.value+"; ":"")+v;}
    inp.value="";};
  document.getElementById("clips").appendChild(d); save(i);
});
const dl=document.createElement("datalist");dl.id="classlist";
CLASSES.forEach(c=>{const o=document.createElement("option");o.value=c;dl.appendChild(o);});
document.body.appendChild(dl);
</script></body></html>"""


def _js(value) -> str:
    return json.dumps(value).replace("</", "<\\/")


def crowd_form_page(
    clip_ids: list[str], video_urls: list[str], proposal_lists: list[list[str]], classes: list[str]
) -> str:
    """The HTMLQuestion page with the clips and proposals embedded; each clip's answer is a hidden field named
    by its clip id."""
    if not (len(clip_ids) == len(video_urls) == len(proposal_lists)):
        raise ValueError("clip_ids, video_urls and proposal_lists must have the same length")
    return PAGE % {
        "crowd_js": CROWD_ELEMENTS_JS,
        "clip_ids": _js(clip_ids),
        "video_urls": _js(video_urls),
        "proposal_lists": _js(proposal_lists),
        "classes": _js(classes),
    }


def crowd_form_template(classes: list[str]) -> str:
    """The same page for MTurk's requester web UI: clips and proposals come from the batch-input CSV columns
    `clip_ids`, `video_urls` and `proposal_lists` (Python-literal lists, which are valid JavaScript array
    literals)."""
    return PAGE % {
        "crowd_js": CROWD_ELEMENTS_JS,
        "clip_ids": "${clip_ids}",
        "video_urls": "${video_urls}",
        "proposal_lists": "${proposal_lists}",
        "classes": _js(classes),
    }
