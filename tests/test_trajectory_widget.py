"""The Draw Trajectories canvas in the real ComfyUI frontend (headless Chromium over the DevTools protocol):
draw two tracks with mouse events, save the workflow, reload the page and the workflow, queue it, and check that
the server received exactly the drawn tracks."""
import argparse
import base64
import json
import time
import urllib.request

import pytest

from scripts import harness

WIDTH, HEIGHT, FRAMES = 360, 240, 9

JS_BUILD = """(async () => {
  const app = window.app;
  app.graph.clear();
  const draw = LiteGraph.createNode("MotionKitDrawTrajectories");
  draw.pos = [40, 40];
  app.graph.add(draw);
  const set = (name, value) => { draw.widgets.find(w => w.name === name).value = value; };
  set("width", %d); set("height", %d); set("num_frames", %d);
  draw.motionkitEditor.writeState();
  draw.setSize([480, draw.computeSize([480, 0])[1]]);
  const preview = LiteGraph.createNode("MotionKitPreviewTrajectories");
  preview.pos = [560, 40];
  app.graph.add(preview);
  const save = LiteGraph.createNode("SaveImage");
  save.pos = [860, 40];
  app.graph.add(save);
  draw.connect(0, preview, 0);
  preview.connect(0, save, 0);
  app.canvas.ds.offset = [0, 0];
  app.canvas.ds.scale = 1;
  app.canvas.setDirty(true, true);
  for (let i = 0; i < 4; i++) await new Promise(r => requestAnimationFrame(r));
  return draw.id;
})()""" % (WIDTH, HEIGHT, FRAMES)

JS_COPY_PASTE = """(async () => {
  const canvas = app.canvas, source = app.graph.getNodeById(%d);
  const before = new Set(app.graph.nodes.map(n => n.id));
  canvas.copyToClipboard([source]);
  canvas.pasteFromClipboard({position: [40, 760]});
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
  const root = document.querySelector('.motionkit-trajectory-editor');
  const button = name => box(root.querySelector(`button[data-action="${name}"]`));
  return {canvas: box(root.querySelector('canvas')), newTrack: button("New track"), clear: button("Clear"),
          undo: button("Undo")};
})()"""


def _session(port):
    ui_workflow = harness.host_module("ui_workflow")

    args = argparse.Namespace(cmd="run", host="127.0.0.1", port=port, chromium=None, width=1400, height=900,
                              load_timeout=120, no_settings=False, setting=None, node_ids=False, verbose=False,
                              screenshot=None, keep_minimap=False)
    session = ui_workflow.Session(args)
    session.start()
    return ui_workflow, session


def _mouse(browser, kind, x, y, buttons=1):
    browser.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                              "buttons": buttons, "clickCount": 1})


def _click(browser, x, y):
    _mouse(browser, "mouseMoved", x, y, 0)
    _mouse(browser, "mousePressed", x, y)
    _mouse(browser, "mouseReleased", x, y, 0)


def _canvas_point(rect, fx, fy):
    """Screen position at a fraction of the canvas, and the canvas coordinates the widget computes for it."""
    sx, sy = rect["left"] + fx * rect["width"], rect["top"] + fy * rect["height"]
    return (sx, sy), ((sx - rect["left"]) * WIDTH / rect["width"], (sy - rect["top"]) * HEIGHT / rect["height"])


def _same_tracks(received, expected):
    assert [t["name"] for t in received] == [name for name, _ in expected]
    for track, (_name, points) in zip(received, expected):
        assert len(track["points"]) == len(points)
        for (x, y), (ex, ey) in zip(track["points"], points):
            assert abs(x - ex) <= 0.01 and abs(y - ey) <= 0.01, (track, points)


