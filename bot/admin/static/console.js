// The compose page updates its recipient count as the segment changes. Everything also works
// without JavaScript: the "count" button posts the form and the page shows the same figure.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("compose");
  const out = document.getElementById("recipient-count");
  if (!form || !out) return;
  const template = form.dataset.countTemplate || "{n}";
  let pending = 0;
  async function refresh() {
    const ticket = ++pending;
    const body = new FormData(form);
    body.delete("do");
    try {
      const res = await fetch(form.dataset.countUrl, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { "X-CSRF-Token": body.get("csrf_token") || "" },
      });
      if (ticket !== pending) return; // a newer request is on its way
      const data = await res.json();
      out.textContent = res.ok ? template.replace("{n}", String(data.total)) : data.error || "";
      out.dataset.total = res.ok ? String(data.total) : "";
    } catch (err) {
      out.textContent = "";
    }
  }
  form.addEventListener("change", (event) => {
    const name = event.target && event.target.name;
    if (["channels", "audiences", "languages", "interests", "tour_id", "followed_since"].includes(name)) {
      refresh();
    }
  });
  refresh();
});
