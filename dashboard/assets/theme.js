// Apply the stored or preferred theme before the first paint (loaded without
// `defer` from the head, so it runs before the body is drawn).
(function () {
  var t = null;
  try { t = localStorage.getItem("ecom-theme"); } catch (e) { t = null; }
  if (t !== "light" && t !== "dark") {
    t = window.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  document.documentElement.dataset.theme = t;
})();
