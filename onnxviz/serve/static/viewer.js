// The viewer's page: picks an image and a layer, draws the activation grid from one sprite,
// fetches a projection per clicked channel and an occlusion map, all from the JSON API; its menu
// lists the registered analyses (/api/analyses) and runs the one chosen on the image on show; its
// method menu (/api/methods) draws one cam over the image, or one attribution beside it, for a target:
// a class, a detection clicked on the picture of a detector's boxes, a segmenter's class picked.
// Text from the server is only ever set as textContent, never parsed as markup.
"use strict";

const tile = Number(document.body.dataset.tile);
const columns = Number(document.body.dataset.columns);
const state = {
  image: "",
  node: "",
  channel: null,
  channels: 0,
  rule: "deconvnet",
  analyses: new Map(),
  methods: new Map(),
  explained: null,
};
const $ = (id) => document.getElementById(id);

function query(params) {
  return new URLSearchParams(params).toString();
}

function say(text) {
  $("status").textContent = text;
}

async function getJson(url, options) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) {
    throw new Error(body.error + (body.hint ? " " + body.hint : ""));
  }
  return body;
}

function layerRows() {
  return [...document.querySelectorAll("#layers tr.maps")];
}

function setImage(reference) {
  state.image = reference;
  $("picture").src = "/api/picture.png?" + query({ image: reference });
  $("heatmap").removeAttribute("src");
  $("occlusion-caption").textContent = "";
  $("analysis-picture").removeAttribute("src");
  $("analysis-summary").textContent = "";
  $("explain-image").removeAttribute("src");
  $("explain-picture").removeAttribute("src");
  $("explain-caption").textContent = "";
  if (!state.node && layerRows().length) {
    state.node = layerRows()[0].dataset.node;
  }
  showLayer(state.node, state.channel);
}

async function showLayer(node, channel) {
  state.node = node;
  for (const row of layerRows()) {
    row.classList.toggle("selected", row.dataset.node === node);
  }
  $("layer-name").textContent = node;
  if (!state.image) {
    return;
  }
  const params = { image: state.image, node: node };
  try {
    const summary = await getJson("/api/activations?" + query(params));
    state.channels = summary.maps;
    $("activation-caption").textContent =
      `${summary.maps} maps, strongest ${summary.strongest}, ${summary.dead} dead (${summary.tensor})`;
    drawGrid("/api/activations.png?" + query(params), summary);
    const start = channel !== null && channel < summary.maps ? channel : summary.strongest;
    selectChannel(start);
    say("");
  } catch (error) {
    say(error.message);
  }
}

function drawGrid(sprite, summary) {
  const grid = $("grid");
  grid.replaceChildren();
  const perRow = Math.min(columns, summary.maps);
  for (let c = 0; c < summary.maps; c++) {
    const cell = document.createElement("div");
    cell.className = "channel";
    cell.tabIndex = -1;
    cell.dataset.channel = String(c);
    cell.title = `channel ${c}: max ${summary.max_per_map[c].toPrecision(3)}`;
    cell.style.width = cell.style.height = `${tile}px`;
    cell.style.backgroundImage = `url("${sprite}")`;
    cell.style.backgroundPosition = `-${(c % perRow) * tile}px -${Math.floor(c / perRow) * tile}px`;
    cell.addEventListener("click", () => selectChannel(c));
    grid.appendChild(cell);
  }
}

async function selectChannel(channel) {
  state.channel = channel;
  for (const cell of document.querySelectorAll(".channel")) {
    const chosen = Number(cell.dataset.channel) === channel;
    cell.classList.toggle("selected", chosen);
    if (chosen) {
      cell.focus({ preventScroll: true });
    }
  }
  const params = query({ image: state.image, node: state.node, channel: channel, rule: state.rule });
  try {
    const summary = await getJson("/api/project?" + params);
    $("projection").src = "/api/project.png?" + params;
    const t = summary.timings_ms;
    $("projection-caption").textContent =
      `${summary.rule} projection of ${summary.node} channel ${channel}: activation ` +
      `${summary.activations[0].toPrecision(3)} (forward ${t.forward.toFixed(1)} ms, inverse ${t.inverse.toFixed(1)} ms)`;
  } catch (error) {
    say(error.message);
  }
}

