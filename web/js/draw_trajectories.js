// Draw Trajectories (MotionKitDrawTrajectories): a canvas in the node to draw Tora trajectories.
//
// Mouse: click on empty canvas adds a point to the selected track (a first click makes a track);
// drag a point to move it; click on a line of the selected track inserts a point there;
// right-click a point deletes it; clicking a point selects its track.
// Buttons: New track, Delete track, Clear, Undo, Image (upload a reference image).
//
// State: the hidden STRING input `trajectory_data` holds MotionKit trajectory JSON (version 1, see
// the README) plus an optional "reference" {filename, subfolder, type} for the uploaded image, so the
// drawing travels in the workflow JSON and in the API prompt. The canvas widget itself is not serialized.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const NODE_NAME = "MotionKitDrawTrajectories";
const TOOLBAR_HEIGHT = 30;
const INFO_HEIGHT = 20;
const HIT_RADIUS = 9; // screen pixels
const GOLDEN_RATIO_CONJUGATE = 0.618033988749895;

function chainCallback(object, property, callback) {
  const original = object[property];
  object[property] = function () {
    const result = original?.apply(this, arguments);
    callback.apply(this, arguments);
    return result;
  };
}

// Same colours as models/trajectory/preview.py track_colors: golden-angle hues, s 0.85, v 1.
export function trackColor(index) {
  const h = (index * GOLDEN_RATIO_CONJUGATE) % 1.0;
  const s = 0.85, v = 1.0;
  const i = Math.floor(h * 6), f = h * 6 - i;
  const p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  const [r, g, b] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
  return `rgb(${Math.round(r * 255)}, ${Math.round(g * 255)}, ${Math.round(b * 255)})`;
}

// Constant-speed resampling along the polyline, ends kept (models/trajectory/resample.py arc_length_points).
function arcLengthPoints(points, frames) {
  const lengths = [];
  for (let i = 0; i + 1 < points.length; i++)
    lengths.push(Math.hypot(points[i + 1][0] - points[i][0], points[i + 1][1] - points[i][1]));
  const total = lengths.reduce((a, b) => a + b, 0);
  if (total === 0) return Array.from({ length: frames }, () => points[0]);
  const out = [];
  let segment = 0, start = 0;
  for (let k = 0; k < frames; k++) {
    const target = (total * k) / (frames - 1);
    while (segment < lengths.length - 1 && start + lengths[segment] < target) {
      start += lengths[segment];
      segment += 1;
    }
    const t = lengths[segment] === 0 ? 0 : Math.min(Math.max((target - start) / lengths[segment], 0), 1);
    const [x0, y0] = points[segment], [x1, y1] = points[segment + 1];
    out.push([x0 + t * (x1 - x0), y0 + t * (y1 - y0)]);
  }
  return out;
}

function round2(value) {
  return Math.round(value * 100) / 100;
}

class TrajectoryEditor {
  constructor(node) {
    this.node = node;
    this.stateWidget = node.widgets.find((w) => w.name === "trajectory_data");
    this.widthWidget = node.widgets.find((w) => w.name === "width");
    this.heightWidget = node.widgets.find((w) => w.name === "height");
    this.framesWidget = node.widgets.find((w) => w.name === "num_frames");
    this.stateWidget.hidden = true;
    this.tracks = [];
    this.selected = -1;
    this.undoStack = [];
    this.drag = null;
    this.reference = null;
    this.image = null;
    this.lastText = null;
    this.canvasSize = null;
    this.build();
    this.readState();
    if (!this.stateWidget.value) this.writeState();
  }

