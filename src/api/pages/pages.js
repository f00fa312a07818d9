// The pages' only script. The pages read fine without it; it adds playing the recording
// from a transcript line, highlighting the line being spoken (by the WebVTT cues the
// server makes), and copy buttons for links.
(function () {
  "use strict";

  // Links are rendered as paths; shown and copied as full addresses.
  document.querySelectorAll("input[data-absolute]").forEach(function (input) {
    input.value = new URL(input.value, document.baseURI).href;
  });

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      input.select();
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard) {
        navigator.clipboard.writeText(input.value).then(done, function () {
          document.execCommand("copy");
          done();
        });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });

  var audio = document.getElementById("recording");
  var track = audio && audio.querySelector("track");
  if (!audio || !track) return;
  // Hidden: the cues load and fire, nothing is drawn over the player.
  track.track.mode = "hidden";
  var lines = document.querySelectorAll(".msg[data-cue]");

  // Cues may overlap (a reply still running when the next line starts): the line that
  // started last is the one being spoken.
  function highlight(cue) {
    lines.forEach(function (line) {
      var on = line.getAttribute("data-cue") === cue.id;
      line.classList.toggle("speaking", on);
      if (on) line.setAttribute("aria-current", "true");
      else line.removeAttribute("aria-current");
    });
  }

  function playFrom(line) {
    var cues = track.track.cues;
    var cue = cues && cues.getCueById(line.getAttribute("data-cue"));
    if (!cue) return;
    audio.currentTime = cue.startTime;
    highlight(cue);
    var playing = audio.play();
    if (playing) playing.catch(function () { /* the browser may refuse to autoplay */ });
  }

  track.track.addEventListener("cuechange", function () {
    var active = track.track.activeCues || [];
    var latest = null;
    for (var i = 0; i < active.length; i++) {
      if (!latest || active[i].startTime >= latest.startTime) latest = active[i];
    }
    if (latest) highlight(latest);
  });

  lines.forEach(function (line) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "seek";
    var time = line.querySelector(".time");
    button.textContent = "▶ Play";
    button.setAttribute("aria-label", "Play from " + (time ? time.textContent : "this line"));
    (time || line).appendChild(button);
    line.addEventListener("click", function (event) {
      if (event.target.closest("a, details, form")) return;
      playFrom(line);
    });
  });
})();
