// Export rows on the release page follow their export's progress until it is done or failed.
for (const row of document.querySelectorAll("tr[data-export]")) {
  const poll = async () => {
    const r = await fetch(row.dataset.statusUrl, {credentials: "same-origin"});
    if (!r.ok) return;
    const j = await r.json();
    row.querySelector(".status").textContent = j.status + (j.error ? ": " + j.error : "");
    row.querySelector("progress").value = j.progress;
    row.querySelector(".rows").textContent = j.rows_done + "/" + j.rows_total;
    if (j.download) {
      const a = document.createElement("a");
      a.href = j.download;
      a.textContent = "download";
      row.querySelector(".link").replaceChildren(a);
      return;
    }
    if (j.status !== "failed") setTimeout(poll, 1000);
  };
  if (!["done", "failed"].includes(row.querySelector(".status").textContent.split(":")[0].trim())) poll();
}
