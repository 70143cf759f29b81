// A <select data-autosubmit> submits its form when it changes (no inline handlers: CSP script-src 'self').
for (const field of document.querySelectorAll("[data-autosubmit]")) {
  field.addEventListener("change", () => field.form && field.form.submit());
}
