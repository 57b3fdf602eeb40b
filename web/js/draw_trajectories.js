// Draw Trajectories (MotionKitDrawTrajectories): a canvas in the node to draw trajectories and time them.
//
// Mouse: click on empty canvas adds a point to the selected track (a first click makes a track); drag on
// empty canvas draws a new track freehand (simplified to a few points, drawn as a spline); drag a point to
// move it; click on a line of the selected track inserts a point there; right-click a point deletes it;
// clicking a point selects it and its track.
// Toolbar: New track, Delete track, Clear, Undo, Image (upload a reference image).
// Track bar (the selected track): polyline/spline and tension, start and end frame, easing; the selected
// point's frame. Timeline: Play, Untime (drop the track's per-point frames) and a frame slider; the canvas
// shows every object's position at the current frame. A cross marks where a tracked point was lost; a
// diamond is a track of one point (an anchor: the object stays there).
//
// Every edit keeps the track's timing (`frames`, `lost_at`): see trajectory_edits.js.
//
// State: the hidden STRING input `trajectory_data` holds MotionKit trajectory JSON (version 2, see the
// README) plus an optional "reference" {filename, subfolder, type} for the uploaded image, so the drawing
// travels in the workflow JSON and in the API prompt. The canvas widget itself is not serialized. Where
// each object is at each frame comes from trajectory_timing.js, the same definition Resample uses.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { EASINGS, INTERPOLATIONS, passingFrames, pathPoints, simplifyStroke, trackPositions } from "./trajectory_timing.js";
import { FORMAT_VERSION, deletePoint, insertPoint, readTrack, retime, round2, setPointFrame, trackSpan, untime,
         writeTrack } from "./trajectory_edits.js";