async function occlude() {
  if (!state.image) {
    say("Pick an image first.");
    return;
  }
  const job = Math.random().toString(36).slice(2);
  const params = { image: state.image, patch: $("patch").value, stride: $("stride").value };
  if ($("target").value !== "") {
    params.target = $("target").value; // the Explain section's target: a class, a detection, a mask
  }
  const bar = $("occlusion-progress");
  bar.value = 0;
  const poll = setInterval(async () => {
    try {
      const progress = await getJson("/api/progress?" + query({ job: job }));
      if (progress.total > 0) {
        bar.max = progress.total;
        bar.value = progress.done;
      }
    } catch (error) {
      say(error.message);
    }
  }, 150);
  try {
    const summary = await getJson("/api/occlude?" + query({ ...params, job: job }));
    bar.max = 1;
    bar.value = 1;
    $("heatmap").src = "/api/occlude.png?" + query(params);
    const low = summary.min;
    const scored = summary.kind === "class" ? `p(${summary.target_label})` : `${summary.kind} ${summary.target}`;
    $("occlusion-caption").textContent =
      `${scored} unoccluded ${summary.unoccluded_score.toPrecision(3)}, lowest ` +
      `${low.score.toPrecision(3)} at y=${low.y}, x=${low.x}; ${summary.grid.rows}×${summary.grid.cols} positions`;
    say("");
  } catch (error) {
    say(error.message);
  } finally {
    clearInterval(poll);
  }
}

// A select filled from a JSON list of named entries, each kept in `store` by its name; `label`
// gives an entry's text and its tooltip (textContent and title: nothing reaches the HTML as markup).
async function fillPicker(route, list, pickerId, store, label) {
  try {
    const answer = await getJson(route);
    const picker = $(pickerId);
    for (const entry of answer[list]) {
      store.set(entry.name, entry);
      const option = document.createElement("option");
      option.value = entry.name;
      [option.textContent, option.title] = label(entry);
      picker.appendChild(option);
    }
  } catch (error) {
    say(error.message);
  }
}

function loadMenu() {
  return fillPicker("/api/analyses", "analyses", "analysis-picker", state.analyses, (entry) => [
    entry.name,
    entry.help,
  ]);
}

async function runAnalysis() {
  const entry = state.analyses.get($("analysis-picker").value);
  if (!entry) {
    return;
  }
  if (entry.subject === "image" && !state.image) {
    say("Pick an image first.");
    return;
  }
  const params = {};
  if (entry.subject === "image") {
    params.image = state.image;
  }
  if (entry.layer && state.node) {
    params.node = state.node;
  }
  const route = "/api/run/" + encodeURIComponent(entry.name);
  try {
    const summary = await getJson(route + "?" + query(params));
    $("analysis-summary").textContent = JSON.stringify(summary, null, 1);
    $("analysis-picture").src = route + ".png?" + query(params);
    say("");
  } catch (error) {
    say(error.message);
  }
}

function loadMethods() {
  return fillPicker("/api/methods", "methods", "method-picker", state.methods, (entry) => [
    `${entry.name} (${entry.drawn === "over" ? "over the image" : "beside it"})`,
    "",
  ]);
}

