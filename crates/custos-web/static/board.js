// Drag and drop for the deals board: a progressive enhancement. Dropping a
// card on a column sets the card's stage menu and submits its form, exactly
// as a keyboard or no-script user does by hand. Loaded from this server only.
(function () {
  "use strict";
  var board = document.getElementById("board");
  if (!board) { return; }
  var dragged = null;
  board.addEventListener("dragstart", function (e) {
    var card = e.target.closest ? e.target.closest(".deal-card") : null;
    if (!card) { return; }
    dragged = card;
    card.classList.add("dragging");
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", card.getAttribute("data-deal") || "");
  });
  board.addEventListener("dragend", function () {
    if (dragged) { dragged.classList.remove("dragging"); }
    dragged = null;
    var over = board.querySelectorAll(".drop-target");
    for (var i = 0; i < over.length; i++) { over[i].classList.remove("drop-target"); }
  });
  board.addEventListener("dragover", function (e) {
    var col = e.target.closest ? e.target.closest(".board-col") : null;
    if (!col || !dragged) { return; }
    e.preventDefault();
    col.classList.add("drop-target");
  });
  board.addEventListener("dragleave", function (e) {
    var col = e.target.closest ? e.target.closest(".board-col") : null;
    if (col && !col.contains(e.relatedTarget)) { col.classList.remove("drop-target"); }
  });
  board.addEventListener("drop", function (e) {
    var col = e.target.closest ? e.target.closest(".board-col") : null;
    if (!col || !dragged) { return; }
    e.preventDefault();
    var select = dragged.querySelector("select[name=stage]");
    var stage = col.getAttribute("data-stage");
    if (!select || !stage || select.value === stage) { return; }
    select.value = stage;
    select.form.submit();
  });
})();