const NODE_NAME = "MotionKitDrawTrajectories";
const TOOLBAR_HEIGHT = 30;
const TRACKBAR_HEIGHT = 28;
const TIMELINE_HEIGHT = 26;
const INFO_HEIGHT = 20;
const HIT_RADIUS = 9; // screen pixels
const DRAG_THRESHOLD = 5; // screen pixels a press must move to become a freehand stroke
const FREEHAND_TOLERANCE = 4; // screen pixels a simplified stroke may leave the drawn one
const PLAY_FPS = 12;
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
    this.selectedPoint = -1;
    this.frame = 0;
    this.player = null;
    this.undoStack = [];
    this.drag = null;
    this.stroke = null;
    this.message = "";
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
    const row = (height) => {
      const bar = document.createElement("div");
      bar.style.cssText = `display:flex;gap:4px;height:${height - 4}px;align-items:center;font-size:11px;color:#ccc;overflow:hidden;`;
      return bar;
    };
    const button = (bar, label, title, action) => {
      const b = document.createElement("button");
      b.textContent = label;
      b.title = title;
      b.dataset.action = label;
      b.style.cssText = "font-size:11px;padding:2px 6px;cursor:pointer;";
      b.addEventListener("click", (e) => { e.stopPropagation(); action(); });
      bar.appendChild(b);
      return b;
    };
    const field = (bar, label, title, element) => {
      const wrap = document.createElement("label");
      wrap.title = title;
      wrap.style.cssText = "display:flex;gap:2px;align-items:center;white-space:nowrap;";
      wrap.append(label.split(" ").pop(), element);
      element.dataset.field = label;
      element.style.cssText = `font-size:11px;max-width:${element.type === "number" ? 40 : 78}px;`;
      element.addEventListener("pointerdown", (e) => e.stopPropagation());
      element.addEventListener("keydown", (e) => e.stopPropagation());
      bar.appendChild(wrap);
      return element;
    };
    const number = (bar, label, title, step, onChange) => {
      const input = document.createElement("input");
      input.type = "number";
      input.step = step;
      input.addEventListener("change", () => onChange(input.value));
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") input.blur(); }); // blur commits (change)
      return field(bar, label, title, input);
    };
    const choice = (bar, label, title, options, onChange) => {
      const select = document.createElement("select");
      for (const option of options) select.add(new Option(option, option));
      select.addEventListener("change", () => onChange(select.value));
      return field(bar, label, title, select);
    };

    const tools = row(TOOLBAR_HEIGHT);
    button(tools, "New track", "Start a new track; click on the canvas to add its points", () => this.newTrack());
    button(tools, "Delete track", "Delete the selected track", () => this.edit(() => {
      if (this.selected >= 0) this.tracks.splice(this.selected, 1);
      this.select(this.tracks.length - 1);
    }));
    button(tools, "Clear", "Delete all tracks", () => this.edit(() => { this.tracks = []; this.select(-1); }));
    button(tools, "Undo", "Undo the last change", () => this.undo());
    const upload = document.createElement("input");
    upload.type = "file";
    upload.accept = "image/*";
    upload.style.display = "none";
    upload.addEventListener("change", () => upload.files[0] && this.uploadReference(upload.files[0]));
    button(tools, "Image", "Upload a reference image (the first frame) to draw on", () => upload.click());
    tools.appendChild(upload);

    const trackBar = row(TRACKBAR_HEIGHT);
    this.fields = {
      curve: choice(trackBar, "curve", "The selected track's path: straight lines between its points, or a smooth "
                    + "cardinal spline through them", INTERPOLATIONS, (v) => this.setTrackField("interpolation", v)),
      tension: number(trackBar, "tension", "Spline tension: 0 = Catmull-Rom (round), 1 = straight lines", "0.1",
                      (v) => this.setTension(v)),
      start: number(trackBar, "start", "Frame where the object starts moving (held at its first point before)", "1",
                    (v) => this.setSpan(v, null)),
      end: number(trackBar, "end", "Frame where the object arrives at its last point (held there after)", "1",
                  (v) => this.setSpan(null, v)),
      easing: choice(trackBar, "easing", "How the object speeds up and slows down between start and end", EASINGS,
                     (v) => this.setTrackField("easing", v)),
      pointFrame: number(trackBar, "point frame", "The selected point's frame: the object is at this point at this "
                         + "frame (times every point of the track)", "1", (v) => this.setPointFrame(v)),
    };

    this.canvas = document.createElement("canvas");
    this.canvas.style.cssText = "width:100%;display:block;cursor:crosshair;background:#282828;";

    const timeline = row(TIMELINE_HEIGHT);
    this.playButton = button(timeline, "Play", "Play the frames (every object at its position)", () => this.togglePlay());
    button(timeline, "Untime", "Drop the selected track's per-point frames: it moves at constant speed from its "
           + "first to its last timed frame", () => this.untime());
    this.slider = document.createElement("input");
    this.slider.type = "range";
    this.slider.min = "0";
    this.slider.step = "1";
    this.slider.dataset.field = "timeline";
    this.slider.style.cssText = "flex:1;min-width:60px;";
    this.slider.addEventListener("pointerdown", (e) => e.stopPropagation());
    this.slider.addEventListener("input", () => this.setFrame(Number(this.slider.value)));
    this.frameLabel = document.createElement("span");
    this.frameLabel.style.cssText = "min-width:70px;text-align:right;";
    timeline.append(this.slider, this.frameLabel);

    this.info = document.createElement("div");
    this.info.style.cssText = `font-size:11px;color:#bbb;height:${INFO_HEIGHT}px;white-space:nowrap;overflow:hidden;`;
    root.append(tools, trackBar, this.canvas, timeline, this.info);
    this.root = root;

    this.canvas.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    this.canvas.addEventListener("pointermove", (e) => this.onPointerMove(e));
    this.canvas.addEventListener("pointerup", (e) => this.onPointerUp(e));
    this.canvas.addEventListener("contextmenu", (e) => { e.preventDefault(); e.stopPropagation(); });
  }

  // Bad widget values are named in the info line; the canvas keeps a usable size meanwhile.
  problems() {
    const found = [];
    for (const [name, widget] of [["width", this.widthWidget], ["height", this.heightWidget]])
      if (!(widget.value >= 2)) found.push(`${name} is ${widget.value}: set it to the video's ${name} (at least 2)`);
    if (!(this.framesWidget.value >= 2))
      found.push(`num_frames is ${this.framesWidget.value}: set it to the video's frame count (at least 2)`);
    return found;
  }

  // A bad value leaves the drawing on its last good canvas and frame count (it is not squashed to 2x2).
  get width() { return this.widthWidget.value >= 2 ? this.widthWidget.value | 0 : this.canvasSize?.[0] ?? 2; }
  get height() { return this.heightWidget.value >= 2 ? this.heightWidget.value | 0 : this.canvasSize?.[1] ?? 2; }
  get frames() {
    if (this.framesWidget.value >= 2) this.goodFrames = this.framesWidget.value | 0;
    return this.goodFrames ?? 2;
  }
  get track() { return this.tracks[this.selected]; }

  select(track, point = -1) {
    this.selected = track;
    this.selectedPoint = point;
  }

  // ---------------------------------------------------------------- state
  readState() {
    const text = this.stateWidget.value || "";
    if (text === this.lastText) return;
    this.lastText = text;
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (error) { data = null; }
    if (data && data.format === "motionkit.trajectories" && Array.isArray(data.tracks)) {
      this.tracks = data.tracks.map(readTrack);
      this.canvasSize = data.canvas ? [data.canvas.width, data.canvas.height] : [this.width, this.height];
      this.fitToCanvas();
      this.setReference(data.reference || null);
    } else {
      this.tracks = [];
    }
    if (this.selected >= this.tracks.length || this.selected < 0) this.select(this.tracks.length - 1);
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
    // the preview works on the numbers that are saved
    for (const track of this.tracks) track.points = track.points.map(([x, y]) => [round2(x), round2(y)]);
    const data = {
      format: "motionkit.trajectories",
      version: FORMAT_VERSION,
      canvas: { width: this.width, height: this.height },
      num_frames: this.frames,
      tracks: this.tracks.map(writeTrack),
    };
    if (this.reference) data.reference = this.reference;
    this.lastText = JSON.stringify(data);
    this.stateWidget.value = this.lastText;
    this.draw();
  }

  snapshot() {
    return JSON.stringify({ tracks: this.tracks, selected: this.selected, selectedPoint: this.selectedPoint });
  }

  // Apply a change as one undoable step; a change that returns a string is refused with that message.
  edit(change) {
    const before = this.snapshot();
    this.message = "";
    const refused = change();
    if (typeof refused === "string") {
      const data = JSON.parse(before);
      this.tracks = data.tracks;
      this.message = refused;
      this.draw();
      return false;
    }
    this.undoStack.push(before);
    if (this.undoStack.length > 200) this.undoStack.shift();
    this.writeState();
    return true;
  }

  undo() {
    const previous = this.undoStack.pop();
    if (!previous) return;
    const data = JSON.parse(previous);
    this.tracks = data.tracks;
    this.select(data.selected, data.selectedPoint);
    this.message = "";
    this.writeState();
  }

  newTrack(points = [], fields = {}) {
    this.edit(() => {
      const used = new Set(this.tracks.map((t) => t.name));
      let n = this.tracks.length + 1;
      while (used.has(`track ${n}`)) n += 1;
      this.tracks.push(readTrack({ name: `track ${n}`, points, ...fields }, n - 1));
      this.select(this.tracks.length - 1, points.length - 1);
    });
  }

  // ---------------------------------------------------------------- timing (trajectory_edits.js)
  setTrackField(key, value) {
    if (!this.track) return;
    this.edit(() => { this.track[key] = value; });
  }

  setTension(text) {
    const value = Number(text);
    if (!this.track) return;
    this.edit(() => {
      if (!(value >= 0 && value <= 1)) return `tension ${text} must be from 0 (round) to 1 (straight)`;
      this.track.tension = value;
    });
  }

  setSpan(startText, endText) {
    const track = this.track;
    if (!track) return;
    const [start, end] = this.span(track);
    this.edit(() => retime(track, startText === null ? start : Number(startText),
                           endText === null ? end : Number(endText), this.frames));
  }

  span(track) {
    return trackSpan(track, this.frames);
  }

  setPointFrame(text) {
    const track = this.track, p = this.selectedPoint;
    if (!track || p < 0 || p >= track.points.length) return;
    this.edit(() => setPointFrame(track, p, Number(text), this.frames));
  }

  untime() {
    if (this.track?.frames) this.edit(() => untime(this.track, this.frames));
  }

  // Per-frame positions of a track, as Resample Trajectories places them.
  positionsOf(track) {
    return track.points.length ? trackPositions(track, this.frames) : [];
  }

  // [track][frame] -> [x, y]: what the canvas shows (the browser test compares it with Resample Trajectories).
  framePositions() {
    return this.tracks.map((track) => this.positionsOf(track));
  }

  setFrame(frame) {
    this.frame = Math.min(Math.max(frame | 0, 0), this.frames - 1);
    this.draw();
  }

  togglePlay() {
    if (this.player) {
      clearInterval(this.player);
      this.player = null;
    } else {
      this.player = setInterval(() => this.setFrame((this.frame + 1) % this.frames), 1000 / PLAY_FPS);
    }
    this.playButton.textContent = this.player ? "Pause" : "Play";
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

  screenToCanvas(pixels) {
    const rect = this.canvas.getBoundingClientRect();
    return (pixels * this.width) / Math.max(rect.width, 1);
  }

  findPoint([x, y]) {
    const r = this.screenToCanvas(HIT_RADIUS);
    // the selected track wins when points of two tracks overlap
    const candidates = [this.selected, ...this.tracks.keys()].filter((t) => t >= 0);
    for (const t of candidates) {
      const points = this.tracks[t].points;
      for (let p = points.length - 1; p >= 0; p--)
        if (Math.hypot(points[p][0] - x, points[p][1] - y) <= r) return { track: t, point: p };
    }
    return null;
  }

  // Index a point inserted at [x, y] on the selected track's path gets, or null when not on it.
  findSegment([x, y]) {
    const track = this.track;
    if (!track || track.points.length < 2) return null;
    const path = pathPoints(track.points, track.interpolation, track.tension), r = this.screenToCanvas(HIT_RADIUS);
    const perSegment = (path.length - 1) / (track.points.length - 1);
    for (let p = 0; p + 1 < path.length; p++) {
      const [x0, y0] = path[p], [x1, y1] = path[p + 1];
      const dx = x1 - x0, dy = y1 - y0, length2 = dx * dx + dy * dy;
      if (length2 === 0) continue;
      const t = Math.min(Math.max(((x - x0) * dx + (y - y0) * dy) / length2, 0), 1);
      if (Math.hypot(x0 + t * dx - x, y0 + t * dy - y) <= r) return Math.floor(p / perSegment) + 1;
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
      if (hit) this.edit(() => { deletePoint(this.tracks[hit.track], hit.point); this.select(hit.track); });
      return;
    }
    if (e.button !== 0) return;
    this.canvas.setPointerCapture?.(e.pointerId);
    if (hit) {
      this.drag = { ...hit, before: this.snapshot() };
      this.select(hit.track, hit.point);
    } else {
      const insertAt = this.findSegment(position);
      if (insertAt !== null) {
        const inserted = this.edit(() => {
          const refused = insertPoint(this.track, insertAt, position);
          if (refused) return refused;
          this.selectedPoint = insertAt;
        });
        if (inserted) this.drag = { track: this.selected, point: insertAt, before: null };
      } else {
        this.stroke = { points: [position], screen: [e.clientX, e.clientY], freehand: false };
      }
    }
    this.draw();
  }

  onPointerMove(e) {
    if (this.stroke) {
      e.preventDefault();
      e.stopPropagation();
      const [sx, sy] = this.stroke.screen;
      if (Math.hypot(e.clientX - sx, e.clientY - sy) > DRAG_THRESHOLD) this.stroke.freehand = true;
      const position = this.clampPoint(this.toCanvas(e)), last = this.stroke.points[this.stroke.points.length - 1];
      if (Math.hypot(position[0] - last[0], position[1] - last[1]) >= this.screenToCanvas(1)) this.stroke.points.push(position);
      this.draw();
      return;
    }
    if (!this.drag) return;
    e.preventDefault();
    e.stopPropagation();
    this.tracks[this.drag.track].points[this.drag.point] = this.clampPoint(this.toCanvas(e));
    this.drag.moved = true;
    this.draw();
  }

  onPointerUp(e) {
    if (this.stroke) {
      e.stopPropagation();
      const stroke = this.stroke;
      this.stroke = null;
      if (stroke.freehand) {
        const points = simplifyStroke(stroke.points, this.screenToCanvas(FREEHAND_TOLERANCE));
        this.newTrack(points, { interpolation: "spline", tension: 0 });
      } else {
        this.edit(() => {
          if (!this.track) {
            this.tracks.push(readTrack({ name: `track ${this.tracks.length + 1}`, points: [] }, this.tracks.length));
            this.select(this.tracks.length - 1);
          }
          const refused = insertPoint(this.track, this.track.points.length, stroke.points[0]);
          if (refused) return refused;
          this.selectedPoint = this.track.points.length - 1;
        });
      }
      return;
    }
    if (!this.drag) return;
    e.stopPropagation();
    const drag = this.drag;
    this.drag = null;
    if (drag.before && drag.moved) {  // a moved point: one undo step (an inserted one was recorded when inserted)
      this.undoStack.push(drag.before);
      if (this.undoStack.length > 200) this.undoStack.shift();
    }
    this.writeState();
  }

  // ---------------------------------------------------------------- drawing
  showFields() {
    const track = this.track, f = this.fields, frames = this.frames;
    for (const element of Object.values(f)) element.disabled = !track;
    this.slider.max = String(frames - 1);
    if (document.activeElement !== this.slider) this.slider.value = String(this.frame);
    this.frameLabel.textContent = `frame ${this.frame} / ${frames - 1}`;
    if (!track) return;
    const [start, end] = this.span(track);
    const focused = document.activeElement;
    const show = (element, value) => { if (focused !== element) element.value = String(value); };
    show(f.curve, track.interpolation);
    show(f.tension, track.tension);
    f.tension.disabled = track.interpolation !== "spline";
    show(f.start, start);
    show(f.end, end);
    show(f.easing, track.easing);
    const p = this.selectedPoint;
    f.pointFrame.disabled = !(p >= 0 && p < track.points.length);
    if (!f.pointFrame.disabled)
      show(f.pointFrame, track.frames ? track.frames[p] : Math.round(passingFrames(track, this.frames)[p]));
    else show(f.pointFrame, "");
  }

  draw() {
    this.readState();
    if (this.frame > this.frames - 1) this.frame = this.frames - 1;
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
    const positions = this.framePositions();
    this.tracks.forEach((track, t) => {
      const color = trackColor(t), points = track.points;
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = (t === this.selected ? 3 : 2) * unit;
      if (points.length > 1) {
        ctx.beginPath();
        pathPoints(points, track.interpolation, track.tension).forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
        ctx.stroke();
        ctx.fillStyle = "rgba(255,255,255,0.85)"; // where the object is at each frame
        for (const [x, y] of positions[t]) {
          ctx.beginPath();
          ctx.arc(x, y, 1.5 * unit, 0, 2 * Math.PI);
          ctx.fill();
        }
        ctx.fillStyle = color;
      }
      if (track.lost_at != null && points.length) { // tracking lost the object after its last point: a cross
        const [x, y] = points[points.length - 1], r = 7 * unit;
        ctx.beginPath();
        ctx.moveTo(x - r, y - r); ctx.lineTo(x + r, y + r); ctx.moveTo(x + r, y - r); ctx.lineTo(x - r, y + r);
        ctx.stroke();
      }
      points.forEach(([x, y], i) => {
        ctx.beginPath();
        if (points.length === 1) { // an anchor (the object stays here): a diamond
          const r = 7 * unit;
          ctx.moveTo(x, y - r); ctx.lineTo(x + r, y); ctx.lineTo(x, y + r); ctx.lineTo(x - r, y); ctx.closePath();
        } else ctx.arc(x, y, (i === 0 ? 5 : 4) * unit, 0, 2 * Math.PI);
        ctx.fill();
        if (t === this.selected) {
          ctx.lineWidth = (i === this.selectedPoint ? 3 : 1.5) * unit;
          ctx.strokeStyle = "#fff";
          ctx.stroke();
          ctx.strokeStyle = color;
        }
      });
    });
    // every object at the timeline's frame: a large disc in its colour with a dark ring
    this.tracks.forEach((track, t) => {
      const at = positions[t][this.frame];
      if (!at) return;
      ctx.beginPath();
      ctx.arc(at[0], at[1], 8 * unit, 0, 2 * Math.PI);
      ctx.fillStyle = trackColor(t);
      ctx.fill();
      ctx.lineWidth = 2 * unit;
      ctx.strokeStyle = "#000";
      ctx.stroke();
    });
    if (this.stroke?.freehand) {
      ctx.beginPath();
      this.stroke.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 1.5 * unit;
      ctx.stroke();
    }
    this.showFields();
    const problems = this.problems();
    const track = this.track;
    const about = track ? `, selected: ${track.name} (` +
      (track.points.length === 1 ? "1 point: an anchor, the object stays there" : `${track.points.length} points`) +
      (track.frames ? ", timed" : "") + (track.lost_at != null ? `, lost at frame ${track.lost_at}` : "") + ")" : "";
    const late = this.tracks.findIndex((t) => this.span(t)[1] > this.frames - 1);
    const note = late >= 0 ? `; ${this.tracks[late].name} ends at frame ${this.span(this.tracks[late])[1]}, `
      + `after the last frame ${this.frames - 1}` : "";
    this.info.style.color = problems.length || this.message ? "#f88" : "#bbb";
    this.info.textContent = problems.length ? problems.join("; ") : this.message ||
      `${this.tracks.length} track(s)${about}, dots: ${this.frames} frames${note}`;
  }

  widgetHeight(nodeWidth) {
    const canvasWidth = Math.max(nodeWidth - 20, 50);
    return TOOLBAR_HEIGHT + TRACKBAR_HEIGHT + (canvasWidth * this.height) / this.width + TIMELINE_HEIGHT + INFO_HEIGHT + 12;
  }

  remove() {
    if (this.player) clearInterval(this.player);
    this.player = null;
    this.root.remove();
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
      this.setSize([Math.max(this.size[0], 480), this.computeSize([480, 0])[1]]);
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
      this.motionkitEditor?.remove();
      this.motionkitEditor = null;
    });
  },
});