  build() {
    const root = document.createElement("div");
    root.className = "motionkit-trajectory-editor";
    root.style.cssText = "display:flex;flex-direction:column;gap:2px;width:100%;height:100%;box-sizing:border-box;";
    const bar = document.createElement("div");
    bar.style.cssText = `display:flex;gap:4px;height:${TOOLBAR_HEIGHT - 4}px;align-items:center;`;
    const button = (label, title, action) => {
      const b = document.createElement("button");
      b.textContent = label;
      b.title = title;
      b.dataset.action = label;
      b.style.cssText = "font-size:11px;padding:2px 6px;cursor:pointer;";
      b.addEventListener("click", (e) => { e.stopPropagation(); action(); });
      bar.appendChild(b);
      return b;
    };
    button("New track", "Start a new track; click on the canvas to add its points", () => this.newTrack());
    button("Delete track", "Delete the selected track", () => this.edit(() => {
      if (this.selected >= 0) this.tracks.splice(this.selected, 1);
      this.selected = this.tracks.length - 1;
    }));
    button("Clear", "Delete all tracks", () => this.edit(() => { this.tracks = []; this.selected = -1; }));
    button("Undo", "Undo the last change", () => this.undo());
    const upload = document.createElement("input");
    upload.type = "file";
    upload.accept = "image/*";
    upload.style.display = "none";
    upload.addEventListener("change", () => upload.files[0] && this.uploadReference(upload.files[0]));
    button("Image", "Upload a reference image (the first frame) to draw on", () => upload.click());
    bar.appendChild(upload);
    this.canvas = document.createElement("canvas");
    this.canvas.style.cssText = "width:100%;display:block;cursor:crosshair;background:#282828;";
    this.info = document.createElement("div");
    this.info.style.cssText = `font-size:11px;color:#bbb;height:${INFO_HEIGHT}px;white-space:nowrap;overflow:hidden;`;
    root.append(bar, this.canvas, this.info);
    this.root = root;

    this.canvas.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    this.canvas.addEventListener("pointermove", (e) => this.onPointerMove(e));
    this.canvas.addEventListener("pointerup", (e) => this.onPointerUp(e));
    this.canvas.addEventListener("contextmenu", (e) => { e.preventDefault(); e.stopPropagation(); });
  }

  get width() { return Math.max(2, this.widthWidget.value); }
  get height() { return Math.max(2, this.heightWidget.value); }

  // ---------------------------------------------------------------- state
  readState() {
    const text = this.stateWidget.value || "";
    if (text === this.lastText) return;
    this.lastText = text;
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (error) { data = null; }
    if (data && data.format === "motionkit.trajectories" && Array.isArray(data.tracks)) {
      this.tracks = data.tracks.map((t, i) => ({ name: t.name || `track ${i + 1}`, points: t.points || [] }));
      this.canvasSize = data.canvas ? [data.canvas.width, data.canvas.height] : [this.width, this.height];
      this.fitToCanvas();
      this.setReference(data.reference || null);
    } else {
      this.tracks = [];
    }
    this.selected = Math.min(this.selected, this.tracks.length - 1);
    if (this.selected < 0) this.selected = this.tracks.length - 1;
  }

  // Scale the points when the width/height inputs change, so the drawing keeps its place in the frame.
  fitToCanvas() {
    const [w0, h0] = this.canvasSize || [this.width, this.height];
    if (w0 !== this.width || h0 !== this.height) {
      const sx = this.width / w0, sy = this.height / h0;
      for (const track of this.tracks) track.points = track.points.map(([x, y]) => [x * sx, y * sy]);
    }
    this.canvasSize = [this.width, this.height];
  }

  writeState() {
    this.fitToCanvas();
    const data = {
      format: "motionkit.trajectories",
      version: 1,
      canvas: { width: this.width, height: this.height },
      tracks: this.tracks.map((t) => ({ name: t.name, points: t.points.map(([x, y]) => [round2(x), round2(y)]) })),
    };
    if (this.reference) data.reference = this.reference;
    this.lastText = JSON.stringify(data);
    this.stateWidget.value = this.lastText;
    this.draw();
  }

  snapshot() {
    return JSON.stringify({ tracks: this.tracks, selected: this.selected });
  }

  edit(change) {
    this.undoStack.push(this.snapshot());
    if (this.undoStack.length > 200) this.undoStack.shift();
    change();
    this.writeState();
  }

