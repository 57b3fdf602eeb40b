"""The Draw Trajectories editor in the real ComfyUI frontend (headless Chromium over the DevTools protocol).

One server and one browser page serve every test here. Each test builds its graph, drives the canvas and the
fields with mouse (and keyboard) events, saves the workflow, reloads the page and the workflow, queues it and
checks what the server received and produced. The widget's preview positions are compared with Resample
Trajectories (the Python definition) number for number."""
import argparse
import base64
import json
import math
import re
import time
import urllib.request

import pytest
from PIL import Image

from scripts import harness

harness.import_pack()
from motionkit.models.trajectory import preview, resample  # noqa: E402
from motionkit.nodes import trajectory as nodes  # noqa: E402

WIDTH, HEIGHT, FRAMES = 360, 240, 9

JS_BUILD = """(async () => {
  const [width, height, frames, state, flow] = %s;
  const app = window.app;
  app.graph.clear();
  const draw = LiteGraph.createNode("MotionKitDrawTrajectories");
  draw.pos = [40, 40];
  app.graph.add(draw);
  const set = (name, value) => { draw.widgets.find(w => w.name === name).value = value; };
  set("width", width); set("height", height); set("num_frames", frames);
  if (state) set("trajectory_data", JSON.stringify(state));
  draw.motionkitEditor.readState();
  draw.motionkitEditor.writeState();
  draw.setSize([520, draw.computeSize([520, 0])[1]]);
  const preview = LiteGraph.createNode("MotionKitPreviewTrajectories");
  preview.pos = [600, 40];
  app.graph.add(preview);
  const save = LiteGraph.createNode("SaveImage");
  save.pos = [900, 40];
  app.graph.add(save);
  draw.connect(0, preview, 0);
  preview.connect(0, save, 0);
  if (flow) {  // Trajectories to Flow with width, height and num_frames 0: all taken from the trajectories
    const toFlow = LiteGraph.createNode("MotionKitTrajectoriesToFlow");
    toFlow.pos = [600, 400];
    app.graph.add(toFlow);
    for (const name of ["width", "height", "num_frames"]) toFlow.widgets.find(w => w.name === name).value = 0;
    const saveFlow = LiteGraph.createNode("SaveImage");
    saveFlow.pos = [900, 400];
    app.graph.add(saveFlow);
    draw.connect(0, toFlow, 0);
    toFlow.connect(0, saveFlow, 0);
  }
  app.canvas.ds.offset = [0, 0];
  app.canvas.ds.scale = 1;
  app.canvas.setDirty(true, true);
  for (let i = 0; i < 4; i++) await new Promise(r => requestAnimationFrame(r));
  return draw.id;
})()"""

JS_COPY_PASTE = """(async () => {
  const canvas = app.canvas, source = app.graph.getNodeById(%d);
  const before = new Set(app.graph.nodes.map(n => n.id));
  canvas.copyToClipboard([source]);
  canvas.pasteFromClipboard({position: [40, 900]});
  for (let i = 0; i < 3; i++) await new Promise(r => requestAnimationFrame(r));
  const pasted = app.graph.nodes.find(n => !before.has(n.id));
  const state = () => JSON.parse(pasted.widgets.find(w => w.name === 'trajectory_data').value);
  const copied = state();
  const width = pasted.widgets.find(w => w.name === 'width');
  width.value = 720;
  width.callback(720);  // as when the user edits the width: the drawing is scaled with the canvas
  const widened = state();
  app.graph.remove(pasted);
  return {copied, widened, editorTracks: copied.tracks.length};
})()"""

JS_UPLOAD = """(async () => {
  const node = app.graph.getNodeById(%d), editor = node.motionkitEditor;
  const canvas = document.createElement('canvas');
  canvas.width = 36; canvas.height = 24;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#3060c0'; ctx.fillRect(0, 0, 36, 24);
  const blob = await new Promise(r => canvas.toBlob(r, 'image/png'));
  await editor.uploadReference(new File([blob], 'motionkit_test_reference.png', {type: 'image/png'}));
  for (let i = 0; i < 100 && !editor.image; i++) await new Promise(r => setTimeout(r, 50));
  return {reference: JSON.parse(node.widgets.find(w => w.name === 'trajectory_data').value).reference,
          loaded: !!editor.image, size: editor.image ? [editor.image.naturalWidth, editor.image.naturalHeight] : null};
})()"""

