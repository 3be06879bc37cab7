// The admin page: make the confirmation dialog modal (focus stays in it; Escape cancels).
// Everything works without this script: the dialog is rendered open and its form posts.
const dialog = document.getElementById("confirm-dialog");
if (dialog && typeof dialog.showModal === "function") {
  dialog.close();
  dialog.showModal();
  const back = document.getElementById("cancel-confirm");
  dialog.addEventListener("cancel", () => { window.location.assign(back ? back.href : "/admin"); });
}