  undo() {
    const previous = this.undoStack.pop();
    if (!previous) return;
    const data = JSON.parse(previous);
    this.tracks = data.tracks;
    this.selected = data.selected;
    this.writeState();
  }

  newTrack() {
    this.edit(() => {
      const used = new Set(this.tracks.map((t) => t.name));
      let n = this.tracks.length + 1;
      while (used.has(`track ${n}`)) n += 1;
      this.tracks.push({ name: `track ${n}`, points: [] });
      this.selected = this.tracks.length - 1;
    });
  }

  // ---------------------------------------------------------------- reference image
  setReference(reference) {
    this.reference = reference;
    if (!reference) { this.image = null; return; }
    const params = new URLSearchParams({ filename: reference.filename, subfolder: reference.subfolder || "",
                                         type: reference.type || "input" });
    const image = new Image();
    image.onload = () => { this.image = image; this.draw(); };
    image.src = api.apiURL(`/view?${params}`);
  }

  async uploadReference(file) {
    const body = new FormData();
    body.append("image", file);
    const response = await api.fetchApi("/upload/image", { method: "POST", body });
    if (response.status !== 200) return;
    const saved = await response.json();
    this.setReference({ filename: saved.name, subfolder: saved.subfolder || "", type: saved.type || "input" });
    this.writeState();
  }

  // ---------------------------------------------------------------- mouse
  toCanvas(e) {
    const rect = this.canvas.getBoundingClientRect();
    return [((e.clientX - rect.left) * this.width) / rect.width, ((e.clientY - rect.top) * this.height) / rect.height];
  }

  hitRadius() {
    const rect = this.canvas.getBoundingClientRect();
    return (HIT_RADIUS * this.width) / Math.max(rect.width, 1);
  }

  findPoint([x, y]) {
    const r = this.hitRadius();
    // the selected track wins when points of two tracks overlap
    const candidates = [this.selected, ...this.tracks.keys()].filter((t) => t >= 0);
    for (const t of candidates) {
      const points = this.tracks[t].points;
      for (let p = points.length - 1; p >= 0; p--)
        if (Math.hypot(points[p][0] - x, points[p][1] - y) <= r) return { track: t, point: p };
    }
    return null;
  }

  findSegment([x, y]) {
    if (this.selected < 0) return null;
    const points = this.tracks[this.selected].points, r = this.hitRadius();
    for (let p = 0; p + 1 < points.length; p++) {
      const [x0, y0] = points[p], [x1, y1] = points[p + 1];
      const dx = x1 - x0, dy = y1 - y0, length2 = dx * dx + dy * dy;
      if (length2 === 0) continue;
      const t = ((x - x0) * dx + (y - y0) * dy) / length2;
      if (t <= 0 || t >= 1) continue;
      if (Math.hypot(x0 + t * dx - x, y0 + t * dy - y) <= r) return p + 1;
    }
    return null;
  }

  clampPoint([x, y]) {
    return [Math.min(Math.max(x, 0), this.width - 1), Math.min(Math.max(y, 0), this.height - 1)];
  }

  onPointerDown(e) {
    e.preventDefault();
    e.stopPropagation();
    const position = this.clampPoint(this.toCanvas(e));
    const hit = this.findPoint(position);
    if (e.button === 2) {
      if (hit) this.edit(() => { this.tracks[hit.track].points.splice(hit.point, 1); this.selected = hit.track; });
      return;
    }
    if (e.button !== 0) return;
    if (hit) {
      this.undoStack.push(this.snapshot());
      this.selected = hit.track;
      this.drag = hit;
    } else {
      const insertAt = this.findSegment(position);
      this.edit(() => {
        if (this.selected < 0) {
          this.tracks.push({ name: `track ${this.tracks.length + 1}`, points: [] });
          this.selected = this.tracks.length - 1;
        }
        const points = this.tracks[this.selected].points;
        const index = insertAt ?? points.length;
        points.splice(index, 0, position);
        this.drag = { track: this.selected, point: index };
      });
    }
    this.canvas.setPointerCapture?.(e.pointerId);
    this.draw();
  }