JS_RECTS = """(() => {
  const box = e => { const r = e.getBoundingClientRect(); return {left: r.left, top: r.top, width: r.width, height: r.height}; };
  const root = app.graph.getNodeById(%d).motionkitEditor.root;
  const out = {canvas: box(root.querySelector('canvas'))};
  for (const b of root.querySelectorAll('button[data-action]')) out[b.dataset.action] = box(b);
  for (const f of root.querySelectorAll('[data-field]')) out[f.dataset.field] = box(f);
  return out;
})()"""


def _editor(node_id):
    return f"app.graph.getNodeById({node_id}).motionkitEditor"


class UI:
    """The page and the helpers the tests drive it with."""

    def __init__(self, ui_workflow, session, server):
        self.ui_workflow, self.session, self.browser, self.server = ui_workflow, session, session.browser, server

    def build(self, width=WIDTH, height=HEIGHT, frames=FRAMES, state=None, flow=False):
        self.js(self.ui_workflow.JS_CLOSE_DIALOGS)  # e.g. the error dialog of a refused prompt
        self.node = self.browser.evaluate(JS_BUILD % json.dumps([width, height, frames, state, flow]))
        self.rects = self.browser.evaluate(JS_RECTS % self.node)
        self.canvas = self.rects["canvas"]
        self.width, self.height = width, height
        return self.node

    def js(self, expression, timeout=60):
        return self.browser.evaluate(expression, timeout=timeout)

    def state(self):
        return json.loads(self.js(f"app.graph.getNodeById({self.node}).widgets.find(w => w.name === 'trajectory_data').value"))

    def info(self):
        return self.js(f"{_editor(self.node)}.info.textContent")

    def mouse(self, kind, x, y, buttons=1, button="left"):
        self.browser.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": button,
                                                       "buttons": buttons, "clickCount": 1})

    def click(self, x, y, button="left"):
        self.mouse("mouseMoved", x, y, 0, "none")
        self.mouse("mousePressed", x, y, 1 if button == "left" else 2, button)
        self.mouse("mouseReleased", x, y, 0, button)

    def drag(self, screen_points):
        self.mouse("mouseMoved", *screen_points[0], 0, "none")
        self.mouse("mousePressed", *screen_points[0])
        for point in screen_points[1:]:
            self.mouse("mouseMoved", *point)
        self.mouse("mouseReleased", *screen_points[-1], 0)

    def press(self, name):
        rect = self.rects[name]
        self.click(rect["left"] + rect["width"] / 2, rect["top"] + rect["height"] / 2)

    def type_into(self, name, text):
        """Click a field, replace its text by typing, press Enter (the field's change event)."""
        self.press(name)
        self.js(f"{_editor(self.node)}.root.querySelector('[data-field=\"{name}\"]').select()")
        self.browser.send("Input.insertText", {"text": text})
        for kind in ("keyDown", "keyUp"):
            self.browser.send("Input.dispatchKeyEvent", {"type": kind, "key": "Enter", "code": "Enter",
                                                         "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13})

    def choose(self, name, value):
        """Pick an option of a <select> (native pop-ups do not open in headless Chromium: set it and fire change)."""
        self.js(f"""(() => {{ const s = {_editor(self.node)}.root.querySelector('[data-field="{name}"]');
                    s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); }})()""")

    def screen(self, x, y):
        """Screen position of canvas coordinates (x, y)."""
        c = self.canvas
        return c["left"] + x * c["width"] / self.width, c["top"] + y * c["height"] / self.height

    def at(self, fx, fy):
        """Screen position at a fraction of the canvas, and the canvas coordinates the widget computes for it."""
        c = self.canvas
        sx, sy = c["left"] + fx * c["width"], c["top"] + fy * c["height"]
        return (sx, sy), ((sx - c["left"]) * self.width / c["width"], (sy - c["top"]) * self.height / c["height"])

    def save_reload_load(self, name):
        """Save the workflow as the frontend does, reload the page, load the saved workflow; returns it."""
        saved = self.js("JSON.stringify(app.graph.serialize())")
        self.browser.send("Page.reload", {"ignoreCache": True})
        time.sleep(1.0)
        try:  # the frontend asks before leaving a modified workflow
            self.browser.send("Page.handleJavaScriptDialog", {"accept": True}, timeout=5)
        except self.ui_workflow.CDPError:
            pass
        self.session.wait_ready(120)
        self.js(self.ui_workflow.JS_INSTALL)
        self.js(self.ui_workflow.JS_CLOSE_DIALOGS)
        self.session.load(json.loads(saved), name)
        return json.loads(saved)

    def queue(self):
        """Queue the graph through the frontend; the history entry once it ran."""
        queued = self.js(self.ui_workflow.JS_QUEUE, timeout=120)
        assert queued["queued"] and not queued["errors"], queued
        prompt_id = queued["queued"][-1]["prompt_id"]
        entry = None
        for _ in range(480):
            with urllib.request.urlopen(f"{self.server.base_url}/history/{prompt_id}", timeout=30) as response:
                entry = json.load(response).get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None and entry["status"].get("status_str"):
                break
            time.sleep(0.25)
        return entry

    def queue_rejected(self):
        """Queue expecting the server to refuse the prompt; the errors it gave."""
        return self.js(self.ui_workflow.JS_QUEUE, timeout=120)

    def screenshot(self, path):
        self.js(self.ui_workflow.JS_REDRAW)
        time.sleep(0.2)
        path.write_bytes(base64.b64decode(self.browser.send("Page.captureScreenshot", {"format": "png"})["data"]))


@pytest.fixture(scope="module")
def ui(comfy_server):
    ui_workflow = harness.host_module("ui_workflow")
    args = argparse.Namespace(cmd="run", host="127.0.0.1", port=comfy_server.port, chromium=None, width=1400,
                              height=1100, load_timeout=120, no_settings=False, setting=None, node_ids=False,
                              verbose=False, screenshot=None, keep_minimap=False)
    session = ui_workflow.Session(args)
    session.start()
    try:
        yield UI(ui_workflow, session, comfy_server)
    finally:
        session.close()


def _same_tracks(received, expected):
    assert [t["name"] for t in received] == [name for name, _ in expected]
    for track, (_name, points) in zip(received, expected):
        assert len(track["points"]) == len(points)
        for (x, y), (ex, ey) in zip(track["points"], points):
            assert abs(x - ex) <= 0.01 and abs(y - ey) <= 0.01, (track, points)


def _resampled_in_python(state, frames):
    """Resample Trajectories' placement of the Draw node's output (what the server computes)."""
    drawn = nodes.MotionKitDrawTrajectories().draw(state["canvas"]["width"], state["canvas"]["height"], frames,
                                                   json.dumps(state))["result"][0]
    return [[list(p) for p in track.points] for track in resample.resample(drawn, frames).tracks]


@pytest.mark.host
def test_draw_save_reload_queue_in_the_real_frontend(ui, artifacts_dir):
    node_id = ui.build()
    canvas = ui.canvas
    assert canvas["width"] > 200 and abs(canvas["height"] / canvas["width"] - HEIGHT / WIDTH) < 0.02

    expected = [("track 1", []), ("track 2", [])]
    for fx, fy in ((0.1, 0.2), (0.5, 0.3), (0.9, 0.25)):  # track 1: three clicks
        screen, point = ui.at(fx, fy)
        ui.click(*screen)
        expected[0][1].append(point)
    ui.press("New track")
    for fx, fy in ((0.2, 0.8), (0.7, 0.6)):  # track 2: two clicks
        screen, point = ui.at(fx, fy)
        ui.click(*screen)
        expected[1][1].append(point)
    # drag track 2's last point to a new place
    (start, _), (end, moved) = ui.at(0.7, 0.6), ui.at(0.8, 0.85)
    ui.drag([(start[0] + (end[0] - start[0]) * step / 5, start[1] + (end[1] - start[1]) * step / 5) for step in range(6)])
    expected[1][1][-1] = moved

    # insert on the selected track's line, delete it with a right click, bring it back with Undo
    (a, _), (b, _) = ui.at(0.2, 0.8), ui.at(0.8, 0.85)
    middle = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    ui.click(*middle)
    inserted = ((middle[0] - canvas["left"]) * WIDTH / canvas["width"], (middle[1] - canvas["top"]) * HEIGHT / canvas["height"])
    with_insert = [expected[0], ("track 2", [expected[1][1][0], inserted, expected[1][1][1]])]
    _same_tracks(ui.state()["tracks"], with_insert)
    ui.click(*middle, button="right")
    _same_tracks(ui.state()["tracks"], expected)
    ui.press("Undo")
    _same_tracks(ui.state()["tracks"], with_insert)
    ui.press("Clear")
    assert ui.state()["tracks"] == []
    ui.press("Undo")
    _same_tracks(ui.state()["tracks"], with_insert)
    expected = with_insert

    upload = ui.js(JS_UPLOAD % node_id)
    assert upload["loaded"] and upload["size"] == [36, 24], upload
    assert upload["reference"]["type"] == "input" and upload["reference"]["filename"].endswith(".png")

    state = ui.state()
    assert state["canvas"] == {"width": WIDTH, "height": HEIGHT} and state["version"] == 2
    assert state["num_frames"] == FRAMES
    _same_tracks(state["tracks"], expected)

    saved = ui.save_reload_load("drawn_trajectories")
    (artifacts_dir / "draw_trajectories_workflow.json").write_text(json.dumps(saved))
    saved_node = next(n for n in saved["nodes"] if n["id"] == node_id)
    assert json.loads(saved_node["widgets_values"][3])["tracks"] == state["tracks"]
    assert len(saved_node["widgets_values"]) == 4, "the canvas widget must not be serialized"
    reloaded = ui.js(f"{_editor(node_id)}.tracks")
    _same_tracks([{"name": t["name"], "points": t["points"]} for t in reloaded], expected)

    pasted = ui.js(JS_COPY_PASTE % node_id)
    _same_tracks(pasted["copied"]["tracks"], expected)
    assert pasted["widened"]["canvas"] == {"width": 2 * WIDTH, "height": HEIGHT}
    _same_tracks(pasted["widened"]["tracks"], [(name, [(2 * x, y) for x, y in points]) for name, points in expected])

    entry = ui.queue()
    assert entry["status"]["status_str"] == "success", entry
    received = json.loads(entry["prompt"][2][str(node_id)]["inputs"]["trajectory_data"])
    assert received["canvas"] == {"width": WIDTH, "height": HEIGHT}
    _same_tracks(received["tracks"], expected)
    assert len(ui.server.output_files(entry["outputs"])) == FRAMES, "the preview shows every frame the drawing carries"
    ui.rects = ui.js(JS_RECTS % node_id)
    ui.screenshot(artifacts_dir / "draw_trajectories.png")


def _polyline_distance(point, polyline):
    best = float("inf")
    (px, py) = point
    for (x0, y0), (x1, y1) in zip(polyline, polyline[1:]):
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else min(max(((px - x0) * dx + (py - y0) * dy) / length2, 0.0), 1.0)
        best = min(best, math.hypot(px - x0 - t * dx, py - y0 - t * dy))
    return best


def _pixel(ui, x, y):
    return ui.js(f"Array.from({_editor(ui.node)}.canvas.getContext('2d').getImageData({int(x)}, {int(y)}, 1, 1).data)")[:3]


def _check_markers(ui, frame, positions):
    """At the timeline's frame every object is drawn in its colour where Resample places it."""
    colors = preview.track_colors(len(positions))
    checked = 0
    for t, track in enumerate(positions):
        x, y = track[frame]
        if any(math.dist((x, y), other[frame]) < 20 for other in positions[t + 1:]):
            continue  # a later track's marker covers this one
        assert _pixel(ui, x, y) == list(colors[t]), (t, frame, (x, y))
        checked += 1
    return checked


@pytest.mark.host
def test_freehand_spline_timing_and_timeline_match_resample(ui, artifacts_dir):
    node_id = ui.build(flow=True)
    # freehand: one wave across the canvas in 61 mouse moves becomes a spline through a few points
    stroke = [(20 + 320 * i / 60, 120 + 70 * math.sin(2 * math.pi * i / 60)) for i in range(61)]
    ui.drag([ui.screen(x, y) for x, y in stroke])
    [free] = ui.state()["tracks"]
    assert free["interpolation"] == "spline" and free["tension"] == 0 and "frames" not in free
    assert 4 <= len(free["points"]) <= 12, free
    assert math.dist(free["points"][0], stroke[0]) < 0.6 and math.dist(free["points"][-1], stroke[-1]) < 0.6
    tolerance = 4 * WIDTH / ui.canvas["width"] + 0.6  # FREEHAND_TOLERANCE screen pixels, the mouse's rounding
    assert max(_polyline_distance(p, free["points"]) for p in stroke) <= tolerance

    # click-to-add beside it, then make that track a spline with typed tension, start, end and easing
    ui.press("New track")
    ui.click(*ui.at(0.15, 0.9)[0])  # one point so far: an anchor, held at every frame
    assert "an anchor, the object stays there" in ui.info()
    assert ui.js(f"{_editor(node_id)}.framePositions()[1]") == [ui.state()["tracks"][1]["points"][0]] * FRAMES
    for fx, fy in ((0.5, 0.6), (0.85, 0.9)):
        ui.click(*ui.at(fx, fy)[0])
    ui.choose("curve", "spline")
    ui.type_into("tension", "0.5")
    ui.type_into("start", "2")
    ui.type_into("end", "7")
    ui.choose("easing", "ease-in-out")
    clicked = ui.state()["tracks"][1]
    assert {k: clicked.get(k) for k in ("interpolation", "tension", "start_frame", "end_frame", "easing")} == \
        {"interpolation": "spline", "tension": 0.5, "start_frame": 2, "end_frame": 7, "easing": "ease-in-out"}
    before = ui.state()
    ui.type_into("end", "1")  # before the start: refused, said so, nothing changed
    assert ui.state() == before and "start 2 and end 1" in ui.info()

    # the clicked track's middle point gets its own frame: the whole track becomes timed (its eased passing frames,
    # linear between them). A frame past a neighbour's is refused, and the message gives the frames it may take.
    ui.click(*ui.at(0.5, 0.6)[0])
    shown = int(ui.js(f"{_editor(node_id)}.fields.pointFrame.value"))
    ui.type_into("point frame", "50")
    refused = re.search(r"point 2's frame must be a whole frame from (\d+) to (\d+)", ui.info())
    assert refused and ui.state() == before, ui.info()
    low, high = int(refused[1]), int(refused[2])
    assert (low, high) == (3, 6) and low <= shown <= high  # between start 2 and end 7
    chosen = low if shown != low else high
    ui.type_into("point frame", str(chosen))
    timed = ui.state()["tracks"][1]
    assert timed["frames"] == [2, chosen, 7]
    assert "start_frame" not in timed and "end_frame" not in timed and "easing" not in timed
    # easing on both kinds: the timed track eases between its points, the freehand one over its start..end
    ui.choose("easing", "ease-in")
    ui.click(*ui.screen(*free["points"][0]))
    ui.type_into("start", "1")
    ui.choose("easing", "ease-out")
    eased = ui.state()["tracks"]
    assert (eased[0]["start_frame"], eased[0]["end_frame"], eased[0]["easing"]) == (1, FRAMES - 1, "ease-out")
    assert eased[1]["easing"] == "ease-in" and eased[1]["frames"] == [2, chosen, 7]

    # the widget's preview is Resample Trajectories, number for number
    state = ui.state()
    positions = ui.js(f"{_editor(node_id)}.framePositions()")
    assert positions == _resampled_in_python(state, FRAMES)

    # timeline: the slider moves the markers to the frame; Play advances it
    ui.rects = ui.js(JS_RECTS % node_id)
    slider = ui.rects["timeline"]
    ui.click(slider["left"] + slider["width"] * 0.97, slider["top"] + slider["height"] / 2)
    frame = ui.js(f"{_editor(node_id)}.frame")
    assert frame == FRAMES - 1 and f"frame {frame} / {FRAMES - 1}" in ui.js(f"{_editor(node_id)}.frameLabel.textContent")
    assert _check_markers(ui, frame, positions) >= 1
    ui.click(slider["left"] + slider["width"] * 0.5, slider["top"] + slider["height"] / 2)
    middle = ui.js(f"{_editor(node_id)}.frame")
    assert 0 < middle < FRAMES - 1 and _check_markers(ui, middle, positions) >= 1
    ui.press("Play")
    time.sleep(0.6)
    ui.press("Play")
    assert ui.js(f"{_editor(node_id)}.player") is None and ui.js(f"{_editor(node_id)}.frame") != middle
    ui.screenshot(artifacts_dir / "draw_trajectories_timing.png")

    ui.save_reload_load("timed_trajectories")
    assert ui.state() == state
    assert ui.js(f"{_editor(node_id)}.framePositions()") == positions

    entry = ui.queue()
    assert entry["status"]["status_str"] == "success", entry
    assert json.loads(entry["prompt"][2][str(node_id)]["inputs"]["trajectory_data"]) == state
    # Trajectories to Flow with width, height and num_frames 0 took all three from the drawing
    files = ui.server.output_files(entry["outputs"])
    assert len(files) == 2 * FRAMES
    for path in files:
        with Image.open(path) as image:
            assert image.size == (WIDTH, HEIGHT)


@pytest.mark.host
def test_editing_keeps_frames_and_lost_at(ui):
    tracked = {"name": "tracked", "points": [[40 + 30 * i, 60] for i in range(6)], "frames": list(range(6)), "lost_at": 6}
    keyed = {"name": "keyed", "points": [[40, 180], [180, 150], [320, 190]], "frames": [0, 4, 8]}
    start = {"format": "motionkit.trajectories", "version": 2, "canvas": {"width": WIDTH, "height": HEIGHT},
             "num_frames": FRAMES, "tracks": [tracked, keyed]}
    node_id = ui.build(state=start)
    assert ui.state()["tracks"] == start["tracks"]

    # moving a point keeps every frame and lost_at
    ui.drag([ui.screen(100, 60 + dy) for dy in range(0, 31, 6)])
    [a, b] = ui.state()["tracks"]
    assert a["points"][2][1] > 80 and a["frames"] == list(range(6)) and a["lost_at"] == 6 and b == keyed

    # a point inserted on the keyed track's line gets the free frame between its neighbours
    ui.click(*ui.screen(40, 180))
    ui.click(*ui.screen(110, 165))
    b = ui.state()["tracks"][1]
    assert b["frames"] == [0, 2, 4, 8] and len(b["points"]) == 4

    # between two consecutive frames there is none: refused, and the info line says why
    before = ui.state()
    ui.click(*ui.screen(40, 60))
    ui.click(*ui.screen(55, 60))
    assert ui.state() == before and "no free frame between frames 0 and 1" in ui.info()

    # a deleted point takes its frame with it; lost_at stays
    ui.click(*ui.screen(130, 60), button="right")
    a = ui.state()["tracks"][0]
    assert a["frames"] == [0, 1, 2, 4, 5] and len(a["points"]) == 5 and a["lost_at"] == 6

    # a new end frame stretches a timed track's frames and moves lost_at along; Undo brings them back
    ui.click(*ui.screen(40, 60))
    ui.type_into("end", "7")
    a = ui.state()["tracks"][0]
    assert a["frames"] == [0, 1, 3, 6, 7] and a["lost_at"] == 8 and "end_frame" not in a
    ui.press("Undo")
    a = ui.state()["tracks"][0]
    assert a["frames"] == [0, 1, 2, 4, 5] and a["lost_at"] == 6

    # a point's frame typed in; a point appended past lost_at extends the track (lost_at no longer holds)
    ui.click(*ui.screen(320, 190))
    ui.type_into("point frame", "7")
    assert ui.state()["tracks"][1]["frames"] == [0, 2, 4, 7]
    ui.click(*ui.screen(190, 60))
    ui.click(*ui.screen(250, 100))
    a = ui.state()["tracks"][0]
    assert a["frames"] == [0, 1, 2, 4, 5, 6] and "lost_at" not in a

    state = ui.state()
    positions = ui.js(f"{_editor(node_id)}.framePositions()")
    assert positions == _resampled_in_python(state, FRAMES)
    ui.save_reload_load("edited_tracks")
    assert ui.state() == state
    entry = ui.queue()
    assert entry["status"]["status_str"] == "success", entry
    received = json.loads(entry["prompt"][2][str(node_id)]["inputs"]["trajectory_data"])
    assert [t["frames"] for t in received["tracks"]] == [[0, 1, 2, 4, 5, 6], [0, 2, 4, 7]]

    # Untime: the keyed track drops its frames and moves at constant speed over the span they covered
    ui.rects = ui.js(JS_RECTS % node_id)
    ui.click(*ui.screen(320, 190))
    ui.press("Untime")
    b = ui.state()["tracks"][1]
    assert "frames" not in b and (b["start_frame"], b["end_frame"]) == (0, 7)


@pytest.mark.host
def test_bad_sizes_and_frame_counts_are_named(ui):
    node_id = ui.build(state={"format": "motionkit.trajectories", "version": 1, "canvas": {"width": WIDTH, "height": HEIGHT},
                              "tracks": [{"name": "old", "points": [[10, 10], [100, 100]]}]})
    assert ui.state()["version"] == 2 and ui.state()["tracks"] == [{"name": "old", "points": [[10, 10], [100, 100]]}]
    for name, value in (("width", 0), ("num_frames", 1)):
        ui.js(f"""(() => {{ const w = app.graph.getNodeById({node_id}).widgets.find(w => w.name === '{name}');
                  w.value = {value}; w.callback({value}); }})()""")
    info = ui.info()
    assert "width is 0" in info and "num_frames is 1" in info and "at least 2" in info
    kept = ui.state()  # the drawing stays on its last good canvas
    assert kept["canvas"] == {"width": WIDTH, "height": HEIGHT} and kept["tracks"][0]["points"] == [[10, 10], [100, 100]]
    refused = ui.queue_rejected()
    errors = json.dumps(refused["errors"])
    assert not refused["queued"] and "width" in errors and "num_frames" in errors


@pytest.mark.host
def test_preview_positions_equal_resample_for_every_kind_of_track(ui):
    """Every interpolation x easing x timing combination, at the drawing's frame count and at 49 frames."""
    tracks = []
    for interpolation, tension in (("polyline", 0), ("spline", 0), ("spline", 0.35), ("spline", 1)):
        for easing in ("linear", "ease-in", "ease-out", "ease-in-out"):
            n = len(tracks)
            points = [[10 + 7 * n, 20 + 3 * n], [150 - 2 * n, 200 - n], [200 + n, 30 + 2 * n], [340 - n, 220 - 4 * n]]
            track = {"name": f"t{n}", "points": points, **({} if easing == "linear" else {"easing": easing})}
            if interpolation == "spline":
                track.update(interpolation=interpolation, tension=tension)
            if n % 3 == 1:
                track.update(start_frame=n % 5, end_frame=n % 5 + 3)
            elif n % 3 == 2:
                track.update(frames=[n % 4, n % 4 + 2, n % 4 + 3, n % 4 + 9])
            tracks.append(track)
    for frames in (FRAMES, 49):
        state = {"format": "motionkit.trajectories", "version": 2, "canvas": {"width": WIDTH, "height": HEIGHT},
                 "num_frames": frames, "tracks": tracks}
        node_id = ui.build(frames=frames, state=state)
        assert ui.state()["tracks"] == tracks
        assert ui.js(f"{_editor(node_id)}.framePositions()") == _resampled_in_python(state, frames)