async function explain() {
  const entry = state.methods.get($("method-picker").value);
  if (!entry || !state.image) {
    say("Pick an image first.");
    return;
  }
  const params = { image: state.image, method: entry.name };
  if ($("target").value !== "") {
    params.target = $("target").value;
  }
  try {
    const summary = await getJson("/api/explain?" + query(params));
    const found = summary.methods[entry.name];
    const target = found.target;
    state.explained = { target, size: summary.size };
    if (target.detections || target.predicted) {
      $("explain-image").src = "/api/explain/seen.png?" + query(params);
    } else if (entry.drawn === "over") {
      $("explain-image").removeAttribute("src");
    } else {
      $("explain-image").src = "/api/picture.png?" + query({ image: state.image });
    }
    $("explain-picture").src = "/api/explain.png?" + query(params);
    showSegmentClasses(target);
    const name = target.class !== null ? `class ${target.class}` : `[${target.index.join(",")}]`;
    const what = target.kind === "class" || target.kind === "element" ? name : `${target.kind} ${name}`;
    $("explain-caption").textContent =
      `${entry.name} of ${what}: score ${target.score.toPrecision(3)}, peak at y=${found.peak[0]}, x=${found.peak[1]}`;
    say("");
  } catch (error) {
    say(error.message);
  }
}

// A segmenter's classes on the image, as a picker: choosing one explains its predicted pixels.
function showSegmentClasses(target) {
  const picker = $("segment-class");
  $("segment-label").hidden = !target.predicted;
  if (!target.predicted) {
    return;
  }
  picker.replaceChildren(
    ...target.predicted.map((klass) => new Option(`class ${klass}`, String(klass), false, klass === target.class)),
  );
}

// A click on a detector's picture explains the smallest detection around the point.
function pickDetection(event) {
  const explained = state.explained;
  if (!explained || !explained.target.detections) {
    return;
  }
  const image = $("explain-image");
  const x = (event.offsetX / image.clientWidth) * explained.size[1];
  const y = (event.offsetY / image.clientHeight) * explained.size[0];
  const around = explained.target.detections.filter(
    (d) => d.box[0] <= x && x <= d.box[2] && d.box[1] <= y && y <= d.box[3],
  );
  if (!around.length) {
    say("No detection there: click inside a box.");
    return;
  }
  const area = (d) => (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]);
  const chosen = around.reduce((a, b) => (area(b) < area(a) ? b : a));
  $("target").value = `box:${chosen.box.map((v) => v.toFixed(2)).join(",")}:${chosen.class}`;
  explain();
}

async function upload(file) {
  try {
    const answer = await getJson("/api/upload", { method: "POST", body: file });
    $("image-picker").value = "";
    setImage(answer.image);
  } catch (error) {
    say(error.message);
  }
}

function onKey(event) {
  if (event.target.tagName === "INPUT" || event.target.tagName === "SELECT" || !state.image) {
    return;
  }
  const rows = layerRows();
  const layer = rows.findIndex((row) => row.dataset.node === state.node);
  if (event.key === "ArrowRight" && state.channel + 1 < state.channels) {
    selectChannel(state.channel + 1);
  } else if (event.key === "ArrowLeft" && state.channel > 0) {
    selectChannel(state.channel - 1);
  } else if (event.key === "ArrowDown" && layer + 1 < rows.length) {
    showLayer(rows[layer + 1].dataset.node, state.channel);
  } else if (event.key === "ArrowUp" && layer > 0) {
    showLayer(rows[layer - 1].dataset.node, state.channel);
  } else {
    return;
  }
  event.preventDefault();
}

$("image-picker").addEventListener("change", (event) => event.target.value && setImage(event.target.value));
$("upload").addEventListener("change", (event) => event.target.files.length && upload(event.target.files[0]));
$("occlude").addEventListener("click", occlude);
$("analysis-run").addEventListener("click", runAnalysis);
$("explain").addEventListener("click", explain);
$("explain-image").addEventListener("click", pickDetection);
$("segment-class").addEventListener("change", (event) => {
  $("target").value = `mask:predicted:${event.target.value}`;
  explain();
});
for (const row of layerRows()) {
  row.addEventListener("click", () => showLayer(row.dataset.node, state.channel));
}
for (const radio of document.querySelectorAll("input[name=rule]")) {
  radio.addEventListener("change", () => {
    state.rule = radio.value;
    if (state.channel !== null) {
      selectChannel(state.channel);
    }
  });
}
document.addEventListener("keydown", onKey);
loadMenu();
loadMethods();
if ($("image-picker").value) {
  setImage($("image-picker").value); // the page opens on the first picture of --images
}