  onPointerMove(e) {
    if (!this.drag) return;
    e.preventDefault();
    e.stopPropagation();
    this.tracks[this.drag.track].points[this.drag.point] = this.clampPoint(this.toCanvas(e));
    this.draw();
  }

  onPointerUp(e) {
    if (!this.drag) return;
    e.stopPropagation();
    this.drag = null;
    this.writeState();
  }

  // ---------------------------------------------------------------- drawing
  draw() {
    this.readState();
    const canvas = this.canvas, w = this.width, h = this.height;
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const ctx = canvas.getContext("2d");
    const unit = Math.max(w, h) / 400; // line widths that stay visible at any canvas size
    ctx.fillStyle = "#282828";
    ctx.fillRect(0, 0, w, h);
    if (this.image) ctx.drawImage(this.image, 0, 0, w, h);
    const frames = Math.max(2, this.framesWidget.value | 0);
    this.tracks.forEach((track, t) => {
      const color = trackColor(t), points = track.points;
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = (t === this.selected ? 3 : 2) * unit;
      if (points.length > 1) {
        ctx.beginPath();
        points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
        ctx.stroke();
        // where the object is at each frame
        ctx.fillStyle = "rgba(255,255,255,0.85)";
        for (const [x, y] of arcLengthPoints(points, frames)) {
          ctx.beginPath();
          ctx.arc(x, y, 1.5 * unit, 0, 2 * Math.PI);
          ctx.fill();
        }
        ctx.fillStyle = color;
      }
      points.forEach(([x, y], i) => {
        ctx.beginPath();
        ctx.arc(x, y, (i === 0 ? 5 : 4) * unit, 0, 2 * Math.PI);
        ctx.fill();
        if (t === this.selected) {
          ctx.lineWidth = 1.5 * unit;
          ctx.strokeStyle = "#fff";
          ctx.stroke();
          ctx.strokeStyle = color;
        }
      });
    });
    const selected = this.tracks[this.selected];
    this.info.textContent = `${this.tracks.length} track(s)` +
      (selected ? `, selected: ${selected.name} (${selected.points.length} points)` : "") +
      `, dots: ${frames} frames`;
  }

  widgetHeight(nodeWidth) {
    const canvasWidth = Math.max(nodeWidth - 20, 50);
    return TOOLBAR_HEIGHT + (canvasWidth * this.height) / this.width + INFO_HEIGHT + 8;
  }
}

app.registerExtension({
  name: "MotionKit.DrawTrajectories",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE_NAME) return;
    chainCallback(nodeType.prototype, "onNodeCreated", function () {
      const editor = new TrajectoryEditor(this);
      this.motionkitEditor = editor;
      const widget = this.addDOMWidget("trajectory_canvas", "motionkit_trajectory_canvas", editor.root, {
        serialize: false,
        hideOnZoom: false,
        getMinHeight: () => editor.widgetHeight(this.size[0]),
        getHeight: () => editor.widgetHeight(this.size[0]),
      });
      widget.serialize = false;
      for (const name of ["width", "height", "num_frames"]) {
        const w = this.widgets.find((x) => x.name === name);
        chainCallback(w, "callback", () => {
          editor.writeState();
          this.setSize([this.size[0], this.computeSize()[1]]);
        });
      }
      this.setSize([Math.max(this.size[0], 420), this.computeSize([420, 0])[1]]);
      requestAnimationFrame(() => editor.draw());
    });
    chainCallback(nodeType.prototype, "onConfigure", function () {
      this.motionkitEditor?.readState();
      this.motionkitEditor?.draw();
    });
    chainCallback(nodeType.prototype, "onExecuted", function (message) {
      const reference = message?.reference?.[0];
      if (reference && this.motionkitEditor) this.motionkitEditor.setReference(reference);
    });
    chainCallback(nodeType.prototype, "onRemoved", function () {
      this.motionkitEditor?.root.remove();
      this.motionkitEditor = null;
    });
  },
});