@pytest.mark.host
def test_draw_save_reload_queue_in_the_real_frontend(comfy_server, artifacts_dir):
    ui_workflow, session = _session(comfy_server.port)
    browser = session.browser
    try:
        node_id = browser.evaluate(JS_BUILD)
        rects = browser.evaluate(JS_RECTS)
        canvas = rects["canvas"]
        assert canvas["width"] > 200 and abs(canvas["height"] / canvas["width"] - HEIGHT / WIDTH) < 0.02

        expected = [("track 1", []), ("track 2", [])]
        for fx, fy in ((0.1, 0.2), (0.5, 0.3), (0.9, 0.25)):  # track 1: three clicks
            screen, point = _canvas_point(canvas, fx, fy)
            _click(browser, *screen)
            expected[0][1].append(point)
        button = rects["newTrack"]
        _click(browser, button["left"] + button["width"] / 2, button["top"] + button["height"] / 2)
        for fx, fy in ((0.2, 0.8), (0.7, 0.6)):  # track 2: two clicks
            screen, point = _canvas_point(canvas, fx, fy)
            _click(browser, *screen)
            expected[1][1].append(point)
        # drag track 2's last point to a new place
        (start, _), (end, moved) = _canvas_point(canvas, 0.7, 0.6), _canvas_point(canvas, 0.8, 0.85)
        _mouse(browser, "mouseMoved", *start, 0)
        _mouse(browser, "mousePressed", *start)
        for step in range(1, 6):
            _mouse(browser, "mouseMoved", start[0] + (end[0] - start[0]) * step / 5, start[1] + (end[1] - start[1]) * step / 5)
        _mouse(browser, "mouseReleased", *end, 0)
        expected[1][1][-1] = moved

        def state_tracks():
            value = browser.evaluate(
                f"app.graph.getNodeById({node_id}).widgets.find(w => w.name === 'trajectory_data').value")
            return json.loads(value)["tracks"]

        def press(rect):
            _click(browser, rect["left"] + rect["width"] / 2, rect["top"] + rect["height"] / 2)

        # insert on the selected track's line, delete it with a right click, bring it back with Undo
        (a, pa), (b, pb) = _canvas_point(canvas, 0.2, 0.8), _canvas_point(canvas, 0.8, 0.85)
        middle = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        _click(browser, *middle)
        inserted = ((middle[0] - canvas["left"]) * WIDTH / canvas["width"], (middle[1] - canvas["top"]) * HEIGHT / canvas["height"])
        with_insert = [expected[0], ("track 2", [expected[1][1][0], inserted, expected[1][1][1]])]
        _same_tracks(state_tracks(), with_insert)
        browser.send("Input.dispatchMouseEvent", {"type": "mousePressed", "x": middle[0], "y": middle[1],
                                                  "button": "right", "buttons": 2, "clickCount": 1})
        browser.send("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": middle[0], "y": middle[1],
                                                  "button": "right", "buttons": 0, "clickCount": 1})
        _same_tracks(state_tracks(), expected)
        press(rects["undo"])
        _same_tracks(state_tracks(), with_insert)
        press(rects["clear"])
        assert state_tracks() == []
        press(rects["undo"])
        _same_tracks(state_tracks(), with_insert)
        expected = with_insert

        upload = browser.evaluate(JS_UPLOAD % node_id)
        assert upload["loaded"] and upload["size"] == [36, 24], upload
        assert upload["reference"]["type"] == "input" and upload["reference"]["filename"].endswith(".png")

        state = json.loads(browser.evaluate(
            f"app.graph.getNodeById({node_id}).widgets.find(w => w.name === 'trajectory_data').value"))
        assert state["canvas"] == {"width": WIDTH, "height": HEIGHT} and state["version"] == 1
        _same_tracks(state["tracks"], expected)

        # save the workflow as the frontend does, reload the page, load the saved workflow
        saved = browser.evaluate("JSON.stringify(app.graph.serialize())")
        (artifacts_dir / "draw_trajectories_workflow.json").write_text(saved)
        saved_node = next(n for n in json.loads(saved)["nodes"] if n["id"] == node_id)
        assert json.loads(saved_node["widgets_values"][3])["tracks"] == state["tracks"]
        assert len(saved_node["widgets_values"]) == 4, "the canvas widget must not be serialized"
        browser.send("Page.reload", {"ignoreCache": True})
        time.sleep(1.0)
        try:  # the frontend asks before leaving a modified workflow (it was saved above)
            browser.send("Page.handleJavaScriptDialog", {"accept": True}, timeout=5)
        except ui_workflow.CDPError:
            pass
        session.wait_ready(120)
        browser.evaluate(ui_workflow.JS_INSTALL)
        browser.evaluate(ui_workflow.JS_CLOSE_DIALOGS)
        session.load(json.loads(saved), "drawn_trajectories")
        reloaded = browser.evaluate(f"app.graph.getNodeById({node_id}).motionkitEditor.tracks")
        _same_tracks([{"name": t["name"], "points": t["points"]} for t in reloaded], expected)

        pasted = browser.evaluate(JS_COPY_PASTE % node_id)
        _same_tracks(pasted["copied"]["tracks"], expected)
        assert pasted["widened"]["canvas"] == {"width": 2 * WIDTH, "height": HEIGHT}
        _same_tracks(pasted["widened"]["tracks"], [(name, [(2 * x, y) for x, y in points]) for name, points in expected])

        queued = browser.evaluate(ui_workflow.JS_QUEUE, timeout=120)
        assert queued["queued"] and not queued["errors"], queued
        prompt_id = queued["queued"][-1]["prompt_id"]
        entry = None
        for _ in range(240):
            with urllib.request.urlopen(f"{comfy_server.base_url}/history/{prompt_id}", timeout=30) as response:
                history = json.load(response)
            entry = history.get(prompt_id)
            if entry and entry.get("status", {}).get("completed"):
                break
            time.sleep(0.25)
        assert entry and entry["status"]["status_str"] == "success", entry
        received = json.loads(entry["prompt"][2][str(node_id)]["inputs"]["trajectory_data"])
        assert received["canvas"] == {"width": WIDTH, "height": HEIGHT}
        _same_tracks(received["tracks"], expected)
        assert comfy_server.output_files(entry["outputs"]), "the preview was not saved"

        time.sleep(0.5)
        browser.evaluate(ui_workflow.JS_FIT)
        browser.evaluate(ui_workflow.JS_REDRAW)
        time.sleep(0.3)
        shot = browser.send("Page.captureScreenshot", {"format": "png"})
        (artifacts_dir / "draw_trajectories.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        session.close()
