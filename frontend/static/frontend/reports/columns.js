/* Report tables: column groups to show/hide (per-class table: A / V / AV, F1 / AP), and a column picker for the
   other wide tables (one checkbox per column, for tables with a single header row). */
(function () {
  document.querySelectorAll("[data-col-group]").forEach(function (box) {
    var section = box.closest("section");
    box.addEventListener("change", function () {
      section.classList.toggle("hide-" + box.getAttribute("data-col-group"), !box.checked);
    });
  });
  document.querySelectorAll(".report-table:not(.per-class-section) table").forEach(function (table, t) {
    if (!table.tHead || table.tHead.rows.length !== 1) return;
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    if (heads.length < 6 || heads.some(function (h) { return h.colSpan > 1; })) return;
    var picker = document.createElement("details");
    picker.className = "column-picker";
    var summary = document.createElement("summary");
    summary.textContent = "Columns";
    picker.appendChild(summary);
    heads.forEach(function (th, col) {
      if (col === 0) return;  // the row names stay
      var label = document.createElement("label");
      var box = document.createElement("input");
      box.type = "checkbox";
      box.checked = true;
      box.addEventListener("change", function () {
        Array.prototype.forEach.call(table.rows, function (row) {
          if (row.cells[col]) row.cells[col].classList.toggle("col-hidden", !box.checked);
        });
      });
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + th.textContent.trim()));
      picker.appendChild(label);
    });
    table.parentNode.insertBefore(picker, table);
  });
})();
