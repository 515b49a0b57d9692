// The reader's page: a small canvas viewer of one int16 volume and the answer form.
// Volumes are (z, y, x) in LPS (x to the patient's left, y posterior, z superior), shown the
// radiological way: axial with anterior at the top and the patient's right on the image's left,
// coronal and sagittal with superior at the top (sagittal: anterior on the left).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const app = {
    study: null, itemId: null, position: 0, volume: null, view: "axial",
    slice: { axial: 0, coronal: 0, sagittal: 0 }, width: 400, level: 40, preset: null,
    marker: true, lut: null, busy: false, shownAt: null, visibleMs: 0, retry: null,
  };
  const VIEWS = ["axial", "coronal", "sagittal"];

  // --- geometry -------------------------------------------------------------------------------
  function plane(view) {
    const [Z, Y, X] = app.study.shape;
    const [sz, sy, sx] = app.study.spacing_mm;
    const cz = Math.floor(Z / 2), cy = Math.floor(Y / 2), cx = Math.floor(X / 2);
    if (view === "coronal") {
      return { n: Y, rows: Z, cols: X, rowMm: sz, colMm: sx, centre: cy, mark: [Z - 1 - cz, cx],
        at: (k, r, c) => ((Z - 1 - r) * Y + k) * X + c, labels: ["S", "R", "L"] };
    }
    if (view === "sagittal") {
      return { n: X, rows: Z, cols: Y, rowMm: sz, colMm: sy, centre: cx, mark: [Z - 1 - cz, cy],
        at: (k, r, c) => ((Z - 1 - r) * Y + c) * X + k, labels: ["S", "A", "P"] };
    }
    return { n: Z, rows: Y, cols: X, rowMm: sy, colMm: sx, centre: cz, mark: [cy, cx],
      at: (k, r, c) => (k * Y + r) * X + c, labels: ["A", "R", "L"] };
  }

  // --- drawing --------------------------------------------------------------------------------
  const canvas = $("viewer");
  const ctx = canvas.getContext("2d");
  const slab = document.createElement("canvas");
  const slabCtx = slab.getContext("2d");

  function makeLut() {
    const lut = new Uint8ClampedArray(65536);
    const low = app.level - app.width / 2;
    const scale = 255 / Math.max(1, app.width);
    for (let i = 0; i < 65536; i++) lut[i] = (i - 32768 - low) * scale;
    app.lut = lut;
  }

  function render() {
    if (!app.volume || !app.lut) return;
    const p = plane(app.view);
    const k = app.slice[app.view];
    if (slab.width !== p.cols || slab.height !== p.rows) {
      slab.width = p.cols;
      slab.height = p.rows;
    }
    const image = slabCtx.createImageData(p.cols, p.rows);
    const data = image.data;
    const vol = app.volume, lut = app.lut;
    for (let r = 0, i = 0; r < p.rows; r++) {
      for (let c = 0; c < p.cols; c++, i += 4) {
        const g = lut[vol[p.at(k, r, c)] + 32768];
        data[i] = g; data[i + 1] = g; data[i + 2] = g; data[i + 3] = 255;
      }
    }
    slabCtx.putImageData(image, 0, 0);

    const ratio = window.devicePixelRatio || 1;
    const box = canvas.parentElement.getBoundingClientRect();
    canvas.width = Math.max(1, Math.round(box.width * ratio));
    canvas.height = Math.max(1, Math.round(box.height * ratio));
    const wMm = p.cols * p.colMm, hMm = p.rows * p.rowMm;
    const s = Math.min(canvas.width / wMm, canvas.height / hMm);
    const dw = wMm * s, dh = hMm * s;
    const x0 = (canvas.width - dw) / 2, y0 = (canvas.height - dh) / 2;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(slab, 0, 0, p.cols, p.rows, x0, y0, dw, dh);
    if (app.marker) drawMarker(x0 + ((p.mark[1] + 0.5) * dw) / p.cols, y0 + ((p.mark[0] + 0.5) * dh) / p.rows, ratio);

    $("slice").max = String(p.n - 1);
    $("slice").value = String(k);
    $("slice-label").textContent = `${k + 1} / ${p.n}`;
    [$("orient-top").textContent, $("orient-left").textContent, $("orient-right").textContent] = p.labels;
  }

  function drawMarker(x, y, ratio) {
    const gap = 9 * ratio, len = 9 * ratio;
    ctx.strokeStyle = "rgba(255, 210, 0, 0.85)";
    ctx.lineWidth = 1.5 * ratio;
    ctx.beginPath();
    for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
      ctx.moveTo(x + dx * gap, y + dy * gap);
      ctx.lineTo(x + dx * (gap + len), y + dy * (gap + len));
    }
    ctx.stroke();
  }

  // --- viewer controls ------------------------------------------------------------------------
  function setWindow(width, level, preset = null) {
    app.width = Math.max(1, Math.round(width));
    app.level = Math.round(level);
    app.preset = preset;
    $("window-width").value = String(app.width);
    $("window-level").value = String(app.level);
    for (const button of document.querySelectorAll("#presets button")) {
      button.setAttribute("aria-pressed", String(button.dataset.preset === preset));
    }
    makeLut();
    render();
  }

  function usePreset(name) {
    const [w, l] = app.study.presets[name];
    setWindow(w, l, name);
  }

  function setView(view) {
    app.view = view;
    for (const v of VIEWS) $(`view-${v}`).setAttribute("aria-pressed", String(v === view));
    render();
  }

  function step(delta) {
    const p = plane(app.view);
    app.slice[app.view] = Math.min(p.n - 1, Math.max(0, app.slice[app.view] + delta));
    render();
  }

  function resetView() {
    for (const v of VIEWS) app.slice[v] = plane(v).centre;
    const presets = app.study.presets;
    const preset = app.study.default_preset in presets ? app.study.default_preset : Object.keys(presets)[0];
    if (preset) usePreset(preset);
    else setWindow(400, 40);
    setView("axial");
  }

  function buildPresets() {
    const box = $("presets");
    box.replaceChildren();
    for (const [name, [w, l]] of Object.entries(app.study.presets)) {
      const button = document.createElement("button");
      button.type = "button";
      button.id = `preset-${name.toLowerCase().replace(/[^a-z0-9_-]/g, "-")}`;
      button.dataset.preset = name;
      button.textContent = `${name} W${w} L${l}`;
      button.addEventListener("click", () => usePreset(name));
      box.append(button);
    }
  }

  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    step(event.deltaY < 0 ? 1 : -1);
  }, { passive: false });

  let drag = null;
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || !app.volume) return;
    drag = { x: event.clientX, y: event.clientY, width: app.width, level: app.level };
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drag) return;
    setWindow(drag.width + 2 * (event.clientX - drag.x), drag.level + 2 * (event.clientY - drag.y));
  });
  const endDrag = () => { drag = null; };
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);

  $("slice").addEventListener("input", () => {
    app.slice[app.view] = Number($("slice").value);
    render();
  });
  for (const id of ["window-width", "window-level"]) {
    $(id).addEventListener("input", () => {
      const w = Number($("window-width").value), l = Number($("window-level").value);
      if (Number.isFinite(w) && Number.isFinite(l) && w >= 1) setWindow(w, l);
    });
  }
  for (const v of VIEWS) $(`view-${v}`).addEventListener("click", () => setView(v));
  $("crosshair").addEventListener("click", toggleMarker);
  $("reset").addEventListener("click", resetView);
  window.addEventListener("resize", render);

  function toggleMarker() {
    app.marker = !app.marker;
    $("crosshair").setAttribute("aria-pressed", String(app.marker));
    render();
  }

  // --- time on screen -------------------------------------------------------------------------
  function startClock() {
    app.visibleMs = 0;
    app.shownAt = document.hidden ? null : performance.now();
  }
  function secondsViewed() {
    const running = app.shownAt === null ? 0 : performance.now() - app.shownAt;
    return Math.round(app.visibleMs + running) / 1000;
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && app.shownAt !== null) {
      app.visibleMs += performance.now() - app.shownAt;
      app.shownAt = null;
    } else if (!document.hidden && app.itemId && app.shownAt === null) {
      app.shownAt = performance.now();
    }
  });

  // --- messages, progress ---------------------------------------------------------------------
  function say(text, retry = null) {
    $("message-text").textContent = text;
    $("message").hidden = !text;
    $("retry").hidden = !retry;
    app.retry = retry;
  }
  $("retry").addEventListener("click", () => { const again = app.retry; say(""); if (again) again(); });

  function showProgress(answered, total, position) {
    $("total").textContent = String(total);
    $("position").textContent = String(Math.min(position + 1, total));
    $("progress").max = total;
    $("progress").value = answered;
  }

  function showDone(total) {
    app.itemId = null;
    app.volume = null;
    $("study").hidden = true;
    $("done-total").textContent = String(total);
    $("done").hidden = false;
    showProgress(total, total, total - 1);
  }

  // --- the answer form ------------------------------------------------------------------------
  const form = $("answer-form");
  function choice(name) {
    const checked = form.querySelector(`input[name="${name}"]:checked`);
    return checked ? checked.value : null;
  }
  function updateSubmit() {
    $("submit").disabled = app.busy || !app.volume || !choice("call") || !choice("confidence");
  }
  form.addEventListener("change", updateSubmit);
  form.addEventListener("submit", (event) => { event.preventDefault(); submit(); });

  async function submit() {
    updateSubmit();
    if ($("submit").disabled) return;
    app.busy = true;
    updateSubmit();
    $("status").textContent = "Saving…";
    const body = {
      item_id: app.itemId, call: choice("call"), confidence: Number(choice("confidence")),
      comment: $("comment").value, seconds_viewed: secondsViewed(),
    };
    let response = null, data = null;
    try {
      response = await fetch("/api/answers", {
        method: "POST", credentials: "same-origin", cache: "no-store",
        headers: { "Content-Type": "application/json", "X-Tumorsynth": "1" },
        body: JSON.stringify(body),
      });
      data = await response.json().catch(() => null);
    } catch (error) {
      response = null;
    }
    app.busy = false;
    if (response && response.ok && data) {
      $("status").textContent = "Saved.";
      say("");
      return advance(data, "");
    }
    $("status").textContent = "";
    if (response && response.status === 409 && data) {
      return advance(data, "That item had already been answered; here is your next one.");
    }
    if (response && response.status === 401) {
      say("Your session has ended: open your personal link again (nothing you saved is lost).");
    } else if (response && (response.status === 413 || response.status === 422)) {
      say("The answer was refused (is the comment too long?). Shorten it and submit again.");
    } else {
      say("Answer not saved (no connection to the server). Your choices are kept: press Submit to try again.");
    }
    updateSubmit();
  }

  function advance(data, note) {
    if (!data.next) return showDone(data.total);
    showProgress(data.answered, data.total, data.next.position);
    if (note) say(note);
    return loadItem(data.next.item_id, data.next.position);
  }

  function clearForm() {
    form.reset();
    $("status").textContent = "";
    updateSubmit();
  }

  // --- loading --------------------------------------------------------------------------------
  const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  async function loadItem(itemId, position) {
    app.itemId = itemId;
    app.position = position;
    app.volume = null;
    clearForm();
    $("loading").hidden = false;
    const [Z, Y, X] = app.study.shape;
    try {
      const response = await fetch(`/api/items/${encodeURIComponent(itemId)}`, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const buffer = await response.arrayBuffer();
      if (buffer.byteLength !== 2 * Z * Y * X) throw new Error("wrong size");
      let volume = new Int16Array(buffer);
      if (!littleEndian) {
        const view = new DataView(buffer);
        volume = Int16Array.from({ length: Z * Y * X }, (_, i) => view.getInt16(2 * i, true));
      }
      if (app.itemId !== itemId) return;
      app.volume = volume;
    } catch (error) {
      $("loading").hidden = true;
      say(`Could not load the image (${error.message}).`, () => loadItem(itemId, position));
      return;
    }
    $("loading").hidden = true;
    resetView();
    startClock();
    updateSubmit();
    canvas.focus?.();
  }

  async function start() {
    let response;
    try {
      response = await fetch("/api/state", { credentials: "same-origin", cache: "no-store" });
    } catch (error) {
      return say("No connection to the server.", start);
    }
    if (response.status === 401) return say("Open your personal link to take part in this study.");
    if (!response.ok) return say(`The server answered ${response.status}.`, start);
    const state = await response.json();
    app.study = state.study;
    $("title").textContent = state.study.title || "Reader study";
    document.title = $("title").textContent;
    $("reader-name").textContent = `Reader: ${state.reader}`;
    buildPresets();
    if (state.done || !state.current) return showDone(state.total);
    $("study").hidden = false;
    showProgress(state.answered, state.total, state.current.position);
    return loadItem(state.current.item_id, state.current.position);
  }

  // --- keyboard -------------------------------------------------------------------------------
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const tag = target.tagName;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      return submit();
    }
    if (event.ctrlKey || event.metaKey || event.altKey || !app.volume) return;
    if (tag === "TEXTAREA" || (tag === "INPUT" && target.type === "number")) return;
    if (tag === "INPUT" && target.type === "range" && event.key.startsWith("Arrow")) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const actions = {
      ArrowUp: () => step(1), ArrowRight: () => step(1), ArrowDown: () => step(-1), ArrowLeft: () => step(-1),
      PageUp: () => step(10), PageDown: () => step(-10),
      a: () => setView("axial"), c: () => setView("coronal"), g: () => setView("sagittal"),
      x: toggleMarker, 0: resetView,
      p: () => {
        const names = Object.keys(app.study.presets);
        usePreset(names[(names.indexOf(app.preset) + 1) % names.length]);
      },
      r: () => { $("call-real").checked = true; updateSubmit(); },
      s: () => { $("call-synthetic").checked = true; updateSubmit(); },
      Enter: () => { if (tag !== "BUTTON" || target.id === "submit") submit(); },
    };
    for (let n = 1; n <= 5; n++) actions[String(n)] = () => { $(`confidence-${n}`).checked = true; updateSubmit(); };
    const action = actions[key];
    if (!action || (key === "Enter" && tag === "BUTTON" && target.id !== "submit")) return;
    event.preventDefault();
    action();
  });

  start();
})();
