// Where a track's object is at each frame, for the Draw Trajectories preview.
//
// The definition is written once in models/trajectory/resample.py (path_points, cumulative_lengths,
// point_at_length, ease, track_positions) and in the README ("Trajectory JSON"); these functions do the
// same double-precision operations in the same order, so the widget's preview and Resample Trajectories
// give equal numbers (tests/test_trajectory_widget.py compares them).

export const SPLINE_STEPS = 16; // straight pieces per spline segment
export const INTERPOLATIONS = ["polyline", "spline"];
export const EASINGS = ["linear", "ease-in", "ease-out", "ease-in-out"];

// Cubic easing of a progress u in [0, 1].
export function ease(easing, u) {
  if (easing === "ease-in") return u * u * u;
  if (easing === "ease-out") {
    const v = 1.0 - u;
    return 1.0 - v * v * v;
  }
  if (easing === "ease-in-out") {
    if (u < 0.5) return 4.0 * u * u * u;
    const v = 1.0 - u;
    return 1.0 - 4.0 * v * v * v;
  }
  return u;
}

// The path as a polyline: the points, or the cardinal spline through them (d3.curveCardinal's tangents
// (1 - tension) / 2 * (p[i+1] - p[i-1]), ends repeated) flattened into SPLINE_STEPS pieces per segment.
export function pathPoints(points, interpolation = "polyline", tension = 0) {
  if (interpolation !== "spline" || points.length < 3) return points.map(([x, y]) => [x, y]);
  const k = (1.0 - tension) / 2.0, n = points.length;
  const tangents = points.map((_, i) => {
    const [xa, ya] = points[Math.max(i - 1, 0)], [xb, yb] = points[Math.min(i + 1, n - 1)];
    return [k * (xb - xa), k * (yb - ya)];
  });
  const path = [];
  for (let i = 0; i < n - 1; i++) {
    const [x0, y0] = points[i], [x1, y1] = points[i + 1];
    const [mx0, my0] = tangents[i], [mx1, my1] = tangents[i + 1];
    for (let j = 0; j < SPLINE_STEPS; j++) {
      const v = j / SPLINE_STEPS, v2 = v * v, v3 = v2 * v;
      const h00 = 2.0 * v3 - 3.0 * v2 + 1.0, h10 = v3 - 2.0 * v2 + v, h01 = -2.0 * v3 + 3.0 * v2, h11 = v3 - v2;
      path.push([h00 * x0 + h10 * mx0 + h01 * x1 + h11 * mx1, h00 * y0 + h10 * my0 + h01 * y1 + h11 * my1]);
    }
  }
  path.push([points[n - 1][0], points[n - 1][1]]);
  return path;
}

export function cumulativeLengths(path) {
  const lengths = [0.0];
  for (let i = 0; i + 1 < path.length; i++) {
    const dx = path[i + 1][0] - path[i][0], dy = path[i + 1][1] - path[i][1];
    lengths.push(lengths[i] + Math.sqrt(dx * dx + dy * dy));
  }
  return lengths;
}

export function pointAtLength(path, lengths, s) {
  if (s <= 0.0 || path.length === 1) return path[0];
  if (s >= lengths[lengths.length - 1]) return path[path.length - 1];
  let k = 0;
  while (k < path.length - 2 && lengths[k + 1] <= s) k += 1;
  const piece = lengths[k + 1] - lengths[k];
  const q = piece === 0.0 ? 0.0 : (s - lengths[k]) / piece;
  const [x0, y0] = path[k], [x1, y1] = path[k + 1];
  return [x0 + q * (x1 - x0), y0 + q * (y1 - y0)];
}

// The keys of a track: times (frames) and arc lengths s where the object is at a known place.
export function trackKeys(track, frames, timeScale = 1.0) {
  const path = pathPoints(track.points, track.interpolation || "polyline", track.tension ?? 0);
  const lengths = cumulativeLengths(path);
  if (track.frames) {
    const step = path.length !== track.points.length ? SPLINE_STEPS : 1;
    return { path, lengths, times: track.frames.map((f) => f * timeScale), arcs: track.points.map((_, i) => lengths[i * step]) };
  }
  const times = [(track.start_frame ?? 0) * timeScale, track.end_frame == null ? frames - 1 : track.end_frame * timeScale];
  return { path, lengths, times, arcs: [0.0, lengths[lengths.length - 1]] };
}

// [x, y] of the track's object at each frame 0..frames-1 (resample.py track_positions).
export function trackPositions(track, frames, timeScale = 1.0) {
  const easing = track.easing || "linear";
  const { path, lengths, times, arcs } = trackKeys(track, frames, timeScale);
  const result = [];
  for (let f = 0; f < frames; f++) {
    let s;
    if (f <= times[0]) s = arcs[0];
    else if (f >= times[times.length - 1]) s = arcs[arcs.length - 1];
    else {
      let i = 0;
      while (i < times.length - 2 && times[i + 1] <= f) i += 1;
      const u = (f - times[i]) / (times[i + 1] - times[i]);
      s = arcs[i] + (arcs[i + 1] - arcs[i]) * ease(easing, u);
    }
    result.push(pointAtLength(path, lengths, s));
  }
  return result;
}

// The inverse of `ease` (for the editor: the frame at which an eased object passes a point).
export function easeInverse(easing, p) {
  if (easing === "ease-in") return Math.cbrt(p);
  if (easing === "ease-out") return 1.0 - Math.cbrt(1.0 - p);
  if (easing === "ease-in-out") return p < 0.5 ? Math.cbrt(p / 4.0) : 1.0 - Math.cbrt((1.0 - p) / 4.0);
  return p;
}

// The frame at which the object passes each drawn point (a timed track: its frames).
export function passingFrames(track, frames) {
  if (track.frames) return track.frames.slice();
  const { path, lengths, times, arcs } = trackKeys(track, frames);
  const step = path.length !== track.points.length ? SPLINE_STEPS : 1, total = arcs[1];
  return track.points.map((_, i) => times[0] + (times[1] - times[0]) *
    (total > 0 ? easeInverse(track.easing || "linear", lengths[i * step] / total) : 0));
}

// Ramer-Douglas-Peucker: the few points of a freehand stroke that keep it within `tolerance` pixels.
export function simplifyStroke(points, tolerance) {
  if (points.length < 3) return points.slice();
  const keep = new Array(points.length).fill(false);
  keep[0] = keep[points.length - 1] = true;
  const stack = [[0, points.length - 1]];
  while (stack.length) {
    const [first, last] = stack.pop();
    const [x0, y0] = points[first], [x1, y1] = points[last];
    const dx = x1 - x0, dy = y1 - y0, length2 = dx * dx + dy * dy;
    let farthest = -1, distance = tolerance;
    for (let i = first + 1; i < last; i++) {
      const [x, y] = points[i];
      const t = length2 === 0 ? 0 : Math.min(Math.max(((x - x0) * dx + (y - y0) * dy) / length2, 0), 1);
      const d = Math.hypot(x - (x0 + t * dx), y - (y0 + t * dy));
      if (d > distance) { farthest = i; distance = d; }
    }
    if (farthest >= 0) {
      keep[farthest] = true;
      stack.push([first, farthest], [farthest, last]);
    }
  }
  return points.filter((_, i) => keep[i]);
}
